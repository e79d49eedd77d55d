//! The pure state machine of the variant engine. Given the deployment record, an observation of
//! the world, an optional command and `now`, it returns the next record, the convergent actions
//! to perform, when to wake next, and every transition with its cause. It never reads a clock,
//! never does I/O and iterates only over ordered collections: one input, one output.
//!
//! The path of a deployment:
//!
//! ```text
//! Provisioning -> [Hooking(pre-traffic)] -> Shifting(0) -> Baking(0) -> ... -> Shifting(last)
//!   -> Baking(last) -> [Hooking(post-traffic)] -> RemovingBlue -> BakingFinalFleet -> Succeeded
//!                                   \-> [AwaitingApproval(last)] before the last shift, if the policy asks
//! any of Provisioning, Hooking, Shifting, Baking, AwaitingApproval -> RollingBack -> RolledBack
//!   (on ALARM, a missing alarm, an abort, the deadline, or a hook's Failed or silence)
//! BakingFinalFleet -> RollingBack (on ALARM, a missing alarm or an abort)
//! Provisioning -> Failed (green could not be provisioned; nothing left behind)
//! ```
//!
//! The native engine (`native`) has one phase of its own, `NativeDeploying`, while SageMaker
//! runs the rollout; it ends in Succeeded, RolledBack or Failed.

mod action;
mod blast;
mod hooks;
mod judging;
mod native;
mod observation;
mod phases;
mod settle;
mod trouble;

use serde::{Deserialize, Serialize};

pub use action::{Action, Cause, ConfigVariant};
pub use blast::{BlastRadius, MAX_BLAST_PERIODS, Signal};
pub use hooks::{
    HOOK_CALL_SECS, HOOK_PAYLOAD_VERSION, HOOK_REASON_MAX_CHARS, HookAnswer, HookCall, HookPayload,
};
pub use judging::{Compared, Judgement, Sample, judge};
pub use observation::{
    AlarmState, AlarmView, EndpointStatus, EndpointView, Observation, Progress, Unseen, VariantView,
};
pub use trouble::{MAX_FAILURES_IN_A_ROW, MIN_FAILING_SECS, Refusal, Trouble};

use crate::plan::Plan;
use crate::policy::Engine;
use crate::units::Timestamp;

/// How many times an UpdateEndpoint that removes a fleet is tried before the deployment fails.
pub const MAX_UPDATE_ATTEMPTS: u32 = 3;
/// How long removing blue (after success) or green (in a rollback) may take: SageMaker usually
/// needs 8 to 30 minutes for an UpdateEndpoint. The deadline of the policy bounds the guarded
/// rollout; this bounds the clean-up after it.
pub const SETTLE_SECS: u32 = 3_600;
/// A bound on transitions in one decision; the longest real chain is four.
const MAX_TRANSITIONS_PER_DECISION: usize = 16;

/// A deployment record: what the store keeps per active deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub plan: Plan,
    pub started_at: Timestamp,
    /// Past this instant, a deployment whose final bake has not passed is rolled back.
    pub deadline: Timestamp,
    pub phase: Phase,
    /// Who approved the last shift, if anyone has (approval may come early).
    pub approved_by: Option<String>,
    /// When the rollback was decided, if there was one.
    #[serde(default)]
    pub rollback_started_at: Option<Timestamp>,
    /// When the rollback was first seen with every request back on blue.
    #[serde(default)]
    pub traffic_restored_at: Option<Timestamp>,
    /// What AWS refused and how often calls failed (`trouble`).
    #[serde(default, skip_serializing_if = "Trouble::is_empty")]
    pub trouble: Trouble,
    /// When green was first asked to serve: the judge's counts start here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judged_since: Option<Timestamp>,
    /// The judge's latest answer (`judging`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judgement: Option<Judgement>,
    /// The counts the latest judgement was made on, per comparison: kept with the deployment
    /// so that another analysis can be replayed on them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<Vec<Sample>>,
    /// The first sign that green is bad which Guardrails acted on (`blast`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bad_signal: Option<Signal>,
    /// What green served and what it cost, counted when the deployment ended (`blast`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blast_radius: Option<BlastRadius>,
    /// Variant engine: when removing blue began. From then on the new model is all that serves
    /// under blue's variant name (green served every request at the last step), until a
    /// rollback puts blue back (`blast`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutover_at: Option<Timestamp>,
}

