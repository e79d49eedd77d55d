//! Reads a policy document into the typed `Policy`: the root and SageMaker's `DeploymentConfig`
//! here, the `Guardrails` section in `read_guardrails`, then the cross-field `rules`. Every field
//! is checked against SageMaker's ranges (spec §1) and all problems are collected before failing.

use serde_json::Value;

use super::reader::{Obj, Problems, entries, join, one_of, string, whole_number};
use super::{
    AlarmRef, AutoRollbackConfiguration, BlueGreenUpdatePolicy, CapacitySize, CapacityType,
    DeploymentConfig, GuardrailsSection, MAX_ALARMS, Policy, PolicyError, RollingUpdatePolicy,
    TrafficRoutingConfiguration, TrafficRoutingType,
};
use super::{NAME_MAX_CHARS, read_guardrails, rules};

const WAIT_MAX_SECS: u32 = 3_600;
const TIMEOUT_MIN_SECS: u32 = 600;
const TIMEOUT_MAX_SECS: u32 = 28_800;

/// Reads and validates `value`. A policy is returned only when no problem was found; partial
/// values are built along the way only so that later rules can still report their problems.
pub(super) fn policy(value: &Value) -> Result<Policy, PolicyError> {
    let mut problems = Problems::default();
    let read = read_policy(value, &mut problems);
    match read {
        Some(policy) if problems.0.is_empty() => Ok(policy),
        _ => Err(PolicyError {
            problems: problems.0,
        }),
    }
}

/// The fields of SageMaker's `DeploymentConfig` (API reference of UpdateEndpoint).
const DEPLOYMENT_CONFIG_FIELDS: [&str; 3] = [
    "BlueGreenUpdatePolicy",
    "RollingUpdatePolicy",
    "AutoRollbackConfiguration",
];

/// A document is SageMaker's `DeploymentConfig` as it is (its fields at the top, as `aws
/// sagemaker update-endpoint --deployment-config` and AWS's documentation take it) or wrapped
/// in `DeploymentConfig:`, with an optional `Guardrails` section beside either.
fn read_policy(value: &Value, problems: &mut Problems) -> Option<Policy> {
    const ROOT: [&str; 5] = [
        "BlueGreenUpdatePolicy",
        "RollingUpdatePolicy",
        "AutoRollbackConfiguration",
        "DeploymentConfig",
        "Guardrails",
    ];
    let root = Obj::new(value, "", &ROOT, problems)?;
    let bare: serde_json::Map<String, Value> = DEPLOYMENT_CONFIG_FIELDS
        .iter()
        .filter_map(|k| root.get(k).map(|(v, _)| ((*k).to_owned(), v.clone())))
        .collect();
    let (deployment_config, config_path) = match root.get("DeploymentConfig") {
        Some((v, path)) => {
            if !bare.is_empty() {
                let fields: Vec<&str> = bare.keys().map(String::as_str).collect();
                problems.add(
                    &path,
                    format!(
                        "give SageMaker's DeploymentConfig either as it is ({} at the top, as \
                         UpdateEndpoint takes it) or wrapped in DeploymentConfig, not both",
                        fields.join(", ")
                    ),
                );
            }
            (deployment_config(v, &path, problems), path)
        }
        None => (
            deployment_config(&Value::Object(bare), "", problems),
            String::new(),
        ),
    };
    let guardrails = match root.get("Guardrails") {
        Some((v, path)) => read_guardrails::guardrails(v, &path, problems),
        None => Some(GuardrailsSection::default()),
    };
    root.finish(problems);
    let policy = Policy {
        deployment_config: deployment_config?,
        guardrails: guardrails?,
    };
    rules::cross_checks(&policy, &config_path, problems);
    Some(policy)
}

fn deployment_config(
    value: &Value,
    path: &str,
    problems: &mut Problems,
) -> Option<DeploymentConfig> {
    let obj = Obj::new(value, path, &DEPLOYMENT_CONFIG_FIELDS, problems)?;
    if obj.has("BlueGreenUpdatePolicy") && obj.has("RollingUpdatePolicy") {
        let at = if path.is_empty() { "policy" } else { path };
        problems.add(
            at,
            "give exactly one of BlueGreenUpdatePolicy and RollingUpdatePolicy, not both",
        );
    }
    let blue_green = obj
        .get("BlueGreenUpdatePolicy")
        .map(|(v, p)| blue_green(v, &p, problems));
    let rolling = obj
        .get("RollingUpdatePolicy")
        .map(|(v, p)| rolling(v, &p, problems));
    let auto_rollback = obj
        .get("AutoRollbackConfiguration")
        .map(|(v, p)| auto_rollback(v, &p, problems));
    obj.finish(problems);
    Some(DeploymentConfig {
        blue_green_update_policy: blue_green.flatten(),
        rolling_update_policy: rolling.flatten(),
        auto_rollback_configuration: auto_rollback.flatten(),
    })
}

