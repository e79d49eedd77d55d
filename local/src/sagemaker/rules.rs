//! The synchronous refusals of SageMaker's control plane, each with its source: what a request
//! must look like (names, instance types) and what the account allows (instance quotas).

use serde_json::Value;

use crate::ApiError;

/// Names of endpoints, endpoint configs, models and variants: at most 63 characters of
/// `[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}` (SageMaker API reference, e.g. CreateEndpoint's
/// `EndpointName`).
pub const NAME_PATTERN: &str = "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}";
pub const NAME_MAX_CHARS: usize = 63;

fn matches_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= NAME_MAX_CHARS
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// The validation error AWS's request validation gives (`1 validation error detected: Value
/// 'x' at 'endpointName' failed to satisfy constraint: ...`); `member` is the JSON member in
/// lower camel case, as AWS prints it.
fn constraint(value: &str, member: &str, constraint: &str) -> ApiError {
    ApiError::validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    ))
}

/// Checks a name against SageMaker's rule.
pub fn name(value: &str, member: &str) -> Result<(), ApiError> {
    if value.chars().count() > NAME_MAX_CHARS {
        return Err(constraint(
            value,
            member,
            "Member must have length less than or equal to 63",
        ));
    }
    if !matches_name(value) {
        return Err(constraint(
            value,
            member,
            &format!("Member must satisfy regular expression pattern: {NAME_PATTERN}"),
        ));
    }
    Ok(())
}

/// Checks a production variant's `InstanceType` against the `ProductionVariantInstanceType`
/// enum of SageMaker's API model (`member` is its position, `productionVariants.1.member`).
/// A variant needs an instance type unless it is serverless (`ServerlessConfig`).
pub fn instance_type(variant: &Value, member: &str) -> Result<(), ApiError> {
    match variant.get("InstanceType").and_then(Value::as_str) {
        Some(t) if super::instance_types().iter().any(|known| known == t) => Ok(()),
        Some(t) => Err(constraint(
            t,
            &format!("{member}.instanceType"),
            &format!(
                "Member must satisfy enum value set: [{}]",
                super::instance_types().join(", ")
            ),
        )),
        None if variant.get("ServerlessConfig").is_some() => Ok(()),
        None => Err(ApiError::validation(format!(
            "The production variant {} needs an InstanceType (or a ServerlessConfig).",
            variant
                .get("VariantName")
                .and_then(Value::as_str)
                .unwrap_or("?")
        ))),
    }
}

/// `ResourceLimitExceeded`, as SageMaker words it when a request would run more instances of a
/// type than the account's quota (aws-rules.md; the same error is modelled for CreateEndpoint,
/// UpdateEndpoint and UpdateEndpointWeightsAndCapacities).
pub fn over_quota(instance_type: &str, quota: u32, used: u32, delta: u32) -> ApiError {
    ApiError::new(
        "ResourceLimitExceeded",
        format!(
            "The account-level service limit '{instance_type} for endpoint usage' is {quota} Instances, with current utilization of {used} Instances and a request delta of {delta} Instances. Please use AWS Service Quotas to request an increase for this quota. If AWS Service Quotas is not available, contact AWS support to request an increase for this quota."
        ),
    )
}

/// An update that drops `AsyncInferenceConfig` from an asynchronous endpoint (the first
/// sentence as AWS gives it, aws/sagemaker-python-sdk pull request 3124; the rest of AWS's
/// text is cut off there, and is ours).
pub fn async_dropped(endpoint: &str) -> ApiError {
    ApiError::validation(format!(
        "The AsyncInferenceConfig parameter cannot be removed from this endpoint {endpoint}. To change the endpoint's type, create a new endpoint."
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_follow_sagemakers_pattern_and_length() {
        assert!(name("fraud-scorer-v1", "endpointName").is_ok());
        assert!(name("a--b", "endpointName").is_ok());
        for bad in ["-a", "a-", "a_b", "", "a.b"] {
            let e = name(bad, "endpointName").unwrap_err();
            assert!(
                e.message.contains("regular expression pattern"),
                "{bad}: {}",
                e.message
            );
        }
        let long = "a".repeat(64);
        assert!(
            name(&long, "endpointName")
                .unwrap_err()
                .message
                .contains("less than or equal to 63")
        );
    }

    #[test]
    fn instance_types_come_from_the_api_model() {
        let ok = json!({ "VariantName": "v", "InstanceType": "ml.m5.xlarge" });
        assert!(instance_type(&ok, "productionVariants.1.member").is_ok());
        let typo = json!({ "VariantName": "v", "InstanceType": "ml.m5.xlargee" });
        let e = instance_type(&typo, "productionVariants.1.member").unwrap_err();
        assert!(e.message.starts_with("1 validation error detected: Value 'ml.m5.xlargee' at 'productionVariants.1.member.instanceType' failed to satisfy constraint: Member must satisfy enum value set: [ml."), "{}", e.message);
        assert!(e.message.contains("ml.m5.xlarge,"));
        let serverless = json!({ "VariantName": "v", "ServerlessConfig": { "MemorySizeInMB": 2048, "MaxConcurrency": 5 } });
        assert!(instance_type(&serverless, "productionVariants.1.member").is_ok());
    }
}