/// Where a deployment is. Steps are indexes into `plan.steps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase")]
pub enum Phase {
    /// The endpoint moves to the config with blue at full weight and green at weight 0.
    Provisioning {
        update: UpdateProgress,
    },
    /// Green's capacity, then the weights, move to the step's share.
    Shifting {
        step: usize,
    },
    /// The step's share is served; watching alarms until `until`.
    Baking {
        step: usize,
        until: Timestamp,
    },
    /// The bake before the last shift passed; a person must approve it.
    AwaitingApproval {
        step: usize,
    },
    /// The bake of `step` (begun at `bake_from`) ended and the judge could not tell whether
    /// green is worse: a person approves or aborts, while alarms and the judge keep watching.
    HeldInconclusive {
        step: usize,
        bake_from: Timestamp,
    },
    /// A hook the policy names is asked whether the rollout may go on (`hooks`): before green's
    /// first request, or after the final shift's bake.
    Hooking {
        hook: crate::policy::HookPoint,
        /// When the hook was first asked: its `TimeoutInSeconds` counts from here.
        since: Timestamp,
        /// Calls made so far.
        #[serde(default)]
        attempts: u32,
        /// No call before this instant, whatever events come: at most one per poll interval.
        next_at: Timestamp,
        /// The hook's last words while it worked (`InProgress`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        said: Option<String>,
    },
    /// The final bake passed; the endpoint moves to the config with the new model alone under
    /// blue's variant name (a new fleet).
    RemovingBlue {
        since: Timestamp,
        update: UpdateProgress,
    },
    /// The fleet that keeps serving bakes until `until`, watched like any step: an alarm rolls
    /// the endpoint back to the original config.
    BakingFinalFleet {
        until: Timestamp,
    },
    /// Green's weight goes to 0, then the endpoint moves back to the original config.
    RollingBack {
        cause: Cause,
        since: Timestamp,
        update: UpdateProgress,
    },
    /// Native engine: SageMaker rolls the new config out under the policy's DeploymentConfig;
    /// Guardrails follows it.
    NativeDeploying {
        update: UpdateProgress,
        /// SageMaker's last reported `VariantStatus`, as one line.
        #[serde(default)]
        progress: Option<String>,
        /// SageMaker was seen moving traffic to the new fleet (ActivatingTraffic, Baking).
        #[serde(default)]
        traffic_moved: bool,
        /// The first watched alarm seen in ALARM during the deployment, with its reason.
        #[serde(default)]
        alarm: Option<(String, String)>,
        /// The judge found green worse (its summary then) and put its alarm, which SageMaker
        /// watches, into ALARM: SageMaker rolls back (`native`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        judged_worse: Option<String>,
    },
    Succeeded,
    RolledBack {
        cause: Cause,
    },
    Failed {
        cause: Cause,
    },
}

impl Phase {
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Phase::Succeeded | Phase::RolledBack { .. } | Phase::Failed { .. }
        )
    }

    /// A short label for timelines and logs: `baking step 1`.
    pub fn label(&self) -> String {
        match self {
            Phase::Provisioning { .. } => "provisioning".to_owned(),
            Phase::Shifting { step } => format!("shifting step {}", step + 1),
            Phase::Baking { step, .. } => format!("baking step {}", step + 1),
            Phase::AwaitingApproval { step } => format!("awaiting approval of step {}", step + 1),
            Phase::HeldInconclusive { step, .. } => {
                format!("held after step {}: the judge is inconclusive", step + 1)
            }
            Phase::Hooking { hook, attempts, .. } => match attempts {
                0 => format!("asking the {hook} hook"),
                n => format!("asking the {hook} hook (asked {n} times)"),
            },
            Phase::RemovingBlue { .. } => "removing blue".to_owned(),
            Phase::BakingFinalFleet { .. } => "baking the final fleet".to_owned(),
            Phase::RollingBack { .. } => "rolling back".to_owned(),
            Phase::NativeDeploying { .. } => "SageMaker deploying".to_owned(),
            Phase::Succeeded => "succeeded".to_owned(),
            Phase::RolledBack { .. } => "rolled back".to_owned(),
            Phase::Failed { .. } => "failed".to_owned(),
        }
    }
}

