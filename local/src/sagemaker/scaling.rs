//! What SageMaker does about Application Auto Scaling (moto keeps the scalable targets and
//! their policies; the gateway tells the emulator which variants are registered). Sources:
//!
//! - "Update endpoints that use auto scaling" (SageMaker developer guide): an UpdateEndpoint
//!   that would change the instance type of a variant registered as a scalable target, or
//!   remove such a variant, fails; changing its model is allowed. AWS does not print the error;
//!   the message here is ours, as a `ValidationException` (the strictest plausible reading).
//! - UpdateEndpoint's `RetainAllVariantProperties` (API reference): variants of the new config
//!   that keep their name take the endpoint's current `DesiredInstanceCount` and `DesiredWeight`
//!   (and data capture), whatever the new config says, except the properties named in
//!   `ExcludeRetainedVariantProperties`.

use serde_json::Value;

use super::{LiveVariant, SageMaker};
use crate::ApiError;

/// Application Auto Scaling's dimension for a variant's instance count.
pub const DIMENSION: &str = "sagemaker:variant:DesiredInstanceCount";

/// `(endpoint, variant)` of a resource id `endpoint/<endpoint>/variant/<variant>`.
fn variant_of(resource_id: &str) -> Option<(String, String)> {
    let rest = resource_id.strip_prefix("endpoint/")?;
    let (endpoint, variant) = rest.split_once("/variant/")?;
    Some((endpoint.to_owned(), variant.to_owned()))
}

impl SageMaker {
    /// Notes a RegisterScalableTarget or DeregisterScalableTarget that Application Auto Scaling
    /// accepted.
    pub fn scaling_changed(&mut self, operation: &str, input: &Value) {
        let text = |f: &str| input.get(f).and_then(Value::as_str).unwrap_or_default();
        if text("ServiceNamespace") != "sagemaker" || text("ScalableDimension") != DIMENSION {
            return;
        }
        let Some(variant) = variant_of(text("ResourceId")) else {
            return;
        };
        match operation {
            "RegisterScalableTarget" => {
                self.scalable.insert(variant);
            }
            "DeregisterScalableTarget" => {
                self.scalable.remove(&variant);
            }
            _ => {}
        }
    }

    /// The registered variants of `endpoint` that `next` (the variants of the config an
    /// UpdateEndpoint deploys) would remove or move to another instance type.
    pub(super) fn check_scalable(
        &self,
        endpoint: &str,
        current: &[LiveVariant],
        next: &[LiveVariant],
    ) -> Result<(), ApiError> {
        for (_, name) in self.scalable.iter().filter(|(e, _)| e == endpoint) {
            let Some(now) = current.iter().find(|v| v.name == *name) else {
                continue;
            };
            match next.iter().find(|v| v.name == *name) {
                None => {
                    return Err(ApiError::validation(format!(
                        "The update removes variant {name} of endpoint {endpoint}, which is \
                         registered with Application Auto Scaling; delete its scaling policies \
                         and DeregisterScalableTarget before the update"
                    )));
                }
                Some(v) if v.instance_type != now.instance_type => {
                    return Err(ApiError::validation(format!(
                        "The update changes the instance type of variant {name} of endpoint \
                         {endpoint} from {} to {}, and the variant is registered with \
                         Application Auto Scaling; delete its scaling policies and \
                         DeregisterScalableTarget before the update",
                        now.instance_type, v.instance_type
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// `next` with `RetainAllVariantProperties` applied: variants that keep their name take the
/// current desired count and weight, unless excluded.
pub(super) fn retained(
    input: &Value,
    current: &[LiveVariant],
    mut next: Vec<LiveVariant>,
) -> Vec<LiveVariant> {
    let retain = input
        .get("RetainAllVariantProperties")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !retain {
        return next;
    }
    let excluded: Vec<&str> = input
        .get("ExcludeRetainedVariantProperties")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("VariantPropertyType").and_then(Value::as_str))
        .collect();
    for v in &mut next {
        let Some(now) = current.iter().find(|c| c.name == v.name) else {
            continue;
        };
        if !excluded.contains(&"DesiredInstanceCount") {
            v.instances = now.desired_instances;
            v.desired_instances = now.desired_instances;
        }
        if !excluded.contains(&"DesiredWeight") {
            v.weight = now.desired_weight;
            v.desired_weight = now.desired_weight;
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_name_an_endpoint_and_a_variant() {
        assert_eq!(
            variant_of("endpoint/fraud/variant/AllTraffic"),
            Some(("fraud".to_owned(), "AllTraffic".to_owned()))
        );
        assert_eq!(variant_of("table/fraud"), None);
    }
}
