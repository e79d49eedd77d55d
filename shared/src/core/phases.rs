//! What each phase of the rollout does with an observation: either wait (with the actions that
//! make the world match the phase) or move to another phase with a cause. Level-triggered: every
//! call looks at the whole observation, so a lost, late or repeated event changes nothing. The
//! phases after the outcome is known (removing blue, rolling back) are in `settle`.

use super::settle;
use super::{
    Action, AlarmState, Cause, ConfigVariant, Deployment, EndpointView, Observation, Phase,
    SETTLE_SECS, UpdateProgress,
};
use crate::judge::Verdict;
use crate::plan::{Plan, Suspended};
use crate::policy::{HookPoint, WhenInconclusive};
use crate::units::{Share, Timestamp};

pub(super) enum Outcome {
    Wait {
        actions: Vec<Action>,
        wake_at: Timestamp,
    },
    Move {
        to: Phase,
        cause: Cause,
        actions: Vec<Action>,
    },
}

fn go(to: Phase, cause: Cause) -> Outcome {
    Outcome::Move {
        to,
        cause,
        actions: Vec::new(),
    }
}

/// Phases whose end is a rollback: green may serve traffic and is not yet proven.
pub(super) fn is_guarded(phase: &Phase) -> bool {
    matches!(
        phase,
        Phase::Provisioning { .. }
            | Phase::Shifting { .. }
            | Phase::Baking { .. }
            | Phase::AwaitingApproval { .. }
            | Phase::HeldInconclusive { .. }
            | Phase::Hooking { .. }
            | Phase::BakingFinalFleet { .. }
    )
}

pub(super) fn rolling_back(cause: Cause, now: Timestamp) -> Phase {
    Phase::RollingBack {
        cause,
        since: now,
        update: UpdateProgress::default(),
    }
}

/// The config the phase's UpdateEndpoint moves the endpoint to.
pub(super) fn update_target<'p>(plan: &'p Plan, phase: &Phase) -> Option<&'p str> {
    match phase {
        Phase::Provisioning { .. } => Some(&plan.blue_green_config_name),
        Phase::RemovingBlue { .. } => Some(&plan.green_config_name),
        Phase::BakingFinalFleet { .. } => None,
        Phase::RollingBack { .. } => Some(&plan.blue_config_name),
        Phase::NativeDeploying { .. } => Some(&plan.green_config_name),
        _ => None,
    }
}

pub(super) fn update_progress(phase: &mut Phase) -> Option<&mut UpdateProgress> {
    match phase {
        Phase::Provisioning { update }
        | Phase::RemovingBlue { update, .. }
        | Phase::RollingBack { update, .. }
        | Phase::NativeDeploying { update, .. } => Some(update),
        _ => None,
    }
}

