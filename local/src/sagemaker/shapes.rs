//! What SageMaker says about an endpoint: DescribeEndpoint's JSON (epoch-second times,
//! `PendingDeploymentSummary`, `LastDeploymentConfig`) and the `detail` of its EventBridge
//! events (UPPER_SNAKE status, epoch-ms times).

use serde_json::{Value, json};

use super::{Change, Endpoint, LiveVariant, Pending, arn};
use crate::secs;

pub(super) fn describe(e: &Endpoint) -> Value {
    let mut out = json!({
        "EndpointName": e.name,
        "EndpointArn": arn("endpoint", &e.name),
        "EndpointConfigName": e.config,
        "ProductionVariants": e.variants.iter().map(variant_json).collect::<Vec<_>>(),
        "EndpointStatus": e.status,
        "CreationTime": secs(e.created),
        "LastModifiedTime": secs(e.modified),
    });
    if let Some(reason) = &e.failure_reason {
        out["FailureReason"] = json!(reason);
    }
    if let Some(config) = &e.last_deployment_config {
        out["LastDeploymentConfig"] = config.clone();
    }
    match &e.pending {
        Some(Pending {
            change: Change::Config(config, _),
            ..
        }) => {
            out["PendingDeploymentSummary"] = json!({
                "EndpointConfigName": config,
                "StartTime": secs(e.modified),
            });
        }
        Some(Pending {
            change: Change::Rollout(rollout),
            ..
        }) => out["PendingDeploymentSummary"] = rollout.pending_summary(),
        _ => {}
    }
    out
}

fn variant_json(v: &LiveVariant) -> Value {
    json!({
        "VariantName": v.name,
        "CurrentWeight": v.weight,
        "DesiredWeight": v.desired_weight,
        "CurrentInstanceCount": v.instances,
        "DesiredInstanceCount": v.desired_instances,
    })
}

impl Endpoint {
    /// The `detail` of a "SageMaker Endpoint State Change" event: UPPER_SNAKE status, epoch-ms
    /// times, as AWS sends it.
    pub fn event_detail(&self) -> Value {
        let status = match self.status {
            "InService" => "IN_SERVICE",
            "OutOfService" => "OUT_OF_SERVICE",
            "SystemUpdating" => "SYSTEM_UPDATING",
            "RollingBack" => "ROLLING_BACK",
            "UpdateRollbackFailed" => "UPDATE_ROLLBACK_FAILED",
            other => return self.detail_with(&other.to_uppercase()),
        };
        self.detail_with(status)
    }

    /// The `detail` of a "SageMaker Endpoint Deployment State Change" event: DescribeEndpoint's
    /// view (with `PendingDeploymentSummary` and `VariantStatus`), UPPER_SNAKE status, epoch ms.
    pub fn deployment_detail(&self) -> Value {
        let mut detail = self.event_detail();
        let described = describe(self);
        for field in ["PendingDeploymentSummary", "FailureReason"] {
            if let Some(value) = described.get(field) {
                detail[field] = millis(value.clone());
            }
        }
        detail
    }

    fn detail_with(&self, status: &str) -> Value {
        json!({
            "EndpointName": self.name,
            "EndpointArn": arn("endpoint", &self.name),
            "EndpointConfigName": self.config,
            "ProductionVariants": self.variants.iter().map(variant_json).collect::<Vec<_>>(),
            "EndpointStatus": status,
            "CreationTime": self.created,
            "LastModifiedTime": self.modified,
            "Tags": {},
        })
    }
}

/// DescribeEndpoint's epoch-second times (`StartTime`) as the epoch milliseconds of events.
fn millis(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key.ends_with("Time") && v.is_f64() {
                    #[allow(clippy::cast_possible_truncation)]
                    let ms = (v.as_f64().unwrap_or(0.0) * 1_000.0).round() as i64;
                    *v = json!(ms);
                } else {
                    *v = millis(v.take());
                }
            }
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                *v = millis(v.take());
            }
        }
        _ => {}
    }
    value
}
