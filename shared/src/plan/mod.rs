//! The plan: from a validated policy and the endpoint's current fleet, the ordered steps of a
//! deployment (green's share of traffic, instance counts, the bake after each step) and what is
//! watched. The plan is the dry run shown to users and the script the core follows; it does no
//! I/O and reads no clock.
//!
//! Rounding: a step's share of *requests* is exact (basis points). A share of *instances* is
//! rounded up (`ceil`), so a step never sends a fleet more load than its instances were sized
//! for, and never rounds to zero instances: 33% of 3 instances is 1, as in AWS's own examples;
//! 50% of 3 is 2. A size given in instances becomes the share `count / fleet`, rounded down to a
//! basis point (1 of 3 is 33.33%).

pub mod cost;
mod render;
mod steps;

use serde::{Deserialize, Serialize};

use crate::policy::{
    AlarmTemplate, DEFAULT_POLL_INTERVAL_SECS, DeploymentConfig, Engine, Policy, Problem,
};
use crate::units::Share;

/// Extra time Guardrails allows for provisioning green when the policy sets no timeout:
/// SageMaker usually takes 8 to 30 minutes to provision a fleet.
pub const PROVISIONING_ALLOWANCE_SECS: u32 = 3_600;

/// The endpoint as it serves now: blue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fleet {
    pub endpoint_name: String,
    pub config_name: String,
    pub variants: Vec<FleetVariant>,
}

/// One production variant of the current fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetVariant {
    pub variant_name: String,
    /// The model it serves (empty when unknown).
    #[serde(default)]
    pub model_name: String,
    pub instance_type: String,
    pub instance_count: u32,
}

/// The new model to roll out: green.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GreenSpec {
    /// The production variant green is added as (variant engine); must differ from blue's.
    pub variant_name: String,
    pub model_name: String,
    pub instance_type: String,
    /// Green's instances at 100% of traffic.
    pub instance_count: u32,
}

/// The ordered steps of a deployment and everything the core needs to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub deployment_id: String,
    pub engine: Engine,
    /// Why this engine: the policy named it, or what `auto` found.
    #[serde(default)]
    pub engine_reason: String,
    pub endpoint_name: String,
    /// Blue: the config and its single variant (variant engine) or the variant being replaced.
    pub blue_config_name: String,
    pub blue: FleetVariant,
    pub green: GreenSpec,
    /// Variant engine: the config with blue at full weight and green at weight 0.
    pub blue_green_config_name: String,
    /// The endpoint's config after success: blue's, with the new model alone under blue's
    /// variant name (for the variant engine, a new fleet that bakes before blue's goes).
    pub green_config_name: String,
    /// Variant engine: the bake of the final fleet (the last step's bake), watched like any
    /// step; an alarm rolls the endpoint back to the original config.
    #[serde(default)]
    pub cutover_bake_secs: u32,
    /// Where the steps came from, in the policy's words.
    pub steps_from: String,
    pub steps: Vec<Step>,
    /// Alarms whose ALARM state rolls the deployment back, watched during every shift and bake.
    pub watched_alarms: Vec<WatchedAlarm>,
    pub approve_before_final_shift: bool,
    /// The deadline, counted from the start of the deployment.
    pub timeout_secs: u32,
    pub timeout_from_policy: bool,
    /// The sum of all bakes.
    pub waits_secs: u32,
    pub poll_secs: u32,
    /// Things that are allowed but probably not what the user wants.
    pub warnings: Vec<String>,
    /// Native engine: the `DeploymentConfig` SageMaker runs the rollout under, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_config: Option<DeploymentConfig>,
    /// The checks run against the endpoint before any change (absent offline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<crate::preflight::Preflight>,
    /// The fleets the deployment provisions and the instances they run (`cost`).
    #[serde(default)]
    pub fleets: cost::FleetCost,
    /// Blue's variant's Application Auto Scaling target, as found before any change: its
    /// dynamic scaling is suspended while traffic moves and restored as it was at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<ScalableTarget>,
    /// Who asked for the deployment: the authenticated caller of the `deploy` command, or the
    /// approved model package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Variant engine: how the judge compares green with blue (`Guardrails.Analysis`); `None`,
    /// the judge is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<crate::policy::Analysis>,
    /// Variant engine: the Lambda functions asked before green's first request and after the
    /// final shift (`Guardrails.Hooks`).
    #[serde(default, skip_serializing_if = "crate::policy::Hooks::is_empty")]
    pub hooks: crate::policy::Hooks,
}