pub(super) fn next(d: &mut Deployment, obs: &Observation, now: Timestamp) -> Outcome {
    if obs.unseen.is_some() {
        return blind(d, now);
    }
    if let Phase::NativeDeploying { .. } = d.phase {
        return super::native::next(d, obs, now);
    }
    let phase = d.phase.clone();
    if let Some(step) = phase_step(&phase)
        && d.plan.steps.get(step).is_none()
    {
        let detail = format!(
            "the record names step {step}, but the plan has {} steps",
            d.plan.steps.len()
        );
        return failed(Cause::InvalidRecord { detail }, Vec::new());
    }
    if is_guarded(&phase)
        && let Some(cause) = guard_tripped(d, obs, now, &phase)
    {
        if let Cause::AlarmFired { alarm_name, .. } = &cause {
            let at = obs.alarms.get(alarm_name).and_then(|a| a.since);
            d.signal(
                at.unwrap_or(now).min(now),
                format!("alarm {alarm_name} went into ALARM"),
            );
        }
        return go(rolling_back(cause.clone(), now), cause);
    }
    if let Some((Verdict::Worse, step, summary)) = d.look(obs, now) {
        d.signal(now, "the judge found green worse than blue".to_owned());
        let cause = Cause::GreenWorse { step, summary };
        return go(rolling_back(cause.clone(), now), cause);
    }
    let endpoint = match usable_endpoint(obs) {
        Ok(endpoint) => endpoint,
        Err(cause) => {
            // The endpoint is gone or broken: nothing can be rolled back. Remove only what
            // cannot be in use (alarms; configs when the endpoint no longer exists).
            let mut actions = delete_green_alarms(&d.plan);
            if cause == Cause::EndpointDeleted {
                actions.extend(delete_configs(&d.plan));
            }
            return failed(cause, actions);
        }
    };
    match phase {
        Phase::Provisioning { update } => provisioning(d, obs, endpoint, update, now),
        Phase::BakingFinalFleet { until } => settle::baking_final_fleet(d, endpoint, until, now),
        Phase::Shifting { step } => shifting(d, endpoint, step, now),
        Phase::Hooking { .. } => super::hooks::hooking(d, obs, endpoint, now),
        Phase::Baking { step, until } => baking(d, endpoint, step, until, now),
        Phase::AwaitingApproval { step } => {
            // Changed by hand while waiting: noticed now, as during a bake, not after approval.
            if !endpoint.status.is_busy() && endpoint.config_name != d.plan.blue_green_config_name {
                return changed_outside(endpoint);
            }
            match &d.approved_by {
                Some(by) => go(Phase::Shifting { step }, Cause::Approved { by: by.clone() }),
                None => wait(d, Vec::new(), now),
            }
        }
        Phase::HeldInconclusive { step, .. } => {
            if !endpoint.status.is_busy() && endpoint.config_name != d.plan.blue_green_config_name {
                return changed_outside(endpoint);
            }
            // The judge keeps looking while the hold waits for a person: evidence may come.
            match fresh_verdict(d, step, now) {
                Some((Verdict::NoWorse, summary)) => go(
                    after_bake(&d.plan, step, now),
                    Cause::JudgedNoWorse { step, summary },
                ),
                _ => wait(d, Vec::new(), now),
            }
        }
        Phase::RemovingBlue { since, update } => {
            settle::removing_blue(d, obs, endpoint, since, update, now)
        }
        Phase::RollingBack {
            cause,
            since,
            update,
        } => settle::rolling_back(d, endpoint, cause, since, update, now),
        Phase::NativeDeploying { .. }
        | Phase::Succeeded
        | Phase::RolledBack { .. }
        | Phase::Failed { .. } => Outcome::Wait {
            actions: Vec::new(),
            wake_at: now,
        },
    }
}

/// The look at the world failed: nothing that depends on it is decided, but the deadlines
/// still hold (the driver counts the failure; a run of them ends as a refusal).
fn blind(d: &Deployment, now: Timestamp) -> Outcome {
    let timed_out = Cause::TimedOut {
        deadline: d.deadline,
    };
    match &d.phase {
        Phase::BakingFinalFleet { .. } => wait(d, Vec::new(), now),
        phase if is_guarded(phase) && now >= d.deadline => {
            go(rolling_back(timed_out.clone(), now), timed_out)
        }
        Phase::NativeDeploying { .. } if now >= d.deadline => failed(timed_out, Vec::new()),
        phase @ (Phase::RemovingBlue { since, .. } | Phase::RollingBack { since, .. })
            if now >= since.plus_secs(SETTLE_SECS) =>
        {
            let config_name = update_target(&d.plan, phase).unwrap_or_default().to_owned();
            failed(Cause::SettleTimedOut { config_name }, Vec::new())
        }
        _ => wait(d, Vec::new(), now),
    }
}

fn phase_step(phase: &Phase) -> Option<usize> {
    match phase {
        Phase::Shifting { step }
        | Phase::Baking { step, .. }
        | Phase::AwaitingApproval { step }
        | Phase::HeldInconclusive { step, .. } => Some(*step),
        _ => None,
    }
}

/// While green is unproven: a watched alarm in ALARM or missing, or the deadline. Alarms are
/// not judged during provisioning, when green serves no traffic. The final fleet's bake
/// watches its own alarms and is bounded by its end, not by the deadline: it starts once the
/// deadline-bound rollout has passed.
fn guard_tripped(
    d: &Deployment,
    obs: &Observation,
    now: Timestamp,
    phase: &Phase,
) -> Option<Cause> {
    let final_fleet = matches!(phase, Phase::BakingFinalFleet { .. });
    if !matches!(phase, Phase::Provisioning { .. }) {
        let watched = d
            .plan
            .watched_alarms
            .iter()
            .filter(|a| a.watched(final_fleet));
        for name in watched.map(|a| a.alarm_name.as_str()) {
            match obs.alarms.get(name) {
                Some(alarm) if alarm.state == AlarmState::Alarm => {
                    return Some(Cause::AlarmFired {
                        alarm_name: name.to_owned(),
                        reason: alarm.reason.clone(),
                    });
                }
                Some(_) => {}
                None => {
                    return Some(Cause::AlarmMissing {
                        alarm_name: name.to_owned(),
                    });
                }
            }
        }
    }
    (!final_fleet && now >= d.deadline).then_some(Cause::TimedOut {
        deadline: d.deadline,
    })
}

