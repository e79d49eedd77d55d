//! Our outbound event: "Guardrails Deployment State Change", published on EventBridge for every
//! transition. It is the source of truth for notifications, dashboards and other automation, so
//! its schema is stable and documented in the README; fields are only ever added.

use serde::{Deserialize, Serialize};

use crate::core::{Cause, Deployment, Phase, Transition};
use crate::policy::Engine;
use crate::units::Share;

/// The EventBridge `source` of our events.
pub const SOURCE: &str = "guardrails";
/// The EventBridge `detail-type` of our events.
pub const DETAIL_TYPE: &str = "Guardrails Deployment State Change";
/// The version of the `detail` schema below.
pub const SCHEMA_VERSION: &str = "1";

/// The `detail` of a "Guardrails Deployment State Change" event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateChange {
    pub schema_version: String,
    /// `<deploymentId>-<sequence>`: the same transition always has the same id, so consumers
    /// can drop the duplicates that at-least-once delivery brings.
    pub event_id: String,
    pub deployment_id: String,
    pub endpoint_name: String,
    pub model_name: String,
    pub green_variant: String,
    pub blue_config_name: String,
    /// Who runs the rollout: `variant` (Guardrails) or `native` (SageMaker).
    #[serde(default)]
    pub engine: Engine,
    /// Epoch milliseconds of the decision.
    pub time: i64,
    /// Position of this transition in the deployment's history, from 0 (the start).
    pub sequence: u64,
    pub previous_state: PhaseKind,
    pub state: PhaseKind,
    /// 1-based step of the new phase, when it has one.
    pub step: Option<usize>,
    pub step_count: usize,
    /// Green's share of requests when the decision was made, as observed (percent).
    pub observed_green_percent: Option<f64>,
    /// The step's planned share of requests (percent), when the new phase has a step.
    pub planned_green_percent: Option<f64>,
    pub cause: Cause,
    /// The cause in words, for people.
    pub cause_text: String,
    /// `SUCCEEDED`, `ROLLED_BACK` or `FAILED` once the deployment has ended.
    pub outcome: Option<PhaseKind>,
    /// Milliseconds from the start of the deployment.
    pub elapsed_ms: i64,
    /// When the rollback was decided (epoch ms), once there is one.
    #[serde(default)]
    pub rollback_started_at: Option<i64>,
    /// When every request was seen back on blue during the rollback (epoch ms).
    #[serde(default)]
    pub traffic_restored_at: Option<i64>,
    /// The judge's latest answer when the transition was decided, if it compares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judgement: Option<crate::core::Judgement>,
    /// On the final event: what green served and what it cost (`core::BlastRadius`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blast_radius: Option<crate::core::BlastRadius>,
}

/// The kind of a phase, without its data: the `state` of our events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PhaseKind {
    Provisioning,
    Shifting,
    Baking,
    AwaitingApproval,
    /// The judge was inconclusive at a bake's end; a person approves or aborts.
    HeldInconclusive,
    /// A hook the policy names is asked whether the rollout may go on.
    Hooking,
    RemovingBlue,
    /// The fleet that keeps serving bakes, watched (variant engine).
    BakingFinalFleet,
    RollingBack,
    /// Native engine: SageMaker runs the rollout.
    NativeDeploying,
    Succeeded,
    RolledBack,
    Failed,
}

impl PhaseKind {
    pub fn of(phase: &Phase) -> PhaseKind {
        match phase {
            Phase::Provisioning { .. } => PhaseKind::Provisioning,
            Phase::Shifting { .. } => PhaseKind::Shifting,
            Phase::Baking { .. } => PhaseKind::Baking,
            Phase::AwaitingApproval { .. } => PhaseKind::AwaitingApproval,
            Phase::HeldInconclusive { .. } => PhaseKind::HeldInconclusive,
            Phase::Hooking { .. } => PhaseKind::Hooking,
            Phase::RemovingBlue { .. } => PhaseKind::RemovingBlue,
            Phase::BakingFinalFleet { .. } => PhaseKind::BakingFinalFleet,
            Phase::RollingBack { .. } => PhaseKind::RollingBack,
            Phase::NativeDeploying { .. } => PhaseKind::NativeDeploying,
            Phase::Succeeded => PhaseKind::Succeeded,
            Phase::RolledBack { .. } => PhaseKind::RolledBack,
            Phase::Failed { .. } => PhaseKind::Failed,
        }
    }
}

fn step_of(phase: &Phase) -> Option<usize> {
    match phase {
        Phase::Shifting { step }
        | Phase::Baking { step, .. }
        | Phase::AwaitingApproval { step }
        | Phase::HeldInconclusive { step, .. } => Some(*step),
        _ => None,
    }
}