fn blue_green(value: &Value, path: &str, problems: &mut Problems) -> Option<BlueGreenUpdatePolicy> {
    let obj = Obj::new(
        value,
        path,
        &[
            "TrafficRoutingConfiguration",
            "TerminationWaitInSeconds",
            "MaximumExecutionTimeoutInSeconds",
        ],
        problems,
    )?;
    let routing = obj
        .require("TrafficRoutingConfiguration", problems)
        .and_then(|(v, p)| traffic_routing(v, &p, problems));
    let termination_wait = obj
        .get("TerminationWaitInSeconds")
        .map(|(v, p)| whole_number(v, &p, 0, WAIT_MAX_SECS, "seconds", problems));
    let timeout = obj.get("MaximumExecutionTimeoutInSeconds").map(|(v, p)| {
        whole_number(
            v,
            &p,
            TIMEOUT_MIN_SECS,
            TIMEOUT_MAX_SECS,
            "seconds",
            problems,
        )
    });
    obj.finish(problems);
    Some(BlueGreenUpdatePolicy {
        traffic_routing_configuration: routing?,
        termination_wait_in_seconds: termination_wait.flatten(),
        maximum_execution_timeout_in_seconds: timeout.flatten(),
    })
}

fn traffic_routing(
    value: &Value,
    path: &str,
    problems: &mut Problems,
) -> Option<TrafficRoutingConfiguration> {
    let obj = Obj::new(
        value,
        path,
        &[
            "Type",
            "WaitIntervalInSeconds",
            "CanarySize",
            "LinearStepSize",
        ],
        problems,
    )?;
    const TYPES: [&str; 3] = ["ALL_AT_ONCE", "CANARY", "LINEAR"];
    let kind = obj
        .require("Type", problems)
        .and_then(|(v, p)| one_of(v, &p, &TYPES, problems))
        .map(|i| match i {
            0 => TrafficRoutingType::AllAtOnce,
            1 => TrafficRoutingType::Canary,
            _ => TrafficRoutingType::Linear,
        });
    let wait = match obj.get("WaitIntervalInSeconds") {
        Some((v, p)) => whole_number(v, &p, 0, WAIT_MAX_SECS, "seconds", problems),
        None => {
            // AWS's own all-at-once example omits it; SageMaker's API (and boto3) still
            // require it.
            let why = if kind == Some(TrafficRoutingType::AllAtOnce) {
                "is required, even for ALL_AT_ONCE, which does not use it (SageMaker's API \
                 requires it; AWS's all-at-once example leaves it out): add \
                 WaitIntervalInSeconds: 0"
            } else {
                "is required"
            };
            problems.add(&join(path, "WaitIntervalInSeconds"), why);
            None
        }
    };
    let canary = obj
        .get("CanarySize")
        .map(|(v, p)| capacity(v, &p, problems));
    let linear = obj
        .get("LinearStepSize")
        .map(|(v, p)| capacity(v, &p, problems));
    let canary_path = join(path, "CanarySize");
    let linear_path = join(path, "LinearStepSize");
    match kind {
        Some(TrafficRoutingType::Canary) => {
            if canary.is_none() {
                problems.add(&canary_path, "is required when Type is CANARY");
            }
            if let Some(Some(size)) = canary {
                percent_in(size, &canary_path, 1, 50, "a canary", problems);
            }
        }
        Some(TrafficRoutingType::Linear) => {
            if linear.is_none() {
                problems.add(&linear_path, "is required when Type is LINEAR");
            }
            if let Some(Some(size)) = linear {
                percent_in(size, &linear_path, 10, 50, "a linear step", problems);
            }
        }
        _ => {}
    }
    if let Some(k) = kind {
        if canary.is_some() && k != TrafficRoutingType::Canary {
            problems.add(
                &canary_path,
                format!("applies only to Type CANARY, not {}", type_name(k)),
            );
        }
        if linear.is_some() && k != TrafficRoutingType::Linear {
            problems.add(
                &linear_path,
                format!("applies only to Type LINEAR, not {}", type_name(k)),
            );
        }
    }
    obj.finish(problems);
    Some(TrafficRoutingConfiguration {
        r#type: kind?,
        wait_interval_in_seconds: wait?,
        canary_size: canary.flatten(),
        linear_step_size: linear.flatten(),
    })
}