/// The most periods of counts a deployment record keeps for the judge, over all comparisons:
/// the record is one DynamoDB item, at most 400 KB (DynamoDB developer guide, "Service, account,
/// and table quotas"), and a period takes about 100 bytes.
pub const MAX_JUDGED_PERIODS: u64 = 2_000;

/// A variant's scalable target (Application Auto Scaling, dimension
/// `sagemaker:variant:DesiredInstanceCount`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalableTarget {
    pub min_capacity: u32,
    pub max_capacity: u32,
    /// What was suspended before the deployment.
    pub suspended: Suspended,
    /// The names of its scaling policies.
    pub policies: Vec<String>,
}

/// A scalable target's `SuspendedState`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspended {
    pub dynamic_scaling_in: bool,
    pub dynamic_scaling_out: bool,
    pub scheduled_scaling: bool,
}

impl Suspended {
    /// Every kind of scaling suspended, as during a deployment.
    pub const ALL: Suspended = Suspended {
        dynamic_scaling_in: true,
        dynamic_scaling_out: true,
        scheduled_scaling: true,
    };
}

/// One step: move green to `green_share` of requests, then bake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub green_share: Share,
    pub green_instances: u32,
    pub blue_instances: u32,
    /// The bake after the shift; the last step's bake is the final bake before blue goes.
    pub bake_secs: u32,
}

/// An alarm that rolls the deployment back when in ALARM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchedAlarm {
    pub alarm_name: String,
    /// `None` for an existing alarm named in `AutoRollbackConfiguration`; the template for an
    /// alarm that Guardrails creates scoped to green and deletes at the end.
    pub green_template: Option<AlarmTemplate>,
    /// Variant engine: a template's alarm for the final fleet, scoped to blue's variant name,
    /// which the new model keeps; watched only while that fleet bakes (the alarms of the
    /// steps watch green's own variant, which the final config no longer has). Alarms the
    /// policy names are watched throughout.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub final_fleet: bool,
}

impl WatchedAlarm {
    /// Whether this alarm is watched in the phase: the final fleet's bake (`final_fleet`
    /// phase) or the steps before it.
    pub fn watched(&self, final_fleet: bool) -> bool {
        self.green_template.is_none() || self.final_fleet == final_fleet
    }
}

/// Why no plan could be made for this fleet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot plan this deployment:{}", self.problems.iter().map(|p| format!("\n  - {p}")).collect::<String>())]
pub struct PlanError {
    pub problems: Vec<Problem>,
}

/// The longest deployment id: it is part of endpoint-config names (at most 63 characters).
pub const DEPLOYMENT_ID_MAX_CHARS: usize = 32;

