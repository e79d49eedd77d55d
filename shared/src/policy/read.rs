//! Reads a policy document into the typed `Policy`, checking every field against SageMaker's
//! ranges (spec §1) and the cross-field rules, and collecting all problems before failing.

use serde_json::Value;

use super::reader::{
    Obj, Problems, boolean, entries, join, number, one_of, show, string, whole_number,
};
use super::{
    AlarmRef, AlarmTemplate, AutoRollbackConfiguration, BlueGreenUpdatePolicy, CapacitySize,
    CapacityType, ComparisonOperator, DeploymentConfig, Engine, GuardrailsSection, MAX_ALARMS,
    MAX_TRAFFIC_STEPS, Policy, PolicyError, RollingUpdatePolicy, Statistic,
    TrafficRoutingConfiguration, TrafficRoutingType, TreatMissingData,
};
use crate::units::Share;

const WAIT_MAX_SECS: u32 = 3_600;
const TIMEOUT_MIN_SECS: u32 = 600;
const TIMEOUT_MAX_SECS: u32 = 28_800;
const NAME_MAX_CHARS: usize = 255;
const TEMPLATE_NAME_MAX_CHARS: usize = 64;
const POLL_MAX_SECS: u32 = 300;

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

fn read_policy(value: &Value, problems: &mut Problems) -> Option<Policy> {
    let root = Obj::new(value, "", &["DeploymentConfig", "Guardrails"], problems)?;
    let deployment_config = match root.get("DeploymentConfig") {
        Some((v, path)) => deployment_config(v, &path, problems),
        None => Some(DeploymentConfig::default()),
    };
    let guardrails = match root.get("Guardrails") {
        Some((v, path)) => guardrails(v, &path, problems),
        None => Some(GuardrailsSection::default()),
    };
    root.finish(problems);
    let policy = Policy {
        deployment_config: deployment_config?,
        guardrails: guardrails?,
    };
    cross_checks(&policy, problems);
    Some(policy)
}