fn type_name(kind: TrafficRoutingType) -> &'static str {
    match kind {
        TrafficRoutingType::AllAtOnce => "ALL_AT_ONCE",
        TrafficRoutingType::Canary => "CANARY",
        TrafficRoutingType::Linear => "LINEAR",
    }
}

/// Checks a `CAPACITY_PERCENT` size against `min..=max` percent. Instance counts depend on the
/// fleet and are checked by the plan.
fn percent_in(
    size: CapacitySize,
    path: &str,
    min: u32,
    max: u32,
    what: &str,
    problems: &mut Problems,
) {
    if size.r#type != CapacityType::CapacityPercent {
        return;
    }
    let at = join(path, "Value");
    if size.value > max {
        problems.add(
            &at,
            format!(
                "{}% exceeds the {max}% SageMaker allows for {what}",
                size.value
            ),
        );
    } else if size.value < min {
        problems.add(
            &at,
            format!(
                "{}% is below the {min}% SageMaker allows for {what}",
                size.value
            ),
        );
    }
}

fn capacity(value: &Value, path: &str, problems: &mut Problems) -> Option<CapacitySize> {
    let obj = Obj::new(value, path, &["Type", "Value"], problems)?;
    let kind = obj
        .require("Type", problems)
        .and_then(|(v, p)| one_of(v, &p, &["INSTANCE_COUNT", "CAPACITY_PERCENT"], problems))
        .map(|i| {
            if i == 0 {
                CapacityType::InstanceCount
            } else {
                CapacityType::CapacityPercent
            }
        });
    let max = if kind == Some(CapacityType::CapacityPercent) {
        100
    } else {
        u32::MAX
    };
    let value = obj
        .require("Value", problems)
        .and_then(|(v, p)| whole_number(v, &p, 1, max, "", problems));
    obj.finish(problems);
    Some(CapacitySize {
        r#type: kind?,
        value: value?,
    })
}

fn rolling(value: &Value, path: &str, problems: &mut Problems) -> Option<RollingUpdatePolicy> {
    let obj = Obj::new(
        value,
        path,
        &[
            "MaximumBatchSize",
            "WaitIntervalInSeconds",
            "MaximumExecutionTimeoutInSeconds",
            "RollbackMaximumBatchSize",
        ],
        problems,
    )?;
    let batch = obj
        .require("MaximumBatchSize", problems)
        .and_then(|(v, p)| capacity(v, &p, problems));
    if let Some(size) = batch {
        percent_in(
            size,
            &join(path, "MaximumBatchSize"),
            5,
            50,
            "a rolling batch",
            problems,
        );
    }
    let wait = obj
        .require("WaitIntervalInSeconds", problems)
        .and_then(|(v, p)| whole_number(v, &p, 0, WAIT_MAX_SECS, "seconds", problems));
    let timeout = obj.get("MaximumExecutionTimeoutInSeconds").map(|(v, p)| {
        whole_number(
            v,
            &p,
            TIMEOUT_MIN_SECS,
            TIMEOUT_MAX_SECS,
            "seconds",
            problems,
        )
    });
    let rollback_batch = obj
        .get("RollbackMaximumBatchSize")
        .map(|(v, p)| capacity(v, &p, problems));
    obj.finish(problems);
    Some(RollingUpdatePolicy {
        maximum_batch_size: batch?,
        wait_interval_in_seconds: wait?,
        maximum_execution_timeout_in_seconds: timeout.flatten(),
        rollback_maximum_batch_size: rollback_batch.flatten(),
    })
}

fn auto_rollback(
    value: &Value,
    path: &str,
    problems: &mut Problems,
) -> Option<AutoRollbackConfiguration> {
    let obj = Obj::new(value, path, &["Alarms"], problems)?;
    let mut alarms: Vec<AlarmRef> = Vec::new();
    let mut complete = true;
    if let Some((list, list_path)) = obj.require("Alarms", problems) {
        for (item, item_path) in entries(list, &list_path, 1, MAX_ALARMS, "alarms", problems) {
            let name = Obj::new(item, &item_path, &["AlarmName"], problems).and_then(|entry| {
                let name = entry
                    .require("AlarmName", problems)
                    .and_then(|(v, p)| string(v, &p, 1, NAME_MAX_CHARS, problems));
                entry.finish(problems);
                name
            });
            match name {
                Some(alarm_name) => {
                    if alarms.iter().any(|a| a.alarm_name == alarm_name) {
                        problems.add(
                            &join(&item_path, "AlarmName"),
                            format!("\"{alarm_name}\" is listed twice"),
                        );
                    }
                    alarms.push(AlarmRef { alarm_name });
                }
                None => complete = false,
            }
        }
    } else {
        complete = false;
    }
    obj.finish(problems);
    complete.then_some(AutoRollbackConfiguration { alarms })
}
