//! What people read about deployments (`status`, `history`, `show`): the live status of an
//! active one, the summary of a past one, and its audit trail as a timeline. Pure: built from
//! the stored record, its audit trail, the watched alarms' states and the time. The timeline's
//! entries are our state-change events (`events::StateChange`), so what a person reads is what
//! automation receives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::{AlarmState, AlarmView, Phase};
use crate::events::{PhaseKind, StateChange};
use crate::policy::Engine;
use crate::ports::{AuditEntry, Stored};
use crate::units::{Share, Timestamp};

/// An active deployment as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub deployment_id: String,
    pub endpoint_name: String,
    pub model_name: String,
    pub engine: Engine,
    pub state: PhaseKind,
    /// 1-based, when the phase has a step.
    pub step: Option<usize>,
    pub step_count: usize,
    /// The share of requests green has been given (the step's), percent.
    pub green_percent: f64,
    /// When the current bake can end (epoch ms), while baking.
    pub bake_ends_at: Option<i64>,
    /// Seconds left in the bake, at `at`.
    pub bake_seconds_left: Option<i64>,
    pub started_at: i64,
    /// Past this, the deployment rolls back (epoch ms).
    pub deadline: i64,
    pub requested_by: Option<String>,
    pub approved_by: Option<String>,
    /// Every watched alarm with its state now (`None`: CloudWatch did not say).
    pub alarms: Vec<WatchedState>,
    /// The last transition, in words.
    pub last_change: String,
    /// When this status was read (epoch ms).
    pub at: i64,
    /// The judge's latest answer, when the policy asks for the judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judgement: Option<crate::core::Judgement>,
    /// The judge's latest answer in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
}

/// A watched alarm and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchedState {
    pub alarm_name: String,
    pub state: Option<AlarmState>,
}

/// A deployment in the endpoint's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub deployment_id: String,
    pub endpoint_name: String,
    pub model_name: String,
    pub engine: Engine,
    /// Its phase: the outcome once it ended.
    pub state: PhaseKind,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub duration_secs: Option<i64>,
    pub requested_by: Option<String>,
    /// Why it ended, in words: what caused a rollback or failure, else the last transition.
    pub cause: String,
}

/// One deployment as `show` answers: its summary, its status while active, its plan and its
/// audit trail as our events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shown {
    pub summary: Summary,
    pub status: Option<Status>,
    pub plan: crate::plan::Plan,
    pub timeline: Vec<StateChange>,
    /// What green served and what it cost, once the deployment ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blast_radius: Option<crate::core::BlastRadius>,
    /// The counts the judge's verdicts were made on, per comparison (for `backtest`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<Vec<crate::core::Sample>>,
}

impl Shown {
    /// `stored` with its audit trail, and its live status while active.
    pub fn of(stored: &Stored, audit: &[AuditEntry], status: Option<Status>) -> Shown {
        Shown {
            summary: summary(stored, audit),
            status,
            plan: stored.deployment.plan.clone(),
            timeline: timeline(stored, audit),
            blast_radius: stored.deployment.blast_radius.clone(),
            samples: stored.deployment.samples.clone(),
        }
    }
}

/// Green's share of requests the phase has given it.
fn green_share(stored: &Stored) -> Share {
    let d = &stored.deployment;
    let step_share = |step: usize| {
        d.plan
            .steps
            .get(step)
            .map_or(Share::ZERO, |s| s.green_share)
    };
    match &d.phase {
        Phase::Shifting { step }
        | Phase::Baking { step, .. }
        | Phase::AwaitingApproval { step }
        | Phase::HeldInconclusive { step, .. } => step_share(*step),
        Phase::RemovingBlue { .. } | Phase::BakingFinalFleet { .. } | Phase::Succeeded => {
            Share::FULL
        }
        _ => Share::ZERO,
    }
}

/// The status of `stored` (active) at `now`, its last audit entry and the watched alarms'
/// states.
pub fn status(
    stored: &Stored,
    last: Option<&AuditEntry>,
    alarms: &BTreeMap<String, AlarmView>,
    now: Timestamp,
) -> Status {
    let d = &stored.deployment;
    let plan = &d.plan;
    let (step, bake_until) = match &d.phase {
        Phase::Shifting { step }
        | Phase::AwaitingApproval { step }
        | Phase::HeldInconclusive { step, .. } => (Some(*step), None),
        Phase::Baking { step, until } => (Some(*step), Some(*until)),
        Phase::BakingFinalFleet { until } => (None, Some(*until)),
        _ => (None, None),
    };
    Status {
        deployment_id: plan.deployment_id.clone(),
        endpoint_name: plan.endpoint_name.clone(),
        model_name: plan.green.model_name.clone(),
        engine: plan.engine,
        state: PhaseKind::of(&d.phase),
        step: step.map(|s| s + 1),
        step_count: plan.steps.len(),
        green_percent: green_share(stored).fraction() * 100.0,
        bake_ends_at: bake_until.map(Timestamp::epoch_ms),
        bake_seconds_left: bake_until
            .map(|until| ((until.epoch_ms() - now.epoch_ms()) / 1_000).max(0)),
        started_at: d.started_at.epoch_ms(),
        deadline: d.deadline.epoch_ms(),
        requested_by: plan.requested_by.clone(),
        approved_by: d.approved_by.clone(),
        alarms: plan
            .watched_alarm_names()
            .map(|name| WatchedState {
                alarm_name: name.to_owned(),
                state: alarms.get(name).map(|a| a.state),
            })
            .collect(),
        last_change: last
            .map(|e| e.transition.cause.to_string())
            .unwrap_or_default(),
        at: now.epoch_ms(),
        judgement: d.judgement.clone(),
        verdict: d.judgement.as_ref().map(|j| {
            let word = match j.verdict {
                crate::judge::Verdict::Worse => "green is worse than blue",
                crate::judge::Verdict::NoWorse => "green is no worse than blue",
                crate::judge::Verdict::Inconclusive => "no verdict yet",
            };
            format!("{word} at step {}: {}", j.step + 1, j.summary())
        }),
    }
}

/// The summary of `stored` from its audit trail.
pub fn summary(stored: &Stored, audit: &[AuditEntry]) -> Summary {
    let d = &stored.deployment;
    let last = audit.last();
    let ended_at = last
        .filter(|e| e.transition.to.is_final())
        .map(|e| e.transition.at.epoch_ms());
    Summary {
        deployment_id: d.plan.deployment_id.clone(),
        endpoint_name: d.plan.endpoint_name.clone(),
        model_name: d.plan.green.model_name.clone(),
        engine: d.plan.engine,
        state: PhaseKind::of(&d.phase),
        started_at: d.started_at.epoch_ms(),
        ended_at,
        duration_secs: ended_at.map(|end| (end - d.started_at.epoch_ms()) / 1_000),
        requested_by: d.plan.requested_by.clone(),
        // A rollback or failure keeps what caused it (an alarm, an abort, a refusal); the last
        // transition only says the endpoint is back.
        cause: match &d.phase {
            Phase::RolledBack { cause } | Phase::Failed { cause } => cause.to_string(),
            _ => last
                .map(|e| e.transition.cause.to_string())
                .unwrap_or_default(),
        },
    }
}

/// The audit trail as our state-change events, in order.
pub fn timeline(stored: &Stored, audit: &[AuditEntry]) -> Vec<StateChange> {
    audit
        .iter()
        .map(|e| {
            StateChange::new(
                &stored.deployment,
                &e.transition,
                e.sequence,
                e.observed_green_percent.and_then(Share::from_percent),
            )
        })
        .collect()
}