impl Plan {
    /// Plans rolling `green` out to the endpoint serving `fleet` under `policy`.
    pub fn new(
        deployment_id: &str,
        policy: &Policy,
        fleet: &Fleet,
        green: &GreenSpec,
    ) -> Result<Plan, PlanError> {
        let mut problems = Vec::new();
        let mut problem = |path: &str, message: String| {
            problems.push(Problem {
                path: path.to_owned(),
                message,
            })
        };
        if !is_name(deployment_id, DEPLOYMENT_ID_MAX_CHARS) {
            problem(
                "deployment id",
                format!(
                    "\"{deployment_id}\" must be 1 to {DEPLOYMENT_ID_MAX_CHARS} letters, digits \
                     or '-', starting with a letter or digit"
                ),
            );
        }
        let (engine, engine_reason) = engine_for(policy, fleet, &green.instance_type);
        let blue = match fleet.variants.as_slice() {
            [one] => Some(one.clone()),
            [] => {
                problem(
                    "fleet",
                    format!("endpoint {} has no production variant", fleet.endpoint_name),
                );
                None
            }
            many => {
                let names: Vec<&str> = many.iter().map(|v| v.variant_name.as_str()).collect();
                problem(
                    "fleet",
                    format!(
                        "endpoint {} has {} production variants ({}); Guardrails deploys to \
                         endpoints with exactly one",
                        fleet.endpoint_name,
                        many.len(),
                        names.join(", ")
                    ),
                );
                None
            }
        };
        if !is_name(&green.model_name, 63) {
            problem(
                "green.model_name",
                format!(
                    "\"{}\" is not a SageMaker model name (1 to 63 letters, digits or '-', \
                     starting and ending with a letter or digit)",
                    green.model_name
                ),
            );
        }
        if !green.instance_type.is_empty() && !is_instance_type(&green.instance_type) {
            problem(
                "green.instance_type",
                format!(
                    "\"{}\" is not an instance type SageMaker endpoints run on \
                     (ProductionVariantInstanceType, for example ml.m5.xlarge)",
                    green.instance_type
                ),
            );
        }
        if green.instance_count == 0 {
            problem(
                "green.instance_count",
                "0 instances cannot serve traffic; give at least 1".to_owned(),
            );
        }
        if !is_name(&green.variant_name, 63) {
            problem(
                "green.variant_name",
                format!(
                    "\"{}\" is not a SageMaker variant name (1 to 63 letters, digits or '-')",
                    green.variant_name
                ),
            );
        }
        if let Some(b) = &blue
            && engine == Engine::Variant
            && b.variant_name == green.variant_name
        {
            problem(
                "green.variant_name",
                format!(
                    "\"{}\" is blue's variant name; the variant engine adds green as a second \
                         variant, so it needs a name of its own",
                    green.variant_name
                ),
            );
        }
        let fleet_size = match engine {
            Engine::Variant => green.instance_count,
            // Native: SageMaker sizes steps against the variant being replaced.
            Engine::Native => blue.as_ref().map_or(0, |b| b.instance_count),
        };
        let schedule = if fleet_size == 0 {
            None
        } else {
            steps::schedule(policy, fleet_size, &mut problem)
        };
        if let Some(analysis) = &policy.guardrails.analysis
            && engine == Engine::Native
        {
            if analysis.when_inconclusive != crate::policy::WhenInconclusive::Pass {
                problem(
                    "Guardrails.Analysis.WhenInconclusive",
                    "under the native engine SageMaker decides when each bake ends, so an \
                     inconclusive judge can only let it go on and say so (WhenInconclusive: \
                     Pass); Extend, HoldForApproval and RollBack need the variant engine \
                     (Guardrails.Engine: variant)"
                        .to_owned(),
                );
            }
            if policy.named_alarms().len() >= crate::policy::MAX_ALARMS {
                problem(
                    "AutoRollbackConfiguration.Alarms",
                    format!(
                        "SageMaker watches at most {} alarms and the judge needs one of them \
                         (guardrails-{deployment_id}-judge): name at most {}",
                        crate::policy::MAX_ALARMS,
                        crate::policy::MAX_ALARMS - 1
                    ),
                );
            }
        }
        if !policy.guardrails.hooks.is_empty() && engine == Engine::Native {
            problem(
                "Guardrails.Hooks",
                "SageMaker's own rollout has no point between provisioning green and its first \
                 request, nor after its last shift, where Guardrails could ask a hook: hooks \
                 need the variant engine (Guardrails.Engine: variant)"
                    .to_owned(),
            );
        }
        let (Some(blue), Some(schedule), true) = (blue, schedule, problems.is_empty()) else {
            return Err(PlanError { problems });
        };
        let steps: Vec<Step> = schedule
            .bakes
            .iter()
            .map(|&(green_share, bake_secs, blue_instances)| Step {
                green_share,
                green_instances: match engine {
                    Engine::Variant => green_share
                        .of_instances_rounded_up(green.instance_count)
                        .max(1),
                    Engine::Native => green_share
                        .of_instances_rounded_up(blue.instance_count)
                        .max(1),
                },
                blue_instances: blue_instances.unwrap_or(blue.instance_count),
                bake_secs,
            })
            .collect();
        let waits_secs = steps
            .iter()
            .map(|s| s.bake_secs)
            .fold(0, u32::saturating_add);
        let analysis = policy.guardrails.analysis.clone();
        // An inconclusive bake may be extended: the default deadline leaves room for it.
        let extensions = analysis.as_ref().map_or(0, |a| {
            let judged = steps
                .iter()
                .filter(|s| s.green_share.basis_points() < 10_000)
                .count();
            match a.when_inconclusive {
                crate::policy::WhenInconclusive::Extend => a
                    .extend_up_to_seconds
                    .saturating_mul(u32::try_from(judged).unwrap_or(u32::MAX)),
                _ => 0,
            }
        });
        let (timeout_secs, timeout_from_policy) = match policy.timeout_secs() {
            Some(t) => (t, true),
            None => (
                waits_secs
                    .saturating_add(extensions)
                    .saturating_add(policy.guardrails.hooks.timeout_secs())
                    .saturating_add(PROVISIONING_ALLOWANCE_SECS),
                false,
            ),
        };
        if let Some(a) = &analysis {
            let periods = u64::from(timeout_secs).div_ceil(u64::from(a.period_in_seconds.max(1)))
                * a.compare.len() as u64;
            if periods > MAX_JUDGED_PERIODS {
                return Err(PlanError {
                    problems: vec![Problem {
                        path: "Guardrails.Analysis.PeriodInSeconds".to_owned(),
                        message: format!(
                            "{} s periods over a deadline of {timeout_secs} s and {} comparisons \
                             are {periods} periods of counts; the deployment record keeps at \
                             most {MAX_JUDGED_PERIODS}: use a longer period",
                            a.period_in_seconds,
                            a.compare.len()
                        ),
                    }],
                });
            }
        }
        let watched_alarms = watched_alarms(policy, deployment_id, engine);
        let cutover_bake_secs = match engine {
            Engine::Variant => policy
                .guardrails
                .final_fleet_bake_in_seconds
                .unwrap_or_else(|| steps.last().map_or(0, |s| s.bake_secs)),
            Engine::Native => 0,
        };
        let mut plan = Plan {
            deployment_id: deployment_id.to_owned(),
            engine,
            engine_reason,
            endpoint_name: fleet.endpoint_name.clone(),
            blue_config_name: fleet.config_name.clone(),
            blue,
            green: green.clone(),
            blue_green_config_name: format!("guardrails-{deployment_id}-blue-green"),
            green_config_name: format!("guardrails-{deployment_id}-green"),
            cutover_bake_secs,
            steps_from: schedule.from,
            steps,
            watched_alarms,
            approve_before_final_shift: policy.guardrails.approve_before_final_shift,
            timeout_secs,
            timeout_from_policy,
            waits_secs,
            poll_secs: policy
                .guardrails
                .poll_interval_in_seconds
                .unwrap_or(DEFAULT_POLL_INTERVAL_SECS),
            warnings: schedule.notes,
            native_config: (engine == Engine::Native).then(|| native_config(policy, deployment_id)),
            preflight: None,
            fleets: cost::FleetCost::default(),
            scaling: None,
            requested_by: None,
            analysis,
            hooks: policy.guardrails.hooks.clone(),
        };
        plan.fleets = cost::of(&plan);
        plan.warnings.extend(warnings(&plan));
        Ok(plan)
    }