fn usable_endpoint(obs: &Observation) -> Result<&EndpointView, Cause> {
    let Some(endpoint) = &obs.endpoint else {
        return Err(Cause::EndpointDeleted);
    };
    if endpoint.status.is_broken() {
        return Err(Cause::EndpointBroken {
            status: format!("{:?}", endpoint.status),
            reason: endpoint.failure_reason.clone().unwrap_or_default(),
        });
    }
    Ok(endpoint)
}

pub(super) fn failed(cause: Cause, actions: Vec<Action>) -> Outcome {
    Outcome::Move {
        to: Phase::Failed {
            cause: cause.clone(),
        },
        cause,
        actions,
    }
}

/// Wait for an event or the next poll, never past the deadline that bounds this phase.
pub(super) fn wait(d: &Deployment, actions: Vec<Action>, now: Timestamp) -> Outcome {
    wait_until(d, actions, now.plus_secs(d.plan.poll_secs), now)
}

pub(super) fn wait_until(
    d: &Deployment,
    actions: Vec<Action>,
    at: Timestamp,
    now: Timestamp,
) -> Outcome {
    let bound = match &d.phase {
        Phase::RemovingBlue { since, .. } | Phase::RollingBack { since, .. } => {
            since.plus_secs(SETTLE_SECS)
        }
        Phase::BakingFinalFleet { until } => *until,
        _ => d.deadline,
    };
    Outcome::Wait {
        actions,
        wake_at: at.min(bound).max(now),
    }
}

pub(super) fn changed_outside(endpoint: &EndpointView) -> Outcome {
    failed(
        Cause::ChangedOutsideGuardrails {
            config_name: endpoint.config_name.clone(),
        },
        Vec::new(),
    )
}

/// Marks the phase's update as accepted when the endpoint is seen updating towards its target.
pub(super) fn note_update_in_flight(d: &mut Deployment, endpoint: &EndpointView, now: Timestamp) {
    let target = update_target(&d.plan, &d.phase).map(str::to_owned);
    if target.is_some()
        && endpoint.pending_config_name == target
        && let Some(update) = update_progress(&mut d.phase)
    {
        update.accepted_at.get_or_insert(now);
    }
}

fn provisioning(
    d: &mut Deployment,
    obs: &Observation,
    endpoint: &EndpointView,
    update: UpdateProgress,
    now: Timestamp,
) -> Outcome {
    let plan = &d.plan;
    let missing_alarms = put_missing_green_alarms(plan, obs, false);
    if endpoint.status.is_busy() {
        note_update_in_flight(d, endpoint, now);
        return wait(d, missing_alarms, now);
    }
    if endpoint.config_name == plan.blue_green_config_name {
        if !missing_alarms.is_empty() {
            return wait(d, missing_alarms, now);
        }
        // Green exists and serves nothing: the pre-traffic hook, if the policy names one, is
        // asked now.
        let next = if plan.hooks.pre_traffic.is_some() {
            super::hooks::asking(HookPoint::PreTraffic, now)
        } else {
            Phase::Shifting { step: 0 }
        };
        return go(next, Cause::GreenProvisioned);
    }
    if endpoint.config_name != plan.blue_config_name {
        return changed_outside(endpoint);
    }
    if update.accepted_at.is_some() {
        // SageMaker took the update and the endpoint is back on blue: the silent failure.
        let reason = match endpoint.failure_reason.as_deref() {
            Some(reason) if !reason.is_empty() => reason.to_owned(),
            _ => "the endpoint returned to InService on the old config with no FailureReason"
                .to_owned(),
        };
        let mut cleanup = delete_green_alarms(plan);
        cleanup.push(Action::DeleteEndpointConfig {
            config_name: plan.blue_green_config_name.clone(),
        });
        return failed(Cause::ProvisioningFailed { reason }, cleanup);
    }
    let first = plan.steps.first().map_or(1, |s| s.green_instances);
    let mut actions = vec![
        Action::CreateEndpointConfig {
            config_name: plan.blue_green_config_name.clone(),
            from_config: plan.blue_config_name.clone(),
            variants: vec![
                // Blue at the capacity it serves with now (auto scaling may have moved it
                // from its config's InitialInstanceCount).
                ConfigVariant::Copy {
                    variant_name: plan.blue.variant_name.clone(),
                    initial_weight: 1.0,
                    instance_count: Some(plan.blue.instance_count),
                },
                ConfigVariant::New {
                    like: plan.blue.variant_name.clone(),
                    variant_name: plan.green.variant_name.clone(),
                    model_name: plan.green.model_name.clone(),
                    instance_type: plan.green.instance_type.clone(),
                    instance_count: first,
                    initial_weight: 0.0,
                },
            ],
        },
        Action::UpdateEndpoint {
            config_name: plan.blue_green_config_name.clone(),
            deployment_config: None,
            retain_variant_properties: false,
        },
    ];
    actions.extend(missing_alarms);
    actions.extend(suspend_scaling(plan));
    wait(d, actions, now)
}