impl StateChange {
    /// The event for `transition`, the `sequence`-th of `deployment` (the record after it).
    pub fn new(
        deployment: &Deployment,
        transition: &Transition,
        sequence: u64,
        observed_green: Option<Share>,
    ) -> StateChange {
        let plan = &deployment.plan;
        let step = step_of(&transition.to);
        let state = PhaseKind::of(&transition.to);
        StateChange {
            schema_version: SCHEMA_VERSION.to_owned(),
            event_id: format!("{}-{sequence}", plan.deployment_id),
            deployment_id: plan.deployment_id.clone(),
            endpoint_name: plan.endpoint_name.clone(),
            model_name: plan.green.model_name.clone(),
            green_variant: plan.green.variant_name.clone(),
            blue_config_name: plan.blue_config_name.clone(),
            engine: plan.engine,
            time: transition.at.epoch_ms(),
            sequence,
            previous_state: PhaseKind::of(&transition.from),
            state,
            step: step.map(|s| s + 1),
            step_count: plan.steps.len(),
            observed_green_percent: observed_green.map(|s| s.fraction() * 100.0),
            planned_green_percent: step
                .and_then(|s| plan.steps.get(s))
                .map(|s| s.green_share.fraction() * 100.0),
            cause_text: transition.cause.to_string(),
            cause: transition.cause.clone(),
            outcome: transition.to.is_final().then_some(state),
            elapsed_ms: transition.at.epoch_ms() - deployment.started_at.epoch_ms(),
            rollback_started_at: deployment.rollback_started_at.map(|t| t.epoch_ms()),
            traffic_restored_at: deployment.traffic_restored_at.map(|t| t.epoch_ms()),
            judgement: deployment
                .judgement
                .clone()
                .filter(|j| j.at == transition.at),
            blast_radius: deployment
                .blast_radius
                .clone()
                .filter(|_| transition.to.is_final())
                .map(|mut b| {
                    // The counts per period stay in the record: an event is at most 256 KiB.
                    b.samples.clear();
                    b
                }),
        }
    }
}

/// The `detail-type` of a refused request.
pub const REFUSED_DETAIL_TYPE: &str = "Guardrails Deployment Refused";

/// The `detail-type` of one share of the sweep, which the sweep publishes for another
/// bake-watcher invocation to reconcile when more deployments are active than one invocation
/// reconciles (`SweepShard::MAX_ENDPOINTS`).
pub const SWEEP_SHARD_DETAIL_TYPE: &str = "Guardrails Sweep Shard";

/// The `detail` of a "Guardrails Sweep Shard" event: which endpoints to reconcile, and how many
/// shards this sweep has (each paces its alarm reads to its share of the account's quota).
/// It carries names only, never states: whoever may put events on the bus can make Guardrails
/// look at a deployment, never tell it what it would see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SweepShard {
    pub endpoints: Vec<String>,
    pub shards: u32,
}

impl SweepShard {
    /// Endpoints one invocation reconciles: 100 deployments take a few seconds (one
    /// `BatchGetItem`, a few `DescribeAlarms`, then a `DescribeEndpoint` each, several at once),
    /// far inside the function's 60 s timeout, and fit one EventBridge entry (100 names of at
    /// most 63 characters: under 7 KB of the 256 KB an entry may hold).
    pub const MAX_ENDPOINTS: usize = 100;
    /// The most shards a sweep may have: 1,000 of 100 endpoints (a hundred thousand
    /// deployments, far past SageMaker's default endpoint quota).
    pub const MAX_SHARDS: u32 = 1_000;

    /// Why the shard cannot be reconciled as it is, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if self.endpoints.len() > Self::MAX_ENDPOINTS {
            return Some(format!(
                "{} endpoints in one shard; at most {}",
                self.endpoints.len(),
                Self::MAX_ENDPOINTS
            ));
        }
        if self.shards == 0 || self.shards > Self::MAX_SHARDS {
            return Some(format!(
                "shards is {}; allowed: 1 to {}",
                self.shards,
                Self::MAX_SHARDS
            ));
        }
        self.endpoints
            .iter()
            .find(|e| !is_endpoint_name(e))
            .map(|e| {
                format!(
                    "{:?} is not a SageMaker endpoint name (1-63 letters, digits and inner hyphens)",
                    crate::units::cut(e, 70)
                )
            })
    }
}

/// SageMaker's endpoint names: `^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}` (SageMaker API Reference,
/// "CreateEndpoint", `EndpointName`).
pub fn is_endpoint_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The `detail` of a "Guardrails Deployment Refused" event: a request that changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    pub schema_version: String,
    pub endpoint_name: String,
    /// The id the deployment would have had.
    pub deployment_id: Option<String>,
    /// The deployment already active on the endpoint, when that is the reason.
    pub active_deployment_id: Option<String>,
    pub requested_by: Option<String>,
    /// Why, in words: every problem of an invalid policy, the missing endpoint, ...
    pub reason: String,
}
