//! `guardrails-hook-green-ready`, a sample Guardrails hook (README, "Hooks"): asked before
//! green's first request and after the final shift, it answers `Succeeded` when the endpoint
//! serves the rollout's config with green's variant on all its instances, at the share of
//! requests the rollout says (0% before traffic); `InProgress` while instances come up or the
//! endpoint updates; `Failed` when green is missing or serves another share.
//!
//! It is the user's side of the contract: it reads the payload's JSON, not Guardrails' types. A
//! real pre-traffic hook would also send test requests to green alone (SageMaker Runtime's
//! `InvokeEndpoint` with `TargetVariant` set to `greenVariantName`, which reaches a variant
//! whatever its weight) and fail on a wrong answer.

use serde::{Deserialize, Serialize};

/// What Guardrails sends (the fields this hook reads; the others are ignored).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub hook: String,
    pub endpoint_name: String,
    pub endpoint_config_name: String,
    pub green_variant_name: String,
    pub green_percent: f64,
    pub attempt: u32,
}

/// What a hook answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub status: &'static str,
    pub reason: String,
}

impl Answer {
    fn succeeded(reason: String) -> Answer {
        Answer {
            status: "Succeeded",
            reason,
        }
    }
    fn failed(reason: String) -> Answer {
        Answer {
            status: "Failed",
            reason,
        }
    }
    fn in_progress(reason: String) -> Answer {
        Answer {
            status: "InProgress",
            reason,
        }
    }
}

/// The endpoint as DescribeEndpoint shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub status: String,
    pub config_name: String,
    /// Name, current weight, current and desired instances.
    pub variants: Vec<(String, f64, i32, i32)>,
}

/// Green's share may differ from the rollout's by this many percentage points (weights are
/// floats on SageMaker's side).
const SHARE_SLACK_POINTS: f64 = 0.5;

/// The answer for what was seen.
pub fn judge(payload: &Payload, seen: &Seen) -> Answer {
    if seen.status != "InService" {
        return Answer::in_progress(format!("the endpoint is {}", seen.status));
    }
    if seen.config_name != payload.endpoint_config_name {
        return Answer::failed(format!(
            "the endpoint serves config {}, not the rollout's {}",
            seen.config_name, payload.endpoint_config_name
        ));
    }
    let green = &payload.green_variant_name;
    let Some((_, weight, current, desired)) = seen.variants.iter().find(|v| &v.0 == green) else {
        return Answer::failed(format!("the endpoint has no variant {green}"));
    };
    if *current == 0 || current < desired {
        return Answer::in_progress(format!("green has {current} of {desired} instances"));
    }
    let total: f64 = seen.variants.iter().map(|v| v.1).sum();
    let share = if total > 0.0 {
        weight / total * 100.0
    } else {
        0.0
    };
    if (share - payload.green_percent).abs() > SHARE_SLACK_POINTS {
        return Answer::failed(format!(
            "green serves {share:.1}% of requests; the rollout says {}%",
            payload.green_percent
        ));
    }
    Answer::succeeded(format!(
        "green ({green}) is in service on {current} instances and serves {share:.1}% of requests"
    ))
}

/// Reads the endpoint and answers; a read that fails is `InProgress` (Guardrails asks again,
/// until the hook's timeout).
pub async fn check(client: &aws_sdk_sagemaker::Client, payload: &Payload) -> Answer {
    let described = client
        .describe_endpoint()
        .endpoint_name(&payload.endpoint_name)
        .send()
        .await;
    let out = match described {
        Ok(out) => out,
        Err(e) => {
            let e = aws_sdk_sagemaker::error::DisplayErrorContext(e);
            return Answer::in_progress(format!("DescribeEndpoint failed: {e}"));
        }
    };
    let seen = Seen {
        status: out
            .endpoint_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        config_name: out.endpoint_config_name().unwrap_or_default().to_owned(),
        variants: out
            .production_variants()
            .iter()
            .map(|v| {
                (
                    v.variant_name().unwrap_or_default().to_owned(),
                    f64::from(v.current_weight().unwrap_or_default()),
                    v.current_instance_count().unwrap_or_default(),
                    v.desired_instance_count().unwrap_or_default(),
                )
            })
            .collect(),
    };
    judge(payload, &seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(percent: f64) -> Payload {
        Payload {
            hook: "PreTraffic".to_owned(),
            endpoint_name: "fraud".to_owned(),
            endpoint_config_name: "guardrails-d1-blue-green".to_owned(),
            green_variant_name: "v2".to_owned(),
            green_percent: percent,
            attempt: 1,
        }
    }

    fn seen(green_weight: f64, current: i32) -> Seen {
        Seen {
            status: "InService".to_owned(),
            config_name: "guardrails-d1-blue-green".to_owned(),
            variants: vec![
                ("AllTraffic".to_owned(), 1.0 - green_weight, 4, 4),
                ("v2".to_owned(), green_weight, current, 2),
            ],
        }
    }

    #[test]
    fn green_ready_at_the_rollouts_share_succeeds() {
        assert_eq!(judge(&payload(0.0), &seen(0.0, 2)).status, "Succeeded");
        assert_eq!(judge(&payload(100.0), &seen(1.0, 2)).status, "Succeeded");
    }

    #[test]
    fn instances_coming_up_are_in_progress_and_a_wrong_share_fails() {
        assert_eq!(judge(&payload(0.0), &seen(0.0, 1)).status, "InProgress");
        let wrong = judge(&payload(0.0), &seen(0.1, 2));
        assert_eq!(wrong.status, "Failed");
        assert_eq!(
            wrong.reason,
            "green serves 10.0% of requests; the rollout says 0%"
        );
    }
}