fn shifting(d: &mut Deployment, endpoint: &EndpointView, step: usize, now: Timestamp) -> Outcome {
    let plan = &d.plan;
    let Some(target) = plan.steps.get(step).copied() else {
        return wait(d, Vec::new(), now);
    };
    if step == plan.last_step() && plan.approve_before_final_shift && d.approved_by.is_none() {
        return go(Phase::AwaitingApproval { step }, Cause::ApprovalRequired);
    }
    if endpoint.status.is_busy() {
        return wait(d, Vec::new(), now);
    }
    if endpoint.config_name != plan.blue_green_config_name {
        return changed_outside(endpoint);
    }
    let green = &plan.green.variant_name;
    let (desired, current) = endpoint.variant(green).map_or((0, 0), |v| {
        (v.desired_instance_count, v.current_instance_count)
    });
    if desired < target.green_instances {
        let action = Action::SetInstanceCount {
            variant_name: green.clone(),
            instance_count: target.green_instances,
        };
        return wait(d, vec![action], now);
    }
    if current < target.green_instances {
        return wait(d, Vec::new(), now);
    }
    if !endpoint.serves_share(green, target.green_share) {
        return wait(d, vec![set_weights(plan, target.green_share)], now);
    }
    go(
        Phase::Baking {
            step,
            until: now.plus_secs(target.bake_secs),
        },
        Cause::Shifted {
            step,
            green_share: target.green_share,
        },
    )
}

fn baking(
    d: &mut Deployment,
    endpoint: &EndpointView,
    step: usize,
    until: Timestamp,
    now: Timestamp,
) -> Outcome {
    let plan = &d.plan;
    let Some(target) = plan.steps.get(step).copied() else {
        return wait(d, Vec::new(), now);
    };
    if endpoint.status.is_busy() {
        // The weights cannot be confirmed while SageMaker works; the bake cannot pass either.
        return wait(d, Vec::new(), now);
    }
    if endpoint.config_name != plan.blue_green_config_name {
        return changed_outside(endpoint);
    }
    let green = &plan.green.variant_name;
    if !endpoint.serves_share(green, target.green_share) {
        let green_share = Share::nearest(endpoint.share_of(green));
        return go(
            Phase::Shifting { step },
            Cause::WeightsChanged { green_share },
        );
    }
    let judged = d.judges_step(step);
    let verdict = fresh_verdict(d, step, now);
    let analysis = plan.analysis.as_ref().filter(|_| judged);
    let early = analysis.is_some_and(|a| a.end_bakes_early)
        && matches!(verdict, Some((Verdict::NoWorse, _)));
    if now < until && !early {
        return wait_until(d, Vec::new(), until.min(now.plus_secs(plan.poll_secs)), now);
    }
    let Some(analysis) = analysis else {
        return go(after_bake(plan, step, now), Cause::BakePassed { step });
    };
    let summary = match verdict {
        Some((Verdict::NoWorse, summary)) => {
            return go(
                after_bake(plan, step, now),
                Cause::JudgedNoWorse { step, summary },
            );
        }
        Some((_, summary)) => summary,
        None => "no counts were read".to_owned(),
    };
    let held = Phase::HeldInconclusive {
        step,
        bake_from: until.minus_secs(target.bake_secs),
    };
    let inconclusive = Cause::Inconclusive {
        step,
        summary: summary.clone(),
    };
    match analysis.when_inconclusive {
        WhenInconclusive::Extend if now < until.plus_secs(analysis.extend_up_to_seconds) => {
            let end = until.plus_secs(analysis.extend_up_to_seconds);
            wait_until(d, Vec::new(), end.min(now.plus_secs(plan.poll_secs)), now)
        }
        WhenInconclusive::Extend | WhenInconclusive::HoldForApproval => go(held, inconclusive),
        WhenInconclusive::RollBack => go(rolling_back(inconclusive.clone(), now), inconclusive),
        WhenInconclusive::Pass => go(
            after_bake(plan, step, now),
            Cause::PassedWithoutVerdict { step, summary },
        ),
    }
}

