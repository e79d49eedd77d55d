//! Guardrails' own metrics, in CloudWatch's embedded metric format (EMF): one JSON document per
//! line of a function's output, which Lambda sends to CloudWatch Logs and CloudWatch turns into
//! metrics in the `Guardrails` namespace (CloudWatch User Guide, "Specification: Embedded metric
//! format"). No API call and no extra permission: the function writes a line.
//!
//! | metric | unit | dimensions | when |
//! | --- | --- | --- | --- |
//! | `Deployments` | Count | `Engine`, `Outcome` | a deployment ends: SUCCEEDED, ROLLED_BACK, FAILED |
//! | `SecondsToBlue` | Seconds | `Engine` | a rollback ends: from the first bad signal (an alarm's move into ALARM, the judge's worse; else the rollback's decision) to every request seen back on blue |
//! | `FunctionErrors` | Count | `Function` | a handler fails (Lambda retries the event) |
//! | `EventsRefused` | Count | `Function` | an event or command is refused or malformed |

use serde::Serialize;
use serde_json::{Value, json};

use crate::events::PhaseKind;
use crate::policy::Engine;

/// The namespace of Guardrails' metrics.
pub const NAMESPACE: &str = "Guardrails";

/// How a deployment ended, as its last transition was saved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ended {
    pub engine: Engine,
    pub outcome: PhaseKind,
    /// Seconds from the first bad signal (else the rollback's decision) to every request seen
    /// back on blue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secs_to_blue: Option<f64>,
}

/// One thing worth counting.
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    Ended { deployment_id: String, ended: Ended },
    FunctionError,
    Refused,
}

/// A value's name as our events spell it (`ROLLED_BACK`, `variant`).
fn word<T: Serialize>(value: &T) -> String {
    crate::units::wire_name(value).unwrap_or_default()
}

fn directive(dimensions: &[&str], metrics: &[(&str, &str)]) -> Value {
    json!({
        "Namespace": NAMESPACE,
        "Dimensions": [dimensions],
        "Metrics": metrics
            .iter()
            .map(|(name, unit)| json!({ "Name": name, "Unit": unit }))
            .collect::<Vec<_>>(),
    })
}

/// The EMF document of `measure`, written by `function` at `at_ms` (epoch ms).
pub fn emf(function: &str, measure: &Measure, at_ms: i64) -> Value {
    let (directives, members) = match measure {
        Measure::Ended {
            deployment_id,
            ended,
        } => {
            let mut directives = vec![directive(
                &["Engine", "Outcome"],
                &[("Deployments", "Count")],
            )];
            let mut members = json!({
                "Engine": word(&ended.engine),
                "Outcome": word(&ended.outcome),
                "Deployments": 1,
                // Not a dimension: a property, searchable in the log.
                "DeploymentId": deployment_id,
            });
            if let Some(secs) = ended.secs_to_blue {
                directives.push(directive(&["Engine"], &[("SecondsToBlue", "Seconds")]));
                members["SecondsToBlue"] = json!(secs);
            }
            (directives, members)
        }
        Measure::FunctionError => (
            vec![directive(&["Function"], &[("FunctionErrors", "Count")])],
            json!({ "FunctionErrors": 1 }),
        ),
        Measure::Refused => (
            vec![directive(&["Function"], &[("EventsRefused", "Count")])],
            json!({ "EventsRefused": 1 }),
        ),
    };
    let mut doc = members;
    doc["Function"] = json!(function);
    doc["_aws"] = json!({ "Timestamp": at_ms, "CloudWatchMetrics": directives });
    doc
}

/// The lines `function` writes for `measures` at `at_ms`.
pub fn lines(function: &str, measures: &[Measure], at_ms: i64) -> Vec<String> {
    measures
        .iter()
        .map(|m| emf(function, m, at_ms).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollback_counts_a_deployment_by_engine_and_outcome_and_its_seconds_to_blue() {
        let measure = Measure::Ended {
            deployment_id: "d-1".to_owned(),
            ended: Ended {
                engine: Engine::Variant,
                outcome: PhaseKind::RolledBack,
                secs_to_blue: Some(0.4),
            },
        };
        let doc = emf("bake-watcher", &measure, 1_796_223_741_979);
        assert_eq!(
            doc,
            json!({
                "_aws": {
                    "Timestamp": 1_796_223_741_979_i64,
                    "CloudWatchMetrics": [
                        { "Namespace": "Guardrails", "Dimensions": [["Engine", "Outcome"]],
                          "Metrics": [{ "Name": "Deployments", "Unit": "Count" }] },
                        { "Namespace": "Guardrails", "Dimensions": [["Engine"]],
                          "Metrics": [{ "Name": "SecondsToBlue", "Unit": "Seconds" }] }
                    ]
                },
                "Engine": "variant", "Outcome": "ROLLED_BACK", "Deployments": 1,
                "SecondsToBlue": 0.4, "DeploymentId": "d-1", "Function": "bake-watcher"
            })
        );
    }

    #[test]
    fn errors_and_refusals_count_by_function() {
        let doc = emf("start-deployment", &Measure::Refused, 5);
        assert_eq!(doc["EventsRefused"], 1);
        assert_eq!(doc["Function"], "start-deployment");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"]])
        );
        let doc = emf("endpoint-events", &Measure::FunctionError, 5);
        assert_eq!(doc["FunctionErrors"], 1);
    }
}