/// Progress of one UpdateEndpoint call that the phase needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpdateProgress {
    /// When SageMaker accepted the call (the driver reports it, or the core saw the endpoint
    /// updating towards the config). An accepted update that ends with the endpoint on another
    /// config has failed.
    pub accepted_at: Option<Timestamp>,
    /// Failed attempts so far.
    pub failures: u32,
}

/// A person's instruction, carried by an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command")]
pub enum Command {
    Approve { by: String },
    Abort { by: String, reason: String },
}

/// One change of phase, for the audit log and our state-change events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub at: Timestamp,
    pub from: Phase,
    pub to: Phase,
    pub cause: Cause,
}

/// The core's answer to one invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The record to save (with a condition on the loaded version) before acting.
    pub deployment: Deployment,
    /// What to make true in the world, in order.
    pub actions: Vec<Action>,
    /// When to look again if no event comes sooner; `None` once final.
    pub wake_at: Option<Timestamp>,
    pub transitions: Vec<Transition>,
    /// Why a command was not acted on (for example, an abort after the final bake passed).
    pub ignored: Option<String>,
}

/// Why a deployment could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("the plan has no steps")]
    NoSteps,
}

impl Deployment {
    /// A new deployment of `plan`, provisioning green; the driver decides on it at once.
    pub fn start(plan: Plan, now: Timestamp) -> Result<(Deployment, Transition), StartError> {
        if plan.steps.is_empty() {
            return Err(StartError::NoSteps);
        }
        // SageMaker enforces a native rollout's timeout itself, then rolls back (for an
        // undocumented time): Guardrails waits that long again before calling it timed out.
        let (phase, timeout) = match plan.engine {
            Engine::Variant => (
                Phase::Provisioning {
                    update: UpdateProgress::default(),
                },
                plan.timeout_secs,
            ),
            Engine::Native => (
                Phase::NativeDeploying {
                    update: UpdateProgress::default(),
                    progress: None,
                    traffic_moved: false,
                    alarm: None,
                    judged_worse: None,
                },
                plan.timeout_secs.saturating_add(SETTLE_SECS),
            ),
        };
        let deployment = Deployment {
            deadline: now.plus_secs(timeout),
            plan,
            started_at: now,
            phase: phase.clone(),
            approved_by: None,
            rollback_started_at: None,
            traffic_restored_at: None,
            trouble: Trouble::default(),
            judged_since: None,
            judgement: None,
            samples: Vec::new(),
            first_bad_signal: None,
            blast_radius: None,
            cutover_at: None,
        };
        let transition = Transition {
            at: now,
            from: phase.clone(),
            to: phase,
            cause: Cause::Started {
                by: deployment.plan.requested_by.clone(),
            },
        };
        Ok((deployment, transition))
    }

    pub fn is_final(&self) -> bool {
        self.phase.is_final()
    }

    /// Whether the watched alarms can change what this phase decides: while green is unproven,
    /// while the final fleet's alarms are made (removing blue), and while SageMaker runs a
    /// native deployment. Not once the outcome is known.
    pub fn watches_alarms(&self) -> bool {
        phases::is_guarded(&self.phase)
            || matches!(
                self.phase,
                Phase::NativeDeploying { .. } | Phase::RemovingBlue { .. }
            )
    }

