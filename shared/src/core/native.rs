//! The native engine: SageMaker runs the rollout under the policy's `DeploymentConfig`
//! (blue/green all at once, canary, linear, or rolling) and Guardrails follows it. It creates
//! the new config, calls UpdateEndpoint once SageMaker accepts changes, records SageMaker's
//! `VariantStatus` progress in the audit log, and classifies the outcome:
//!
//! - InService on the new config: succeeded;
//! - InService on the old config after SageMaker accepted the update: rolled back if a watched
//!   alarm was seen in ALARM or traffic had reached the new fleet, failed otherwise (with
//!   SageMaker's FailureReason, or a note that it gave none: the silent failure);
//! - `UpdateRollbackFailed`: failed, serving a mix of old and new; the page gives the recovery;
//! - Failed, OutOfService, Deleting, deleted: failed;
//! - still not done at the deadline (the policy's timeout plus `SETTLE_SECS` for SageMaker's own
//!   rollback): failed, timed out; SageMaker has no call to stop its update.

use super::phases::{
    Outcome, changed_outside, delete_green_alarms, failed, green_alone, note_update_in_flight,
    put_missing_green_alarms, suspend_scaling, wait,
};
use super::{
    Action, AlarmState, Cause, Deployment, EndpointStatus, EndpointView, Observation, Phase,
    Progress, Signal,
};
use crate::judge::Verdict;
use crate::units::Timestamp;

/// CloudWatch's SetAlarmState takes a `StateReason` of at most 1,023 characters (API
/// reference); a summary is cut to fit, with room for the `...`.
const MAX_STATE_REASON_CHARS: usize = 1_000;

/// VariantStatus values that mean the new fleet serves requests.
const TRAFFIC_STATUSES: [&str; 2] = ["ActivatingTraffic", "Baking"];

/// What SageMaker reports doing, as one line: `Baking (AllTraffic): Baking for 300 seconds...`.
fn progress_line(progress: &[Progress]) -> Option<String> {
    let lines: Vec<String> = progress
        .iter()
        .map(|p| format!("{} ({}): {}", p.status, p.variant_name, p.message))
        .collect();
    (!lines.is_empty()).then(|| lines.join("; "))
}

pub(super) fn next(d: &mut Deployment, obs: &Observation, now: Timestamp) -> Outcome {
    let Phase::NativeDeploying {
        update,
        progress,
        traffic_moved,
        alarm,
        judged_worse,
    } = d.phase.clone()
    else {
        return wait(d, Vec::new(), now);
    };
    let plan = &d.plan;
    let green_config = plan.green_config_name.clone();
    let Some(endpoint) = &obs.endpoint else {
        let mut cleanup = vec![delete_green_config(&green_config)];
        cleanup.extend(delete_green_alarms(plan));
        return failed(Cause::EndpointDeleted, cleanup);
    };
    if endpoint.status == EndpointStatus::UpdateRollbackFailed {
        let reason = endpoint.failure_reason.clone().unwrap_or_default();
        let recovery = format!(
            "the endpoint serves a mix of old and new instances; call UpdateEndpoint with \
             EndpointConfigName {} to return to the old model (or {green_config} to finish the \
             new one), then check the endpoint is InService",
            plan.blue_config_name
        );
        return failed(Cause::RollbackFailed { reason, recovery }, Vec::new());
    }
    if endpoint.status.is_broken() {
        return failed(
            Cause::EndpointBroken {
                status: format!("{:?}", endpoint.status),
                reason: endpoint.failure_reason.clone().unwrap_or_default(),
            },
            Vec::new(),
        );
    }
    // Remember what matters for the outcome before SageMaker moves on: the alarms SageMaker
    // watches while it runs this deployment, and whether traffic reached the new fleet.
    let ours = endpoint.pending_config_name.as_deref() == Some(green_config.as_str());
    let seen_alarm = alarm.or_else(|| ours.then(|| first_alarm(d, obs)).flatten());
    if let Some((name, _)) = &seen_alarm {
        let at = obs.alarms.get(name).and_then(|a| a.since);
        d.first_bad_signal.get_or_insert(Signal {
            at: at.unwrap_or(now).clamp(d.started_at, now),
            what: format!("alarm {name} went into ALARM"),
        });
    }
    let line = if ours {
        progress_line(&endpoint.progress)
    } else {
        None
    };
    let moved = traffic_moved
        || (ours
            && endpoint
                .progress
                .iter()
                .any(|p| TRAFFIC_STATUSES.contains(&p.status.as_str())));
    if let Phase::NativeDeploying {
        alarm,
        traffic_moved,
        ..
    } = &mut d.phase
    {
        alarm.clone_from(&seen_alarm);
        *traffic_moved = moved;
    }
    if moved {
        d.judged_since.get_or_insert(now);
    }
    // The judge compares the fleets while SageMaker bakes. Guardrails cannot stop SageMaker's
    // update, but SageMaker rolls back when a watched alarm is in ALARM: a worse green puts the
    // judge's own alarm there, once.
    if let Some((Verdict::Worse, step, summary)) = d.look(obs, now)
        && judged_worse.is_none()
        && let Some(alarm_name) = d.plan.judge_alarm_name()
    {
        d.signal(now, "the judge found green worse than blue".to_owned());
        let mut to = d.phase.clone();
        if let Phase::NativeDeploying { judged_worse, .. } = &mut to {
            *judged_worse = Some(summary.clone());
        }
        let reason = crate::units::cut(
            &format!("Guardrails' judge found green worse than blue: {summary}"),
            MAX_STATE_REASON_CHARS,
        );
        return Outcome::Move {
            to,
            cause: Cause::GreenWorse { step, summary },
            actions: vec![Action::RaiseAlarm { alarm_name, reason }],
        };
    }
    let plan = &d.plan;
    if line.is_some() && line != progress {
        let to = Phase::NativeDeploying {
            update,
            progress: line,
            traffic_moved: moved,
            alarm: seen_alarm,
            judged_worse,
        };
        let cause = progress_cause(endpoint);
        return Outcome::Move {
            to,
            cause,
            actions: Vec::new(),
        };
    }
    if endpoint.status.is_busy() {
        note_update_in_flight(d, endpoint, now);
        if now >= d.deadline {
            return timed_out(d);
        }
        return wait(d, Vec::new(), now);
    }
    if endpoint.config_name == green_config {
        return Outcome::Move {
            to: Phase::Succeeded,
            cause: Cause::Deployed {
                config_name: green_config,
            },
            actions: delete_green_alarms(plan),
        };
    }
    if endpoint.config_name != plan.blue_config_name {
        return changed_outside(endpoint);
    }
    if update.accepted_at.is_some() {
        // The alarms' history covers a rollback too quick for any look to catch in ALARM:
        // an alarm that fired after SageMaker accepted the update.
        let accepted = update.accepted_at.unwrap_or(d.started_at);
        let in_history = d.plan.watched_alarm_names().find_map(|name| {
            obs.alarms_fired
                .get(name)
                .filter(|(at, _)| *at >= accepted)
                .map(|(at, reason)| (name.to_owned(), *at, reason.clone()))
        });
        if seen_alarm.is_none()
            && let Some((name, at, _)) = &in_history
        {
            d.first_bad_signal.get_or_insert(Signal {
                at: (*at).clamp(d.started_at, now),
                what: format!("alarm {name} went into ALARM"),
            });
        }
        let fired = seen_alarm.or(in_history.map(|(name, _, reason)| (name, reason)));
        // SageMaker rolled back on its own: the first look that sees it is when every request
        // is known to be back on blue.
        if fired.is_some() || moved {
            d.traffic_restored_at.get_or_insert(now);
        }
        return back_on_blue(d, endpoint, fired, moved, judged_worse);
    }
    if now >= d.deadline {
        return timed_out(d);
    }
    // The judge's alarm exists before SageMaker starts watching it.
    let mut actions = put_missing_green_alarms(plan, obs, false);
    actions.extend([
        green_alone(plan, &plan.green.variant_name),
        Action::UpdateEndpoint {
            config_name: green_config,
            deployment_config: plan.native_config.clone(),
            retain_variant_properties: false,
        },
    ]);
    actions.extend(suspend_scaling(plan));
    wait(d, actions, now)
}