    /// The index of the last step.
    pub fn last_step(&self) -> usize {
        self.steps.len().saturating_sub(1)
    }

    /// The names of all watched alarms, in plan order.
    pub fn watched_alarm_names(&self) -> impl Iterator<Item = &str> {
        self.watched_alarms.iter().map(|a| a.alarm_name.as_str())
    }
}

/// Green's variant name when the request gives none: blue's for the native engine (SageMaker's
/// guardrails replace a variant in place and keep its name); for the variant engine, which
/// serves green beside blue during the steps, the model's name (with `-green` if blue has it).
pub fn default_green_variant(engine: Engine, blue: Option<&FleetVariant>, model: &str) -> String {
    match (engine, blue) {
        (Engine::Native, Some(b)) => b.variant_name.clone(),
        (_, b) => {
            let name = sagemaker_name(model);
            if b.is_some_and(|b| b.variant_name == name) {
                sagemaker_name(&format!("{name}-green"))
            } else {
                name
            }
        }
    }
}

/// `text` as a SageMaker name (model, variant): other characters become `-`, at most 63.
pub fn sagemaker_name(text: &str) -> String {
    let name: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    name.trim_matches('-').to_owned()
}

/// Instance types SageMaker's own guardrails do not bake on: it deploys them all at once
/// (the "Exclusions" page of SageMaker's deployment guardrails).
pub fn native_excluded_instance_type(instance_type: &str) -> bool {
    instance_type.starts_with("ml.inf1.")
}

