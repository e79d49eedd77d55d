//! The deployment policy: SageMaker's own `DeploymentConfig` spelled exactly as AWS spells it,
//! plus an optional `Guardrails` section for what SageMaker cannot express. This module owns
//! parsing (JSON or YAML) and validation; it does not know about fleets (see `plan`) or about
//! running a deployment (see `core`).
//!
//! A policy document is SageMaker's `DeploymentConfig` exactly as `aws sagemaker update-endpoint
//! --deployment-config` and AWS's documentation take it, optionally with a `Guardrails` section
//! beside it:
//!
//! ```yaml
//! BlueGreenUpdatePolicy: ...   # as given to SageMaker's UpdateEndpoint, unchanged
//! AutoRollbackConfiguration: ...
//! Guardrails:                  # optional
//!   Engine: auto               # auto (default), variant or native
//!   TrafficSteps: [1, 5, 25, 100]
//!   Alarms: [...]              # templates scoped to the green variant
//!   ApproveBeforeFinalShift: true
//! ```
//!
//! The same fields may be wrapped in `DeploymentConfig:` (the form of earlier versions).

pub mod limits;
mod read;
mod read_analysis;
mod read_guardrails;
mod read_hooks;
mod reader;
mod rules;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::units::Share;

/// A parsed and validated policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Policy {
    /// SageMaker's `DeploymentConfig`.
    pub deployment_config: DeploymentConfig,
    /// What SageMaker cannot express.
    pub guardrails: GuardrailsSection,
}

/// SageMaker's `DeploymentConfig` (at most one of the two update policies).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green_update_policy: Option<BlueGreenUpdatePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update_policy: Option<RollingUpdatePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_rollback_configuration: Option<AutoRollbackConfiguration>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BlueGreenUpdatePolicy {
    pub traffic_routing_configuration: TrafficRoutingConfiguration,
    /// The final bake, after all traffic is on green and before blue is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_wait_in_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_execution_timeout_in_seconds: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrafficRoutingConfiguration {
    pub r#type: TrafficRoutingType,
    /// The bake after each step but the last.
    pub wait_interval_in_seconds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_size: Option<CapacitySize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_step_size: Option<CapacitySize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrafficRoutingType {
    AllAtOnce,
    Canary,
    Linear,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RollingUpdatePolicy {
    pub maximum_batch_size: CapacitySize,
    pub wait_interval_in_seconds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_execution_timeout_in_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_maximum_batch_size: Option<CapacitySize>,
}

/// SageMaker's `CapacitySize`: a number of instances or a percentage of the variant's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CapacitySize {
    pub r#type: CapacityType,
    pub value: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CapacityType {
    InstanceCount,
    CapacityPercent,
}

impl fmt::Display for CapacitySize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.r#type {
            CapacityType::InstanceCount if self.value == 1 => write!(f, "1 instance"),
            CapacityType::InstanceCount => write!(f, "{} instances", self.value),
            CapacityType::CapacityPercent => write!(f, "{}% of instances", self.value),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AutoRollbackConfiguration {
    pub alarms: Vec<AlarmRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmRef {
    pub alarm_name: String,
}

/// Who drives the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Guardrails adds green as a second production variant and moves traffic by weights.
    #[default]
    Variant,
    /// SageMaker runs its own blue/green or rolling deployment; Guardrails follows it.
    Native,
}

/// The engine a policy asks for: one of them, or `auto` (the plan chooses, and says why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// Native when SageMaker can run the policy on the endpoint; variant when the policy asks
    /// for what only the variant engine does, or the endpoint is one native guardrails exclude.
    #[default]
    Auto,
    Variant,
    Native,
}

impl EngineChoice {
    /// The engine asked for, unless the plan is to choose.
    pub fn fixed(self) -> Option<Engine> {
        match self {
            EngineChoice::Auto => None,
            EngineChoice::Variant => Some(Engine::Variant),
            EngineChoice::Native => Some(Engine::Native),
        }
    }
}

impl fmt::Display for EngineChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EngineChoice::Auto => "auto",
            EngineChoice::Variant => "variant",
            EngineChoice::Native => "native",
        })
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Variant => "variant",
            Engine::Native => "native",
        })
    }
}

