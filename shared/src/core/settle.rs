//! The phases that move the endpoint off the blue+green config: RemovingBlue (after the final
//! bake, to the config with the new model alone under blue's variant name), BakingFinalFleet
//! (that config's new fleet serves, watched like any step), and RollingBack (to the original
//! config). The settle budget and a bounded number of UpdateEndpoint attempts bound the
//! updates; the deadline no longer matters here.

use super::phases::{
    Outcome, changed_outside, delete_green_alarms, failed, green_alone, note_update_in_flight,
    put_missing_green_alarms, set_weights, update_progress, wait, wait_until,
};
use super::trouble::delete_unused_configs;
use super::{
    Action, Cause, Deployment, EndpointView, MAX_UPDATE_ATTEMPTS, Observation, Phase, SETTLE_SECS,
    UpdateProgress,
};
use crate::policy::Engine;
use crate::units::{Share, Timestamp};

/// The final switch: the endpoint moves to blue's config with the new model alone under blue's
/// variant name, so alarms, scaling targets and callers keyed on that name keep working. It is
/// an UpdateEndpoint (a variant cannot be renamed in place), so it provisions a new fleet,
/// which then bakes with the final fleet's alarms (scoped to that name) in place.
pub(super) fn removing_blue(
    d: &mut Deployment,
    obs: &Observation,
    endpoint: &EndpointView,
    since: Timestamp,
    update: UpdateProgress,
    now: Timestamp,
) -> Outcome {
    let target = d.plan.green_config_name.clone();
    let alarms = put_missing_green_alarms(&d.plan, obs, true);
    if endpoint.config_name == target && !endpoint.status.is_busy() {
        if !alarms.is_empty() {
            return wait(d, alarms, now);
        }
        let until = now.plus_secs(d.plan.cutover_bake_secs);
        return Outcome::Move {
            to: Phase::BakingFinalFleet { until },
            cause: Cause::BlueRemoved,
            actions: Vec::new(),
        };
    }
    if let Some(outcome) = common(d, endpoint, &target, since, now) {
        return outcome;
    }
    let mut actions = vec![green_alone(&d.plan, &d.plan.blue.variant_name)];
    actions.extend(alarms);
    retry_update(d, endpoint, update, target, actions, now)
}

/// The final fleet serves every request; its bake passing ends the deployment. (Alarms, a
/// missing alarm and an abort roll back, like in any guarded phase: `phases::next`.)
pub(super) fn baking_final_fleet(
    d: &mut Deployment,
    endpoint: &EndpointView,
    until: Timestamp,
    now: Timestamp,
) -> Outcome {
    let plan = &d.plan;
    if endpoint.status.is_busy() {
        return wait(d, Vec::new(), now);
    }
    if endpoint.config_name != plan.green_config_name {
        return changed_outside(endpoint);
    }
    if now < until {
        let next = until.min(now.plus_secs(plan.poll_secs));
        return wait_until(d, Vec::new(), next, now);
    }
    let mut cleanup = delete_green_alarms(plan);
    cleanup.push(Action::DeleteEndpointConfig {
        config_name: plan.blue_green_config_name.clone(),
    });
    Outcome::Move {
        to: Phase::Succeeded,
        cause: Cause::FinalBakePassed,
        actions: cleanup,
    }
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
        let mut cleanup = delete_green_alarms(&d.plan);
        cleanup.extend(delete_unused_configs(&d.plan));
        return Outcome::Move {
            to: Phase::RolledBack { cause },
            cause: Cause::RollbackComplete,
            actions: cleanup,
        };
    }
    if let Some(outcome) = common(d, endpoint, &target, since, now) {
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
    // On blue+green, every request is on blue now; on the final config (a rollback during the
    // final fleet's bake), only the update back to the original config restores blue.
    if endpoint.config_name != d.plan.green_config_name || d.plan.engine == Engine::Native {
        d.traffic_restored_at.get_or_insert(now);
    }
    retry_update(d, endpoint, update, target, Vec::new(), now)
}

/// What both updating phases decide the same way once the endpoint is not yet in service on
/// their target: out of time, waiting for SageMaker, or changed by someone else. `None` when
/// the endpoint is in service on a config Guardrails made (blue+green, or the final one) and
/// the phase must act.
fn common(
    d: &mut Deployment,
    endpoint: &EndpointView,
    target: &str,
    since: Timestamp,
    now: Timestamp,
) -> Option<Outcome> {
    let plan = &d.plan;
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
    // Back to blue's config, variants keep the capacity they have now (`RetainAllVariant
    // Properties`): blue at what it served with, not its config's InitialInstanceCount.
    let retain_variant_properties = target == d.plan.blue_config_name;
    actions.push(Action::UpdateEndpoint {
        config_name: target,
        deployment_config: None,
        retain_variant_properties,
    });
    wait(d, actions, now)
}
