//! What AWS refused and how often calls failed, and what a deployment does about it, so that
//! no refusal and no outage can hold a deployment (DESIGN.md invariant 8).
//!
//! Every error a call can meet is one of two kinds (`ports::ErrorKind`): worth trying again
//! later (throttling, a 5xx, the network), or never going to succeed as it is (access denied, a
//! validation error such as a model that does not exist, a quota of zero). The driver records
//! both in the deployment (`Deployment::refused`, `Deployment::call_failed`); the core decides
//! on a refusal like on any other input: before anything serves green the deployment fails and
//! removes what it made; in a guarded phase it rolls back; while removing blue or rolling back
//! it fails, saying what is left behind and what to do. A run of failures worth retrying is
//! bounded in count and time; past the bound it counts as a refusal.

use serde::{Deserialize, Serialize};

use super::phases::{Outcome, delete_green_alarms, failed, rolling_back};
use super::{Action, Cause, Deployment, EndpointView, Observation, Phase};
use crate::plan::Plan;
use crate::policy::Engine;
use crate::units::{Timestamp, cut};

/// Failed invocations in a row after which a call worth retrying counts as refused...
pub const MAX_FAILURES_IN_A_ROW: u32 = 10;
/// ... provided they span at least this long, so that a burst of retried events during a short
/// outage does not end a deployment that would have gone on a minute later.
pub const MIN_FAILING_SECS: u32 = 600;
/// At most this many notes are kept in `Trouble::after_end`.
const MAX_NOTES: usize = 10;
/// AWS's words are kept to this many characters, so that records and events stay bounded.
pub const MAX_MESSAGE_CHARS: usize = 2_000;

/// A call AWS will not accept as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// IAM's name of the call: `sagemaker:UpdateEndpoint`.
    pub api: String,
    /// What AWS said (`AccessDeniedException: User: ... is not authorized to perform: ...`).
    pub message: String,
}

/// What went wrong in the calls of one deployment, kept in its record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Trouble {
    /// A refusal the core has not decided on yet (the driver records it, the next decision
    /// consumes it).
    pub refused: Option<Refusal>,
    /// Invocations in a row that ended on an error worth retrying; a clean one resets it.
    pub failures_in_a_row: u32,
    /// When the current run of failures began.
    pub failing_since: Option<Timestamp>,
    /// Every such invocation of this deployment.
    pub failures: u32,
    /// The last such error, in AWS's words.
    pub last_failure: Option<String>,
    /// What could not be done once the outcome was known: clean-up AWS refused, events that
    /// could not be published (at most `MAX_NOTES`).
    pub after_end: Vec<String>,
}

impl Trouble {
    pub fn is_empty(&self) -> bool {
        *self == Trouble::default()
    }

    fn note(&mut self, note: String) {
        if self.after_end.len() < MAX_NOTES {
            self.after_end.push(note);
        }
    }
}

impl Deployment {
    /// The record after AWS refused `api`: the next decision ends the deployment (or, once it
    /// has ended, the refusal is noted as something left undone).
    pub fn refused(&self, api: &str, message: &str) -> Deployment {
        let message = &cut(message, MAX_MESSAGE_CHARS);
        let mut next = self.clone();
        if next.is_final() {
            next.trouble
                .note(format!("{api} refused after the end: {message}"));
        } else if next.trouble.refused.is_none() {
            next.trouble.refused = Some(Refusal {
                api: api.to_owned(),
                message: message.to_owned(),
            });
        }
        next
    }

    /// The record after a call worth retrying failed in this invocation. Past the bound
    /// (`MAX_FAILURES_IN_A_ROW` invocations over at least `MIN_FAILING_SECS`), it counts as a
    /// refusal.
    pub fn call_failed(&self, api: &str, message: &str, now: Timestamp) -> Deployment {
        let message = &cut(message, MAX_MESSAGE_CHARS);
        let mut next = self.clone();
        let t = &mut next.trouble;
        t.failures_in_a_row = t.failures_in_a_row.saturating_add(1);
        t.failures = t.failures.saturating_add(1);
        t.last_failure = Some(format!("{api}: {message}"));
        let since = *t.failing_since.get_or_insert(now);
        if next.retries_exhausted(now) {
            let attempts = next.trouble.failures_in_a_row;
            let message = format!(
                "failed {attempts} times in a row over {} s, so Guardrails stopped retrying; last error: {message}",
                now.secs_since(since)
            );
            return next.refused(api, &message);
        }
        next
    }

    /// Whether the current run of failures is past the bound: `MAX_FAILURES_IN_A_ROW`
    /// invocations over at least `MIN_FAILING_SECS`.
    pub fn retries_exhausted(&self, now: Timestamp) -> bool {
        let t = &self.trouble;
        t.failures_in_a_row >= MAX_FAILURES_IN_A_ROW
            && t.failing_since
                .is_some_and(|since| now.secs_since(since) >= i64::from(MIN_FAILING_SECS))
    }

    /// The record after an invocation whose calls all succeeded: the run of failures ends.
    pub fn calls_succeeded(&self) -> Deployment {
        let mut next = self.clone();
        next.trouble.failures_in_a_row = 0;
        next.trouble.failing_since = None;
        next
    }

    /// The record after `count` events could not be published and were dropped.
    pub fn events_dropped(&self, count: usize, message: &str) -> Deployment {
        let mut next = self.clone();
        next.trouble.note(format!(
            "{count} event(s) could not be published: {message}"
        ));
        next
    }
}