/// The `Guardrails` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GuardrailsSection {
    pub engine: EngineChoice,
    /// Green's share of requests at each step; strictly increasing, ending at 100%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_steps: Option<Vec<Share>>,
    /// Alarm templates that Guardrails creates scoped to the green variant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<AlarmTemplate>,
    /// Hold before the last shift until a person approves.
    #[serde(default)]
    pub approve_before_final_shift: bool,
    /// How often to re-observe while waiting on SageMaker, when no event arrives sooner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval_in_seconds: Option<u32>,
    /// Variant engine: how long the final fleet (the new model under blue's variant name) bakes,
    /// watched, before the deployment succeeds; the last step's bake when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_fleet_bake_in_seconds: Option<u32>,
    /// How the judge compares green with blue (`Guardrails.Analysis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
    /// Lambda functions asked whether the rollout may go on (`Guardrails.Hooks`).
    #[serde(default, skip_serializing_if = "Hooks::is_empty")]
    pub hooks: Hooks,
}

/// `Guardrails.Hooks`: Lambda functions the policy names, asked whether the rollout may go on,
/// as CodeDeploy asks its lifecycle hooks (`BeforeAllowTraffic`, `AfterAllowTraffic`), with
/// the function's answer as its return value (README, "Hooks").
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Hooks {
    /// Asked once green is provisioned at weight 0, before its first request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_traffic: Option<Hook>,
    /// Asked after the final shift's bake, while blue still stands by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_traffic: Option<Hook>,
}

impl Hooks {
    pub fn is_empty(&self) -> bool {
        self.pre_traffic.is_none() && self.post_traffic.is_none()
    }

    /// The hook of `point`, if the policy names one.
    pub fn at(&self, point: HookPoint) -> Option<&Hook> {
        match point {
            HookPoint::PreTraffic => self.pre_traffic.as_ref(),
            HookPoint::PostTraffic => self.post_traffic.as_ref(),
        }
    }

    /// The longest the hooks may take together.
    pub fn timeout_secs(&self) -> u32 {
        [&self.pre_traffic, &self.post_traffic]
            .into_iter()
            .flatten()
            .map(|h| h.timeout_in_seconds)
            .fold(0, u32::saturating_add)
    }
}

/// Where in the rollout a hook is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HookPoint {
    PreTraffic,
    PostTraffic,
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HookPoint::PreTraffic => "pre-traffic",
            HookPoint::PostTraffic => "post-traffic",
        })
    }
}

/// One hook: the function, how long it may take to say yes or no, and what its silence means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Hook {
    /// A function name, partial ARN or ARN, optionally with a version or alias, whose name
    /// begins with `guardrails-hook-` (`HOOK_FUNCTION_PREFIX`).
    pub function_name: String,
    /// From the first call: past it with no `Succeeded` or `Failed`, `OnTimeout` decides.
    pub timeout_in_seconds: u32,
    pub on_timeout: OnHookTimeout,
}

/// What a hook that did not answer in time means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnHookTimeout {
    RollBack,
    /// Go on, and say in the record and the page that the hook never answered.
    Continue,
}

/// The functions Guardrails may invoke as hooks: the template grants `lambda:InvokeFunction`
/// on these names only, as AWS's managed policy `AWSCodeDeployRoleForLambda` grants CodeDeploy
/// its hooks named `CodeDeployHook_*` (CodeDeploy User Guide, "AppSpec 'hooks' section for an
/// AWS Lambda deployment").
pub const HOOK_FUNCTION_PREFIX: &str = "guardrails-hook-";

/// `Guardrails.Analysis`: how the judge compares green with blue while both serve (README,
/// "The judge"). Absent, the defaults apply: green's 5xx rate against blue's, a 50% worse
/// green worth acting on, a 1% false-rollback rate, 1,000 green requests before any verdict,
/// and an inconclusive bake extended by up to 600 s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Analysis {
    /// What is compared; each comparison gets an equal share of the false-rollback rate.
    pub compare: Vec<Comparison>,
    /// The most deployments of a green identical to blue that may be rolled back, 0 to 0.2.
    pub false_rollback_rate: f64,
    /// Green requests a step must have served before the judge says anything.
    pub minimum_green_requests: u32,
    pub when_inconclusive: WhenInconclusive,
    /// With `Extend`: how much longer an inconclusive bake may run, then it holds for
    /// approval.
    pub extend_up_to_seconds: u32,
    /// The period of the counts compared (GetMetricData's `Period`): SageMaker publishes its
    /// endpoint metrics once a minute.
    #[serde(default = "default_analysis_period")]
    pub period_in_seconds: u32,
    /// End a bake as soon as every comparison says green is no worse, rather than at its end.
    #[serde(default)]
    pub end_bakes_early: bool,
}

fn default_analysis_period() -> u32 {
    60
}