/// The first watched alarm in ALARM, with CloudWatch's reason.
fn first_alarm(d: &Deployment, obs: &Observation) -> Option<(String, String)> {
    d.plan.watched_alarm_names().find_map(|name| {
        obs.alarms
            .get(name)
            .filter(|a| a.state == AlarmState::Alarm)
            .map(|a| (name.to_owned(), a.reason.clone()))
    })
}

fn progress_cause(endpoint: &EndpointView) -> Cause {
    let last = endpoint.progress.last();
    Cause::SageMakerProgress {
        variant_name: last.map(|p| p.variant_name.clone()).unwrap_or_default(),
        status: last.map(|p| p.status.clone()).unwrap_or_default(),
        message: last.map(|p| p.message.clone()).unwrap_or_default(),
    }
}

/// SageMaker took the update and the endpoint serves the old config again.
fn back_on_blue(
    d: &Deployment,
    endpoint: &EndpointView,
    alarm: Option<(String, String)>,
    traffic_moved: bool,
    judged_worse: Option<String>,
) -> Outcome {
    let mut cleanup = vec![delete_green_config(&d.plan.green_config_name)];
    cleanup.extend(delete_green_alarms(&d.plan));
    let reason = match endpoint.failure_reason.as_deref() {
        Some(reason) if !reason.is_empty() => reason.to_owned(),
        _ => {
            "the endpoint returned to InService on the old config with no FailureReason".to_owned()
        }
    };
    let rolled_back = |cause: Cause| Outcome::Move {
        to: Phase::RolledBack {
            cause: cause.clone(),
        },
        cause,
        actions: cleanup.clone(),
    };
    let judge_alarm = d.plan.judge_alarm_name();
    match (alarm, judged_worse) {
        // SageMaker rolled back on the judge's alarm: the judge's finding is the cause.
        (Some((alarm_name, _)), Some(summary)) if Some(&alarm_name) == judge_alarm.as_ref() => {
            rolled_back(Cause::GreenWorse { step: 0, summary })
        }
        (Some((alarm_name, reason)), _) => rolled_back(Cause::AlarmFired { alarm_name, reason }),
        (None, _) if traffic_moved => rolled_back(Cause::SageMakerRolledBack { reason }),
        (None, _) => failed(Cause::ProvisioningFailed { reason }, cleanup.clone()),
    }
}

fn timed_out(d: &Deployment) -> Outcome {
    failed(
        Cause::TimedOut {
            deadline: d.deadline,
        },
        Vec::new(),
    )
}

fn delete_green_config(config_name: &str) -> Action {
    Action::DeleteEndpointConfig {
        config_name: config_name.to_owned(),
    }
}