/// The engine that runs `policy` on `fleet` with green on `green_instance_type`, and why: the
/// one the policy names, or, for `auto`, the variant engine when the policy asks for what only
/// it does or when SageMaker's guardrails exclude the endpoint, and SageMaker's own (native)
/// guardrails otherwise.
pub fn engine_for(policy: &Policy, fleet: &Fleet, green_instance_type: &str) -> (Engine, String) {
    if let Some(engine) = policy.guardrails.engine.fixed() {
        return (engine, "named by the policy (Guardrails.Engine)".to_owned());
    }
    let variant_only = policy.variant_only_fields();
    if !variant_only.is_empty() {
        return (
            Engine::Variant,
            format!(
                "auto: the policy asks for {}, which only the variant engine does",
                variant_only.join(", ")
            ),
        );
    }
    if policy.deployment_config.rolling_update_policy.is_some() {
        return (
            Engine::Native,
            "auto: rolling updates are run by SageMaker".to_owned(),
        );
    }
    let excluded = fleet
        .variants
        .iter()
        .map(|v| v.instance_type.as_str())
        .chain([green_instance_type])
        .find(|t| native_excluded_instance_type(t));
    if let Some(instance_type) = excluded {
        return (
            Engine::Variant,
            format!(
                "auto: SageMaker's guardrails deploy {instance_type} all at once with no bake, so \
                 Guardrails shifts the traffic itself"
            ),
        );
    }
    (
        Engine::Native,
        "auto: SageMaker's own guardrails can run this policy on this endpoint".to_owned(),
    )
}

/// SageMaker's pattern for endpoint, config and variant names: `[a-zA-Z0-9](-*[a-zA-Z0-9])*`.
/// Every instance type a production variant may have: the `ProductionVariantInstanceType` enum
/// of SageMaker's API model (the SDK's `values()`, which a test compares with this list), one
/// per line, sorted.
const INSTANCE_TYPES: &str = include_str!("instance_types.txt");

/// Whether SageMaker knows `instance_type` as an endpoint's (a production variant's).
pub fn is_instance_type(instance_type: &str) -> bool {
    INSTANCE_TYPES.lines().any(|known| known == instance_type)
}