impl Default for Analysis {
    fn default() -> Analysis {
        Analysis {
            compare: vec![Comparison {
                metric: ComparedMetric::ErrorRate { include_4xx: false },
                minimum_degradation_percent: 50.0,
            }],
            false_rollback_rate: 0.01,
            minimum_green_requests: 1_000,
            when_inconclusive: WhenInconclusive::Extend,
            extend_up_to_seconds: 600,
            period_in_seconds: default_analysis_period(),
            end_bakes_early: false,
        }
    }
}

/// One thing the judge compares, and how much worse green must be for it to matter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Comparison {
    #[serde(flatten)]
    pub metric: ComparedMetric,
    /// Green's rate of bad requests this many percent above blue's is worth a rollback.
    pub minimum_degradation_percent: f64,
}

/// What counts as a bad request, per variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "Metric")]
pub enum ComparedMetric {
    /// `Invocation5XXErrors` (and `Invocation4XXErrors`) over `Invocations`.
    ErrorRate {
        #[serde(rename = "Include4XX")]
        include_4xx: bool,
    },
    /// Requests slower than blue's `ModelLatency` at this percentile, counted with
    /// CloudWatch's percentile rank of that latency on each side.
    Latency {
        #[serde(rename = "Percentile")]
        percentile: f64,
    },
    /// A count the user's code publishes per variant (`EndpointName`, `VariantName`), its
    /// `Sum` over `Invocations`.
    Custom {
        #[serde(rename = "Namespace")]
        namespace: String,
        #[serde(rename = "MetricName")]
        metric_name: String,
    },
}

impl ComparedMetric {
    /// What the comparison counts, in words.
    pub fn words(&self) -> String {
        match self {
            ComparedMetric::ErrorRate { include_4xx: false } => "5xx error rate".to_owned(),
            ComparedMetric::ErrorRate { include_4xx: true } => "4xx and 5xx error rate".to_owned(),
            ComparedMetric::Latency { percentile } => {
                format!("share of requests slower than blue's p{percentile}")
            }
            ComparedMetric::Custom {
                namespace,
                metric_name,
            } => format!("{namespace}/{metric_name} per request"),
        }
    }
}

/// What a bake that ends without a verdict does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WhenInconclusive {
    /// Bake longer, up to `ExtendUpToSeconds`, then hold for approval.
    Extend,
    /// Wait for a person (`guardrails approve` or `abort`).
    HoldForApproval,
    RollBack,
    /// Go on, and say in the record and the page that it passed without a verdict.
    Pass,
}

/// An alarm that Guardrails creates for the green variant only (dimensions `EndpointName` and
/// `VariantName`), so that it judges green's traffic and not blue's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmTemplate {
    /// A short name, unique in the policy; part of the created alarm's name.
    pub name: String,
    pub namespace: String,
    pub metric_name: String,
    pub statistic: Statistic,
    pub comparison_operator: ComparisonOperator,
    pub threshold: f64,
    pub period_in_seconds: u32,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub treat_missing_data: TreatMissingData,
}

/// CloudWatch's statistics, including percentiles (`p99`, `p99.9`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Statistic {
    Average,
    Sum,
    SampleCount,
    Minimum,
    Maximum,
    /// A percentile in (0, 100), spelled `p<value>`.
    Percentile(f64),
}

