//! Service Quotas (awsJson1_1, `X-Amz-Target: ServiceQuotasV20190624.<Operation>`), for the
//! quotas SageMaker enforces on endpoints: one per instance type, named `<type> for endpoint
//! usage` (SageMaker's `ResourceLimitExceeded` message names the same limit), in instances,
//! counted over every fleet of every endpoint of the account. `ListServiceQuotas` pages them (at
//! most 100 a page) and `GetServiceQuota` reads one by its code. AWS does not document the codes
//! here; the local ones are `L-` and eight hex digits of the name, the same on every run.
//! Values default to a generous `DEFAULT_QUOTA` and are set through the control API.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use crate::gateway::{json_answer, refusal};
use crate::iam::{ACCOUNT, Ask, Denied, REGION, Resource};
use crate::protocol::Protocol;
use crate::{Shared, lock};

/// Instances of each type the account may run on endpoints, unless set otherwise.
pub const DEFAULT_QUOTA: u32 = 50;
/// ListServiceQuotas' largest page.
const MAX_RESULTS: usize = 100;

/// `ml.m5.xlarge for endpoint usage`: SageMaker's name for the quota of one instance type.
pub fn quota_name(instance_type: &str) -> String {
    format!("{instance_type} for endpoint usage")
}

/// The local quota code of a quota name (FNV-1a, so it is the same on every run).
pub fn quota_code(name: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("L-{hash:08X}")
}

fn quota(instance_type: &str, value: u32) -> Value {
    let name = quota_name(instance_type);
    let code = quota_code(&name);
    json!({
        "ServiceCode": "sagemaker",
        "ServiceName": "Amazon SageMaker",
        "QuotaArn": format!("arn:aws:servicequotas:{REGION}:{ACCOUNT}:sagemaker/{code}"),
        "QuotaCode": code,
        "QuotaName": name,
        "Value": f64::from(value),
        "Unit": "None",
        "Adjustable": true,
        "GlobalQuota": false,
    })
}

pub(crate) fn handle(
    shared: &Shared,
    authorize: impl FnOnce(&[Ask]) -> Result<String, Denied>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let protocol = Protocol::Json {
        version: "1.1",
        query_compatible: false,
    };
    let operation = crate::proxy::target_operation(headers);
    let input = crate::proxy::json(body);
    let service = input
        .get("ServiceCode")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let code = input.get("QuotaCode").and_then(Value::as_str);
    let resources = code
        .map(|c| {
            vec![Resource::new(
                "servicequotas:quota",
                format!("arn:aws:servicequotas:{REGION}:{ACCOUNT}:{service}/{c}"),
            )]
        })
        .unwrap_or_default();
    let ask = Ask::new(&format!("servicequotas:{operation}"), resources)
        .with("servicequotas:service", vec![service.to_owned()]);
    if let Err(denied) = authorize(&[ask]) {
        return refusal(
            protocol,
            &denied,
            "AccessDeniedException",
            StatusCode::BAD_REQUEST,
        );
    }
    let quotas: Vec<(String, u32)> = {
        let emulator = lock(&shared.emulator);
        crate::sagemaker::instance_types()
            .iter()
            .map(|t| (t.clone(), emulator.sagemaker.quota(t)))
            .collect()
    };
    let not_found =
        |what: String| protocol.error(StatusCode::BAD_REQUEST, "NoSuchResourceException", &what);
    if service != "sagemaker" {
        return not_found(format!(
            "The local Service Quotas knows the sagemaker service only, not {service:?}."
        ));
    }
    match operation.as_str() {
        "ListServiceQuotas" => {
            let start: usize = input
                .get("NextToken")
                .and_then(Value::as_str)
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let size = input
                .get("MaxResults")
                .and_then(Value::as_u64)
                .map_or(MAX_RESULTS, |n| usize::try_from(n).unwrap_or(MAX_RESULTS))
                .clamp(1, MAX_RESULTS);
            let page: Vec<Value> = quotas
                .iter()
                .skip(start)
                .take(size)
                .map(|(t, v)| quota(t, *v))
                .collect();
            let mut answer = json!({ "Quotas": page });
            if start + size < quotas.len() {
                answer["NextToken"] = json!((start + size).to_string());
            }
            json_answer(&answer, "1.1")
        }
        "GetServiceQuota" => match quotas
            .iter()
            .find(|(t, _)| Some(quota_code(&quota_name(t)).as_str()) == code)
        {
            Some((t, v)) => json_answer(&json!({ "Quota": quota(t, *v) }), "1.1"),
            None => not_found(format!(
                "The request failed because the specified quota {code:?} does not exist."
            )),
        },
        other => protocol.error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("the local Service Quotas does not implement {other}"),
        ),
    }
}