fn is_name(text: &str, max_chars: usize) -> bool {
    let chars_ok = text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    !text.is_empty()
        && text.len() <= max_chars
        && chars_ok
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// The judge's alarm under the native engine: Guardrails' own, on a metric nobody publishes,
/// keeping its state when data is missing (`TreatMissingData: ignore`), so that it leaves
/// INSUFFICIENT_DATA only when the judge sets it to ALARM, and stays there. SageMaker watches it
/// with the policy's alarms and rolls back when it is in ALARM.
pub fn judge_alarm_template() -> AlarmTemplate {
    AlarmTemplate {
        name: "judge".to_owned(),
        namespace: "Guardrails/Judge".to_owned(),
        metric_name: "GreenWorse".to_owned(),
        statistic: crate::policy::Statistic::Maximum,
        comparison_operator: crate::policy::ComparisonOperator::GreaterThanOrEqualToThreshold,
        threshold: 1.0,
        period_in_seconds: 60,
        evaluation_periods: 1,
        datapoints_to_alarm: 1,
        treat_missing_data: crate::policy::TreatMissingData::Ignore,
    }
}

fn judge_alarm_name(deployment_id: &str) -> String {
    format!("guardrails-{deployment_id}-judge")
}

/// The DeploymentConfig SageMaker runs a native rollout under: the policy's, with the judge's
/// alarm among those it watches when the policy asks for the judge.
fn native_config(policy: &Policy, deployment_id: &str) -> DeploymentConfig {
    let mut config = policy.deployment_config.clone();
    if policy.guardrails.analysis.is_some() {
        let alarms = config
            .auto_rollback_configuration
            .get_or_insert_with(|| crate::policy::AutoRollbackConfiguration { alarms: Vec::new() });
        alarms.alarms.push(crate::policy::AlarmRef {
            alarm_name: judge_alarm_name(deployment_id),
        });
    }
    config
}

impl Plan {
    /// The judge's alarm, when the judge runs under the native engine.
    pub fn judge_alarm_name(&self) -> Option<String> {
        (self.engine == Engine::Native && self.analysis.is_some())
            .then(|| judge_alarm_name(&self.deployment_id))
    }
}

fn watched_alarms(policy: &Policy, deployment_id: &str, engine: Engine) -> Vec<WatchedAlarm> {
    let named = policy.named_alarms().into_iter().map(|name| WatchedAlarm {
        alarm_name: name.to_owned(),
        green_template: None,
        final_fleet: false,
    });
    let templated = policy.guardrails.alarms.iter().map(|t| WatchedAlarm {
        alarm_name: format!("guardrails-{deployment_id}-{}", t.name),
        green_template: Some(t.clone()),
        final_fleet: false,
    });
    let final_fleet = policy
        .guardrails
        .alarms
        .iter()
        .filter(|_| engine == Engine::Variant)
        .map(|t| WatchedAlarm {
            alarm_name: format!("guardrails-{deployment_id}-{}-final", t.name),
            green_template: Some(t.clone()),
            final_fleet: true,
        });
    let judge = policy
        .guardrails
        .analysis
        .iter()
        .filter(|_| engine == Engine::Native)
        .map(|_| WatchedAlarm {
            alarm_name: judge_alarm_name(deployment_id),
            green_template: Some(judge_alarm_template()),
            final_fleet: false,
        });
    named
        .chain(templated)
        .chain(final_fleet)
        .chain(judge)
        .collect()
}

fn warnings(plan: &Plan) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(analysis) = &plan.analysis {
        if !plan
            .steps
            .iter()
            .any(|s| s.green_share.basis_points() < 10_000)
        {
            warnings.push(
                "Guardrails.Analysis: no step leaves blue serving, so the judge has nothing to \
                 compare green with; use CANARY or LINEAR traffic routing"
                    .to_owned(),
            );
        }
        if analysis.period_in_seconds < 60 {
            warnings.push(format!(
                "Guardrails.Analysis.PeriodInSeconds: SageMaker publishes endpoint metrics once a \
                 minute; {} s periods read the same counts in more calls",
                analysis.period_in_seconds
            ));
        }
    }
    if plan.watched_alarms.is_empty() && plan.analysis.is_none() {
        warnings.push(
            "no alarm is watched: a bad green is only rolled back by a manual abort or the \
             timeout; name alarms in AutoRollbackConfiguration or add Guardrails.Alarms"
                .to_owned(),
        );
    }
    if plan.steps.last().is_some_and(|s| s.bake_secs == 0) {
        warnings.push(
            "the final bake is 0 s (TerminationWaitInSeconds): blue is removed as soon as green \
             has all traffic, so no alarm has a window to act"
                .to_owned(),
        );
    }
    if plan.engine == Engine::Variant && plan.timeout_from_policy {
        let spare = plan.timeout_secs.saturating_sub(plan.waits_secs);
        if spare < 1_800 {
            warnings.push(format!(
                "the timeout ({} s) leaves {spare} s beyond the bakes for provisioning green and \
                 shifting; SageMaker usually takes 8 to 30 minutes to provision",
                plan.timeout_secs
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests;
