//! The rules that span fields or sections of a policy: which engine may use what, and a timeout
//! larger than the sum of all waits. They run on whatever was read, even when some field had a
//! problem, so that one mistake does not hide another.

use super::reader::{Problems, join};
use super::{
    CapacitySize, CapacityType, EngineChoice, Policy, TrafficRoutingConfiguration,
    TrafficRoutingType,
};

/// Rules that span fields or sections. `config` is where SageMaker's `DeploymentConfig` is in
/// the document (`DeploymentConfig`, or the top).
pub(super) fn cross_checks(policy: &Policy, config_path: &str, problems: &mut Problems) {
    let config = &policy.deployment_config;
    let guardrails = &policy.guardrails;
    let at = |field: &str| join(config_path, field);
    if config.rolling_update_policy.is_some() {
        match guardrails.engine {
            EngineChoice::Variant => problems.add(
                &at("RollingUpdatePolicy"),
                "rolling updates replace instances inside one variant and are run by SageMaker; \
                 use Guardrails.Engine native or auto, or BlueGreenUpdatePolicy with the variant \
                 engine",
            ),
            EngineChoice::Auto => {
                for field in policy.variant_only_fields() {
                    problems.add(
                        field,
                        "needs the variant engine, but RollingUpdatePolicy is run by SageMaker \
                         (the native engine); use BlueGreenUpdatePolicy, or drop this field",
                    );
                }
            }
            EngineChoice::Native => {}
        }
    }
    if guardrails.engine == EngineChoice::Native {
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
            (Some(steps), EngineChoice::Variant | EngineChoice::Auto) => Some(steps.len()),
            _ => blue_green_step_count(routing),
        };
        if let (Some(timeout), Some(steps)) = (bg.maximum_execution_timeout_in_seconds, step_count)
        {
            let intermediate = u32::try_from(steps.saturating_sub(1)).unwrap_or(u32::MAX);
            let total = intermediate.saturating_mul(wait).saturating_add(final_bake);
            if timeout <= total {
                problems.add(
                    &at("BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds"),
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
                    &at("RollingUpdatePolicy.MaximumExecutionTimeoutInSeconds"),
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
fn blue_green_step_count(routing: &TrafficRoutingConfiguration) -> Option<usize> {
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
