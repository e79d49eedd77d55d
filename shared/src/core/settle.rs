//! The two phases that move the endpoint off the blue+green config once the outcome is known:
//! RemovingBlue (to green alone, after the final bake) and RollingBack (to the original
//! config). Alarms and the deadline no longer matter here; the settle budget and a bounded
//! number of UpdateEndpoint attempts do.

use super::phases::{
    Outcome, changed_outside, delete_green_alarms, failed, green_alone, note_update_in_flight,
    set_weights, update_progress, wait,
};
use super::trouble::delete_unused_configs;
use super::{
    Action, Cause, Deployment, EndpointView, MAX_UPDATE_ATTEMPTS, Phase, SETTLE_SECS,
    UpdateProgress,
};
use crate::policy::Engine;
use crate::units::{Share, Timestamp};

pub(super) fn removing_blue(
    d: &mut Deployment,
    endpoint: &EndpointView,
    since: Timestamp,
    update: UpdateProgress,
    now: Timestamp,
) -> Outcome {
    let target = d.plan.green_config_name.clone();
    let cleanup = vec![Action::DeleteEndpointConfig {
        config_name: d.plan.blue_green_config_name.clone(),
    }];
    if let Some(outcome) = common(d, endpoint, &target, since, now, cleanup, || {
        (Phase::Succeeded, Cause::BlueRemoved)
    }) {
        return outcome;
    }
    let create = green_alone(&d.plan, &d.plan.green.variant_name);
    retry_update(d, endpoint, update, target, vec![create], now)
}

pub(super) fn rolling_back(
    d: &mut Deployment,
    endpoint: &EndpointView,
    cause: Cause,
    since: Timestamp,
    update: UpdateProgress,
    now: Timestamp,
) -> Outcome {
    let target = d.plan.blue_config_name.clone();
    if endpoint.config_name == target && !endpoint.status.is_busy() {
        d.traffic_restored_at.get_or_insert(now);
    }
    let cleanup = delete_unused_configs(&d.plan);
    if let Some(outcome) = common(d, endpoint, &target, since, now, cleanup, || {
        (Phase::RolledBack { cause }, Cause::RollbackComplete)
    }) {
        return outcome;
    }
    // Traffic first: one weights call puts every request back on blue within seconds; removing
    // the green variant (an UpdateEndpoint) takes minutes and can wait. (A native deployment has
    // no second variant: its new fleet replaced blue's, and only an UpdateEndpoint returns.)
    if d.plan.engine == Engine::Variant
        && endpoint.config_name == d.plan.blue_green_config_name
        && endpoint.share_of(&d.plan.green.variant_name) > 0.0
    {
        return wait(d, vec![set_weights(&d.plan, Share::ZERO)], now);
    }
    d.traffic_restored_at.get_or_insert(now);
    retry_update(d, endpoint, update, target, Vec::new(), now)
}

/// What both phases decide the same way: done (in service on `target`: delete green's alarms
/// and `configs`, and end with `done`), out of time, waiting for SageMaker, or changed by
/// someone else. `None` when the endpoint is in service on a config Guardrails made (blue+green,
/// or green alone) and the phase must act.
fn common(
    d: &mut Deployment,
    endpoint: &EndpointView,
    target: &str,
    since: Timestamp,
    now: Timestamp,
    configs: Vec<Action>,
    done: impl FnOnce() -> (Phase, Cause),
) -> Option<Outcome> {
    let plan = &d.plan;
    if endpoint.config_name == target && !endpoint.status.is_busy() {
        let mut cleanup = delete_green_alarms(plan);
        cleanup.extend(configs);
        let (to, cause) = done();
        return Some(Outcome::Move {
            to,
            cause,
            actions: cleanup,
        });
    }
    if now >= since.plus_secs(SETTLE_SECS) {
        let config_name = target.to_owned();
        return Some(failed(Cause::SettleTimedOut { config_name }, Vec::new()));
    }
    if endpoint.status.is_busy() {
        note_update_in_flight(d, endpoint, now);
        return Some(wait(d, Vec::new(), now));
    }
    let ours = [&plan.blue_green_config_name, &plan.green_config_name];
    if !ours.contains(&&endpoint.config_name) {
        return Some(changed_outside(endpoint));
    }
    None
}

/// Sends (or re-sends after a failure) the UpdateEndpoint to `target`, or gives up after
/// `MAX_UPDATE_ATTEMPTS` failures. `endpoint` is in service and not yet on `target`.
fn retry_update(
    d: &mut Deployment,
    endpoint: &EndpointView,
    update: UpdateProgress,
    target: String,
    mut actions: Vec<Action>,
    now: Timestamp,
) -> Outcome {
    let mut update = update;
    if update.accepted_at.is_some() {
        update.failures += 1;
        update.accepted_at = None;
        if update.failures >= MAX_UPDATE_ATTEMPTS {
            return failed(
                Cause::UpdateFailed {
                    config_name: target,
                    reason: endpoint.failure_reason.clone().unwrap_or_default(),
                    attempts: update.failures,
                },
                Vec::new(),
            );
        }
        if let Some(progress) = update_progress(&mut d.phase) {
            *progress = update;
        }
    }
    actions.push(Action::UpdateEndpoint {
        config_name: target,
        deployment_config: None,
    });
    wait(d, actions, now)
}