fn deployment_config(
    value: &Value,
    path: &str,
    problems: &mut Problems,
) -> Option<DeploymentConfig> {
    let obj = Obj::new(
        value,
        path,
        &[
            "BlueGreenUpdatePolicy",
            "RollingUpdatePolicy",
            "AutoRollbackConfiguration",
        ],
        problems,
    )?;
    if obj.has("BlueGreenUpdatePolicy") && obj.has("RollingUpdatePolicy") {
        problems.add(
            path,
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

/// `Some(None)` for an absent field, `None` for a field that failed to read (which fails the
/// whole section). Optional fields of `DeploymentConfig` use `flatten` instead: a field that
/// failed has its problem recorded, and reading goes on so that cross-field rules still run.
fn transpose<T>(field: Option<Option<T>>) -> Option<Option<T>> {
    match field {
        None => Some(None),
        Some(read) => read.map(Some),
    }
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
    let wait = obj
        .require("WaitIntervalInSeconds", problems)
        .and_then(|(v, p)| whole_number(v, &p, 0, WAIT_MAX_SECS, "seconds", problems));
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

fn guardrails(value: &Value, path: &str, problems: &mut Problems) -> Option<GuardrailsSection> {
    let obj = Obj::new(
        value,
        path,
        &[
            "Engine",
            "TrafficSteps",
            "Alarms",
            "ApproveBeforeFinalShift",
            "PollIntervalInSeconds",
        ],
        problems,
    )?;
    let engine = match obj.get("Engine") {
        None => Some(Engine::Variant),
        Some((v, p)) => one_of(v, &p, &["variant", "native"], problems).map(|i| {
            if i == 0 {
                Engine::Variant
            } else {
                Engine::Native
            }
        }),
    };
    let steps = obj
        .get("TrafficSteps")
        .map(|(v, p)| traffic_steps(v, &p, problems));
    let alarms = match obj.get("Alarms") {
        None => Some(Vec::new()),
        Some((v, p)) => alarm_templates(v, &p, problems),
    };
    let approve = match obj.get("ApproveBeforeFinalShift") {
        None => Some(false),
        Some((v, p)) => boolean(v, &p, problems),
    };
    let poll = obj
        .get("PollIntervalInSeconds")
        .map(|(v, p)| whole_number(v, &p, 1, POLL_MAX_SECS, "seconds", problems));
    obj.finish(problems);
    Some(GuardrailsSection {
        engine: engine?,
        traffic_steps: transpose(steps)?,
        alarms: alarms?,
        approve_before_final_shift: approve?,
        poll_interval_in_seconds: transpose(poll)?,
    })
}

fn traffic_steps(value: &Value, path: &str, problems: &mut Problems) -> Option<Vec<Share>> {
    let mut steps = Vec::new();
    let mut complete = true;
    let items = entries(value, path, 1, MAX_TRAFFIC_STEPS, "traffic steps", problems);
    for (item, item_path) in &items {
        let share = number(item, item_path, problems).and_then(|pct| {
            let share = Share::from_percent(pct).filter(|s| *s > Share::ZERO);
            if share.is_none() {
                problems.add(
                    item_path,
                    format!(
                        "{} is not a share of requests; allowed: more than 0 and at most 100 \
                         percent, in steps of 0.01",
                        show(item)
                    ),
                );
            }
            share
        });
        match share {
            Some(s) => {
                if let Some(prev) = steps.last().filter(|prev| **prev >= s) {
                    problems.add(
                        item_path,
                        format!("{s} does not increase on the step before it ({prev}); steps must rise strictly"),
                    );
                }
                steps.push(s);
            }
            None => complete = false,
        }
    }
    if complete && steps.last().is_some_and(|last| *last != Share::FULL) {
        let last = items.len() - 1;
        problems.add(
            &format!("{path}[{last}]"),
            format!(
                "the last step is {}; it must be 100 so that green ends with all traffic",
                steps[last]
            ),
        );
    }
    complete.then_some(steps)
}

fn alarm_templates(
    value: &Value,
    path: &str,
    problems: &mut Problems,
) -> Option<Vec<AlarmTemplate>> {
    let mut templates = Vec::new();
    let mut complete = true;
    for (item, item_path) in entries(value, path, 0, MAX_ALARMS, "alarm templates", problems) {
        match alarm_template(item, &item_path, problems) {
            Some(t) => {
                if templates.iter().any(|o: &AlarmTemplate| o.name == t.name) {
                    problems.add(
                        &join(&item_path, "Name"),
                        format!(
                            "\"{}\" is used by another template; names must be unique",
                            t.name
                        ),
                    );
                }
                templates.push(t);
            }
            None => complete = false,
        }
    }
    complete.then_some(templates)
}

fn alarm_template(value: &Value, path: &str, problems: &mut Problems) -> Option<AlarmTemplate> {
    let obj = Obj::new(
        value,
        path,
        &[
            "Name",
            "Namespace",
            "MetricName",
            "Statistic",
            "ComparisonOperator",
            "Threshold",
            "PeriodInSeconds",
            "EvaluationPeriods",
            "DatapointsToAlarm",
            "TreatMissingData",
        ],
        problems,
    )?;
    let name = obj.require("Name", problems).and_then(|(v, p)| {
        let name = string(v, &p, 1, TEMPLATE_NAME_MAX_CHARS, problems)?;
        let ok = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            problems.add(
                &p,
                format!("{} may hold only letters, digits, '-' and '_'", show(v)),
            );
            return None;
        }
        Some(name)
    });
    let namespace = match obj.get("Namespace") {
        None => Some("AWS/SageMaker".to_owned()),
        Some((v, p)) => string(v, &p, 1, NAME_MAX_CHARS, problems),
    };
    let metric = obj
        .require("MetricName", problems)
        .and_then(|(v, p)| string(v, &p, 1, NAME_MAX_CHARS, problems));
    let statistic = obj
        .require("Statistic", problems)
        .and_then(|(v, p)| statistic(v, &p, problems));
    let comparison = obj
        .require("ComparisonOperator", problems)
        .and_then(|(v, p)| {
            const OPS: [&str; 4] = [
                "GreaterThanOrEqualToThreshold",
                "GreaterThanThreshold",
                "LessThanThreshold",
                "LessThanOrEqualToThreshold",
            ];
            one_of(v, &p, &OPS, problems).map(|i| match i {
                0 => ComparisonOperator::GreaterThanOrEqualToThreshold,
                1 => ComparisonOperator::GreaterThanThreshold,
                2 => ComparisonOperator::LessThanThreshold,
                _ => ComparisonOperator::LessThanOrEqualToThreshold,
            })
        });
    let threshold = obj
        .require("Threshold", problems)
        .and_then(|(v, p)| number(v, &p, problems));
    let period = obj.require("PeriodInSeconds", problems).and_then(|(v, p)| {
        let secs = whole_number(v, &p, 10, 86_400, "seconds", problems)?;
        if !matches!(secs, 10 | 20 | 30) && secs % 60 != 0 {
            problems.add(
                &p,
                format!("{secs} is not a CloudWatch alarm period; allowed: 10, 20, 30 or a multiple of 60 seconds"),
            );
            return None;
        }
        Some(secs)
    });
    let evaluation_periods = obj
        .require("EvaluationPeriods", problems)
        .and_then(|(v, p)| whole_number(v, &p, 1, 1_440, "", problems));
    if let (Some(period), Some(n)) = (period, evaluation_periods)
        && u64::from(period) * u64::from(n) > 86_400
    {
        problems.add(
            &join(path, "EvaluationPeriods"),
            format!(
                "{n} periods of {period} seconds look back more than the one day CloudWatch allows"
            ),
        );
    }
    let datapoints = match (obj.get("DatapointsToAlarm"), evaluation_periods) {
        (None, n) => n,
        (Some((v, p)), Some(n)) => {
            let d = whole_number(v, &p, 1, u32::MAX, "", problems)?;
            if d > n {
                problems.add(
                    &p,
                    format!("{d} exceeds EvaluationPeriods ({n}); an alarm needs at most that many datapoints"),
                );
            }
            Some(d)
        }
        (Some(_), None) => None,
    };
    let missing = match obj.get("TreatMissingData") {
        None => Some(TreatMissingData::Missing),
        Some((v, p)) => one_of(
            v,
            &p,
            &["breaching", "notBreaching", "ignore", "missing"],
            problems,
        )
        .map(|i| match i {
            0 => TreatMissingData::Breaching,
            1 => TreatMissingData::NotBreaching,
            2 => TreatMissingData::Ignore,
            _ => TreatMissingData::Missing,
        }),
    };
    obj.finish(problems);
    Some(AlarmTemplate {
        name: name?,
        namespace: namespace?,
        metric_name: metric?,
        statistic: statistic?,
        comparison_operator: comparison?,
        threshold: threshold?,
        period_in_seconds: period?,
        evaluation_periods: evaluation_periods?,
        datapoints_to_alarm: datapoints?,
        treat_missing_data: missing?,
    })
}

fn statistic(value: &Value, path: &str, problems: &mut Problems) -> Option<Statistic> {
    let text = value.as_str().unwrap_or_default();
    let named = match text {
        "Average" => Some(Statistic::Average),
        "Sum" => Some(Statistic::Sum),
        "SampleCount" => Some(Statistic::SampleCount),
        "Minimum" => Some(Statistic::Minimum),
        "Maximum" => Some(Statistic::Maximum),
        _ => None,
    };
    let percentile = || {
        text.strip_prefix('p')
            .and_then(|p| p.parse::<f64>().ok())
            .filter(|p| *p > 0.0 && *p < 100.0)
            .map(Statistic::Percentile)
    };
    let found = named.or_else(percentile);
    if found.is_none() {
        problems.add(
            path,
            format!(
                "{} is not a statistic; allowed: Average, Sum, SampleCount, Minimum, Maximum or a percentile such as p99",
                show(value)
            ),
        );
    }
    found
}

/// Rules that span fields or sections.
fn cross_checks(policy: &Policy, problems: &mut Problems) {
    let config = &policy.deployment_config;
    let guardrails = &policy.guardrails;
    if guardrails.engine == Engine::Variant && config.rolling_update_policy.is_some() {
        problems.add(
            "DeploymentConfig.RollingUpdatePolicy",
            "rolling updates replace instances inside one variant and are run by SageMaker; \
             set Guardrails.Engine to native, or use BlueGreenUpdatePolicy with the variant engine",
        );
    }
    if guardrails.engine == Engine::Native {
        let variant_only = [
            (
                "TrafficSteps",
                guardrails.traffic_steps.is_some(),
                "SageMaker shifts instances, not a list of request shares",
            ),
            (
                "Alarms",
                !guardrails.alarms.is_empty(),
                "name existing alarms in DeploymentConfig.AutoRollbackConfiguration instead",
            ),
            (
                "ApproveBeforeFinalShift",
                guardrails.approve_before_final_shift,
                "SageMaker cannot pause a deployment for approval",
            ),
        ];
        for (field, present, why) in variant_only {
            if present {
                problems.add(
                    &format!("Guardrails.{field}"),
                    format!("needs Engine variant: {why}"),
                );
            }
        }
    }
    if let Some(bg) = &config.blue_green_update_policy {
        let routing = &bg.traffic_routing_configuration;
        let wait = routing.wait_interval_in_seconds;
        let final_bake = bg.termination_wait_in_seconds.unwrap_or(0);
        let step_count = match (&guardrails.traffic_steps, guardrails.engine) {
            (Some(steps), Engine::Variant) => Some(steps.len()),
            _ => blue_green_step_count(routing),
        };
        if let (Some(timeout), Some(steps)) = (bg.maximum_execution_timeout_in_seconds, step_count)
        {
            let intermediate = u32::try_from(steps.saturating_sub(1)).unwrap_or(u32::MAX);
            let total = intermediate.saturating_mul(wait).saturating_add(final_bake);
            if timeout <= total {
                problems.add(
                    "DeploymentConfig.BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds",
                    format!(
                        "{timeout} must be larger than the sum of all waits: {total} seconds \
                         ({intermediate} x WaitIntervalInSeconds {wait} + TerminationWaitInSeconds {final_bake})"
                    ),
                );
            }
        }
    }
    if let Some(rolling) = &config.rolling_update_policy {
        let batch = rolling.maximum_batch_size;
        if let (Some(timeout), CapacityType::CapacityPercent) =
            (rolling.maximum_execution_timeout_in_seconds, batch.r#type)
        {
            let batches = 100_u32.div_ceil(batch.value.max(1));
            let total = batches.saturating_mul(rolling.wait_interval_in_seconds);
            if timeout <= total {
                problems.add(
                    "DeploymentConfig.RollingUpdatePolicy.MaximumExecutionTimeoutInSeconds",
                    format!(
                        "{timeout} must be larger than the sum of all waits: {total} seconds \
                         ({batches} batches x WaitIntervalInSeconds {})",
                        rolling.wait_interval_in_seconds
                    ),
                );
            }
        }
    }
}

/// The number of traffic steps of a blue/green policy when it does not depend on the fleet.
pub(crate) fn blue_green_step_count(routing: &TrafficRoutingConfiguration) -> Option<usize> {
    match routing.r#type {
        TrafficRoutingType::AllAtOnce => Some(1),
        TrafficRoutingType::Canary => Some(2),
        TrafficRoutingType::Linear => match routing.linear_step_size {
            Some(CapacitySize {
                r#type: CapacityType::CapacityPercent,
                value,
            }) if value > 0 => usize::try_from(100_u32.div_ceil(value)).ok(),
            _ => None,
        },
    }
}