impl fmt::Display for Statistic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statistic::Average => f.write_str("Average"),
            Statistic::Sum => f.write_str("Sum"),
            Statistic::SampleCount => f.write_str("SampleCount"),
            Statistic::Minimum => f.write_str("Minimum"),
            Statistic::Maximum => f.write_str("Maximum"),
            Statistic::Percentile(p) => write!(f, "p{p}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ComparisonOperator {
    GreaterThanOrEqualToThreshold,
    GreaterThanThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl ComparisonOperator {
    /// The operator as a symbol, for plans and messages.
    pub fn symbol(self) -> &'static str {
        match self {
            ComparisonOperator::GreaterThanOrEqualToThreshold => ">=",
            ComparisonOperator::GreaterThanThreshold => ">",
            ComparisonOperator::LessThanThreshold => "<",
            ComparisonOperator::LessThanOrEqualToThreshold => "<=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TreatMissingData {
    Breaching,
    NotBreaching,
    Ignore,
    Missing,
}

/// One thing wrong with a policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where, as a JSON path (`DeploymentConfig.AutoRollbackConfiguration.Alarms[0].AlarmName`).
    pub path: String,
    /// What was found and what is allowed.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a policy document was refused: every problem found, field by field in document order,
/// then the rules that span fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid policy ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl PolicyError {
    fn syntax(message: String) -> PolicyError {
        PolicyError {
            problems: vec![Problem {
                path: "policy".to_owned(),
                message,
            }],
        }
    }
}

/// The most watched alarms SageMaker accepts, and the most templates Guardrails accepts.
pub const MAX_ALARMS: usize = 10;
/// The longest alarm, metric or namespace name CloudWatch and SageMaker accept.
pub const NAME_MAX_CHARS: usize = 255;
/// The most traffic steps in `Guardrails.TrafficSteps`.
pub const MAX_TRAFFIC_STEPS: usize = 20;
/// The poll interval when the policy sets none.
pub const DEFAULT_POLL_INTERVAL_SECS: u32 = 30;

impl Policy {
    /// Parses a policy from JSON (text starting with `{`) or YAML (anything else).
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        limits::text(text).map_err(PolicyError::syntax)?;
        let trimmed = text.trim_start();
        if trimmed.starts_with('{') {
            return Policy::from_json(text);
        }
        // `"BlueGreenUpdatePolicy": {...}, ...`: AWS's CLI examples drop the outer braces.
        if trimmed.starts_with('"')
            && serde_json::from_str::<serde_json::Value>(&format!("{{{text}}}")).is_ok()
        {
            return Err(PolicyError::syntax(
                "the members of a JSON object without its braces (as in AWS's CLI examples): \
                 wrap the document in { }"
                    .to_owned(),
            ));
        }
        Policy::from_yaml(text)
    }

    /// Parses a policy from JSON.
    pub fn from_json(text: &str) -> Result<Policy, PolicyError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| PolicyError::syntax(format!("not valid JSON: {e}")))?;
        Policy::from_value(&value)
    }

    /// Parses a policy from YAML.
    pub fn from_yaml(text: &str) -> Result<Policy, PolicyError> {
        let value: serde_json::Value = serde_yaml_ng::from_str(text)
            .map_err(|e| PolicyError::syntax(format!("not valid YAML: {e}")))?;
        Policy::from_value(&value)
    }

    /// Reads and validates a parsed document, reporting every problem at once.
    pub fn from_value(value: &serde_json::Value) -> Result<Policy, PolicyError> {
        limits::value(value).map_err(PolicyError::syntax)?;
        read::policy(value).map_err(|mut e| {
            let more = e.problems.len().saturating_sub(limits::MAX_PROBLEMS);
            if more > 0 {
                e.problems.truncate(limits::MAX_PROBLEMS);
                e.problems.push(Problem {
                    path: "policy".to_owned(),
                    message: format!("and {more} more problems"),
                });
            }
            e
        })
    }

    /// The alarm names SageMaker's `AutoRollbackConfiguration` watches.
    pub fn named_alarms(&self) -> Vec<&str> {
        self.deployment_config
            .auto_rollback_configuration
            .iter()
            .flat_map(|c| c.alarms.iter().map(|a| a.alarm_name.as_str()))
            .collect()
    }

    /// What in the policy only the variant engine can do, in the policy's words (empty when
    /// nothing): `Guardrails.TrafficSteps`, `Guardrails.Alarms`, `Guardrails.ApproveBeforeFinalShift`.
    pub fn variant_only_fields(&self) -> Vec<&'static str> {
        let g = &self.guardrails;
        [
            ("Guardrails.TrafficSteps", g.traffic_steps.is_some()),
            ("Guardrails.Alarms", !g.alarms.is_empty()),
            (
                "Guardrails.ApproveBeforeFinalShift",
                g.approve_before_final_shift,
            ),
            (
                "Guardrails.FinalFleetBakeInSeconds",
                g.final_fleet_bake_in_seconds.is_some(),
            ),
            ("Guardrails.Analysis", g.analysis.is_some()),
            ("Guardrails.Hooks", !g.hooks.is_empty()),
        ]
        .into_iter()
        .filter_map(|(field, present)| present.then_some(field))
        .collect()
    }

    /// The overall timeout the policy sets, if any.
    pub fn timeout_secs(&self) -> Option<u32> {
        let config = &self.deployment_config;
        config
            .blue_green_update_policy
            .as_ref()
            .and_then(|p| p.maximum_execution_timeout_in_seconds)
            .or_else(|| {
                config
                    .rolling_update_policy
                    .as_ref()
                    .and_then(|p| p.maximum_execution_timeout_in_seconds)
            })
    }
}

#[cfg(test)]
mod tests;