/// What a refusal does to a deployment in its phase (it is not final).
pub(super) fn on_refusal(
    d: &Deployment,
    refusal: Refusal,
    obs: &Observation,
    now: Timestamp,
) -> Outcome {
    let plan = &d.plan;
    let endpoint = obs.endpoint.as_ref().filter(|_| obs.unseen.is_none());
    let cause = |left_behind: String| Cause::Refused {
        api: refusal.api.clone(),
        message: refusal.message.clone(),
        left_behind,
    };
    match &d.phase {
        // Nothing serves green yet, and SageMaker was not asked to change the endpoint: remove
        // what was made and end.
        Phase::Provisioning { update } | Phase::NativeDeploying { update, .. }
            if update.accepted_at.is_none() && !updating_towards_ours(plan, endpoint) =>
        {
            let mut cleanup = delete_green_alarms(plan);
            cleanup.extend(delete_unused_configs(plan));
            failed(
                cause(format!(
                    "nothing changed: the endpoint serves its original config {} as before; \
                     Guardrails removed what it had created",
                    plan.blue_config_name
                )),
                cleanup,
            )
        }
        // SageMaker runs this update and cannot be stopped: Guardrails stops following it.
        Phase::NativeDeploying { .. } => failed(
            cause(format!(
                "SageMaker may still be deploying {} (an update cannot be stopped): \
                 DescribeEndpoint {} shows where it is; {}",
                plan.green_config_name,
                plan.endpoint_name,
                left_behind(plan, endpoint, false)
            )),
            Vec::new(),
        ),
        Phase::Provisioning { .. }
        | Phase::Shifting { .. }
        | Phase::Baking { .. }
        | Phase::AwaitingApproval { .. }
        | Phase::HeldInconclusive { .. }
        | Phase::Hooking { .. }
        | Phase::BakingFinalFleet { .. } => {
            let cause = cause(String::new());
            Outcome::Move {
                to: rolling_back(cause.clone(), now),
                cause,
                actions: Vec::new(),
            }
        }
        // The outcome was decided; the clean-up is what AWS refused.
        Phase::RemovingBlue { .. } => failed(cause(left_behind(plan, endpoint, true)), Vec::new()),
        Phase::RollingBack { .. } => failed(cause(left_behind(plan, endpoint, false)), Vec::new()),
        Phase::Succeeded | Phase::RolledBack { .. } | Phase::Failed { .. } => Outcome::Wait {
            actions: Vec::new(),
            wake_at: now,
        },
    }
}

/// Whether the endpoint is seen moving to a config Guardrails made (an update it accepted).
fn updating_towards_ours(plan: &Plan, endpoint: Option<&EndpointView>) -> bool {
    endpoint.is_some_and(|e| {
        let ours = [&plan.blue_green_config_name, &plan.green_config_name];
        e.pending_config_name
            .as_ref()
            .is_some_and(|p| ours.contains(&p))
            || ours.contains(&&e.config_name)
    })
}

/// Deletes the configs Guardrails made that no endpoint serves at the end of a deployment that
/// did not succeed (a missing one counts as deleted).
pub(super) fn delete_unused_configs(plan: &Plan) -> Vec<Action> {
    let mut names = vec![&plan.green_config_name];
    if plan.engine == Engine::Variant {
        names.insert(0, &plan.blue_green_config_name);
    }
    names
        .into_iter()
        .map(|name| Action::DeleteEndpointConfig {
            config_name: name.clone(),
        })
        .collect()
}

/// What the endpoint serves when a deployment ends unfinished, and what a person can do, in
/// words for the page; `finishing` when green had passed its final bake (removing blue).
pub(super) fn left_behind(plan: &Plan, endpoint: Option<&EndpointView>, finishing: bool) -> String {
    let Some(e) = endpoint else {
        return format!(
            "unknown: Guardrails could not see the endpoint; check DescribeEndpoint {}",
            plan.endpoint_name
        );
    };
    let blue = &plan.blue_config_name;
    let to_blue = format!("UpdateEndpoint with EndpointConfigName {blue} returns to the original");
    if e.status.is_busy() {
        return format!(
            "the endpoint is {:?}{}; once it is InService, check it serves {blue}, or {to_blue}",
            e.status,
            e.pending_config_name
                .as_ref()
                .map(|p| format!(" towards {p}"))
                .unwrap_or_default(),
        );
    }
    if e.config_name == *blue {
        return format!("the endpoint serves its original config {blue}; nothing is left to do");
    }
    if e.config_name == plan.green_config_name {
        return format!(
            "the new model serves alone on {} (variant {}); {to_blue}",
            plan.green_config_name, plan.blue.variant_name
        );
    }
    if e.config_name == plan.blue_green_config_name {
        let green = e.share_of(&plan.green.variant_name);
        return if finishing {
            format!(
                "green ({}) passed its final bake and receives {:.2}% of requests on {}, with \
                 blue's fleet still provisioned: UpdateEndpoint to a config holding green alone \
                 ({}) finishes the deployment, or {to_blue}",
                plan.green.variant_name,
                green * 100.0,
                plan.blue_green_config_name,
                plan.green_config_name
            )
        } else if green > 0.0 {
            format!(
                "green ({}) still receives {:.2}% of requests beside blue on {}: set its weight \
                 to 0 (UpdateEndpointWeightsAndCapacities), then {to_blue}",
                plan.green.variant_name,
                green * 100.0,
                plan.blue_green_config_name
            )
        } else {
            format!(
                "every request is on blue, but green's fleet is still provisioned on {}: {to_blue} \
                 and removes it",
                plan.blue_green_config_name
            )
        };
    }
    format!(
        "the endpoint serves {}, a config Guardrails did not make",
        e.config_name
    )
}