/// The judge's verdict on `step` at this very look (a judgement of an earlier look, or of
/// another step, says nothing now), with its summary.
fn fresh_verdict(d: &Deployment, step: usize, now: Timestamp) -> Option<(Verdict, String)> {
    d.judgement
        .as_ref()
        .filter(|j| j.step == step && j.at == now)
        .map(|j| (j.verdict, j.summary()))
}

/// Where the rollout goes once the bake of `step` passed: the next shift, or after the last
/// the post-traffic hook (if the policy names one), then removing blue.
pub(super) fn after_bake(plan: &Plan, step: usize, now: Timestamp) -> Phase {
    if step < plan.last_step() {
        Phase::Shifting { step: step + 1 }
    } else if plan.hooks.post_traffic.is_some() {
        super::hooks::asking(HookPoint::PostTraffic, now)
    } else {
        removing_blue(now)
    }
}

pub(super) fn removing_blue(now: Timestamp) -> Phase {
    Phase::RemovingBlue {
        since: now,
        update: UpdateProgress::default(),
    }
}

/// The config the endpoint keeps at the end: blue's, with the new model alone under
/// `variant_name` at green's instance type and count.
pub(super) fn green_alone(plan: &Plan, variant_name: &str) -> Action {
    Action::CreateEndpointConfig {
        config_name: plan.green_config_name.clone(),
        from_config: plan.blue_config_name.clone(),
        variants: vec![ConfigVariant::New {
            like: plan.blue.variant_name.clone(),
            variant_name: variant_name.to_owned(),
            model_name: plan.green.model_name.clone(),
            instance_type: plan.green.instance_type.clone(),
            instance_count: plan.green.instance_count,
            initial_weight: 1.0,
        }],
    }
}

/// Blue's scalable target, if it has one, must not scale while the deployment runs: dynamic
/// scaling would shrink blue while green takes its traffic (and a rollback would land on the
/// shrunken fleet). `Decision::move_to` restores it as it was when the deployment ends.
pub(super) fn suspend_scaling(plan: &Plan) -> Option<Action> {
    plan.scaling.as_ref().map(|_| Action::SetScaling {
        variant_name: plan.blue.variant_name.clone(),
        suspended: Suspended::ALL,
    })
}

pub(super) fn set_weights(plan: &Plan, green_share: Share) -> Action {
    Action::SetWeights {
        blue_variant: plan.blue.variant_name.clone(),
        green_variant: plan.green.variant_name.clone(),
        green_share,
    }
}

/// The alarms Guardrails creates that do not exist yet: those of the steps, scoped to green's
/// variant, or (`final_fleet`) those of the final fleet, scoped to blue's variant name, which
/// the new model keeps.
pub(super) fn put_missing_green_alarms(
    plan: &Plan,
    obs: &Observation,
    final_fleet: bool,
) -> Vec<Action> {
    let variant_name = if final_fleet {
        &plan.blue.variant_name
    } else {
        &plan.green.variant_name
    };
    plan.watched_alarms
        .iter()
        .filter(|a| a.final_fleet == final_fleet && !obs.alarms.contains_key(&a.alarm_name))
        .filter_map(|a| {
            a.green_template
                .as_ref()
                .map(|template| Action::PutGreenAlarm {
                    alarm_name: a.alarm_name.clone(),
                    endpoint_name: plan.endpoint_name.clone(),
                    variant_name: variant_name.clone(),
                    template: template.clone(),
                })
        })
        .collect()
}

pub(super) fn delete_green_alarms(plan: &Plan) -> Vec<Action> {
    let alarm_names: Vec<String> = plan
        .watched_alarms
        .iter()
        .filter(|a| a.green_template.is_some())
        .map(|a| a.alarm_name.clone())
        .collect();
    if alarm_names.is_empty() {
        Vec::new()
    } else {
        vec![Action::DeleteAlarms { alarm_names }]
    }
}

fn delete_configs(plan: &Plan) -> Vec<Action> {
    [&plan.blue_green_config_name, &plan.green_config_name]
        .into_iter()
        .map(|name| Action::DeleteEndpointConfig {
            config_name: name.clone(),
        })
        .collect()
}