    /// The next record, actions and wake-up, given what the world looks like now.
    pub fn decide(
        &self,
        observation: &Observation,
        command: Option<&Command>,
        now: Timestamp,
    ) -> Decision {
        let mut decision = Decision {
            deployment: self.clone(),
            actions: Vec::new(),
            wake_at: None,
            transitions: Vec::new(),
            ignored: None,
        };
        if self.is_final() {
            if command.is_some() {
                decision.ignored =
                    Some(format!("the deployment has ended ({})", self.phase.label()));
            }
            return decision;
        }
        decision.apply_command(command, observation, now);
        if decision.deployment.is_final() {
            return decision;
        }
        // A refusal is an input like an alarm: it is decided on once, then forgotten.
        if let Some(refusal) = decision.deployment.trouble.refused.take() {
            match trouble::on_refusal(&decision.deployment, refusal, observation, now) {
                phases::Outcome::Move { to, cause, actions } => {
                    decision.actions.extend(actions);
                    decision.move_to(to, cause, now);
                    if decision.deployment.is_final() {
                        return decision;
                    }
                    // The rollback gets a budget of failures of its own.
                    decision.deployment = decision.deployment.calls_succeeded();
                }
                phases::Outcome::Wait { .. } => {}
            }
        }
        for _ in 0..MAX_TRANSITIONS_PER_DECISION {
            match phases::next(&mut decision.deployment, observation, now) {
                phases::Outcome::Wait { actions, wake_at } => {
                    decision.actions.extend(actions);
                    decision.wake_at = Some(wake_at);
                    return decision;
                }
                phases::Outcome::Move { to, cause, actions } => {
                    decision.actions.extend(actions);
                    decision.move_to(to, cause, now);
                    if decision.deployment.is_final() {
                        return decision;
                    }
                }
            }
        }
        // Unreachable with a consistent plan; waking again is safer than looping.
        decision.wake_at = Some(now.plus_secs(self.plan.poll_secs));
        decision
    }

    /// The record after SageMaker accepted an UpdateEndpoint to `config_name`: from now on, the
    /// endpoint ending on another config means that update failed. A stale acknowledgement (for
    /// a config this phase does not want) changes nothing.
    pub fn update_accepted(&self, config_name: &str, now: Timestamp) -> Deployment {
        let mut next = self.clone();
        let wanted = phases::update_target(&self.plan, &self.phase);
        if wanted == Some(config_name)
            && let Some(update) = phases::update_progress(&mut next.phase)
        {
            update.accepted_at.get_or_insert(now);
        }
        next
    }
}

impl Decision {
    fn move_to(&mut self, to: Phase, cause: Cause, now: Timestamp) {
        if matches!(to, Phase::RollingBack { .. }) {
            self.deployment.rollback_started_at.get_or_insert(now);
        }
        if matches!(to, Phase::Shifting { .. }) {
            self.deployment.judged_since.get_or_insert(now);
        }
        if matches!(to, Phase::RemovingBlue { .. }) {
            self.deployment.cutover_at.get_or_insert(now);
        }
        // The end of a deployment gives blue's scalable target back its scaling, as it was.
        if to.is_final()
            && let Some(target) = &self.deployment.plan.scaling
        {
            self.actions.push(Action::SetScaling {
                variant_name: self.deployment.plan.blue.variant_name.clone(),
                suspended: target.suspended,
            });
        }
        let from = std::mem::replace(&mut self.deployment.phase, to.clone());
        self.transitions.push(Transition {
            at: now,
            from,
            to,
            cause,
        });
    }

    /// A person's command. Abort ends any deployment that has not ended, whatever the
    /// endpoint or AWS answers (DESIGN.md invariant 8): it starts a rollback, or, during a
    /// rollback, ends the deployment at once as failed, saying what is left behind.
    fn apply_command(&mut self, command: Option<&Command>, obs: &Observation, now: Timestamp) {
        match command {
            None => {}
            Some(Command::Approve { by }) => {
                // Approving a hold lets the rollout go on; any other approval is the last
                // shift's, which may come early.
                if let Phase::HeldInconclusive { step, .. } = self.deployment.phase {
                    let to = phases::after_bake(&self.deployment.plan, step, now);
                    self.move_to(to, Cause::Approved { by: by.clone() }, now);
                } else {
                    self.deployment
                        .approved_by
                        .get_or_insert_with(|| by.clone());
                }
            }
            Some(Command::Abort { by, reason }) => {
                if let Phase::RollingBack { .. } = self.deployment.phase {
                    let endpoint = obs.endpoint.as_ref().filter(|_| obs.unseen.is_none());
                    let cause = Cause::RollbackAborted {
                        by: by.clone(),
                        reason: reason.clone(),
                        left_behind: trouble::left_behind(&self.deployment.plan, endpoint, false),
                    };
                    let to = Phase::Failed {
                        cause: cause.clone(),
                    };
                    self.move_to(to, cause, now);
                } else {
                    let cause = Cause::Aborted {
                        by: by.clone(),
                        reason: reason.clone(),
                    };
                    let to = phases::rolling_back(cause.clone(), now);
                    self.move_to(to, cause, now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
