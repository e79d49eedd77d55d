//! The invariants of DESIGN.md checked after every delivery (the end-of-run checks, liveness,
//! pages and audit trails, are in the runner).

// Random numbers are mapped to small ranges and probabilities on purpose.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]

use guardrails::core::{AlarmState, Cause, Phase};
use guardrails::memory::MemoryStore;
use guardrails::policy::Engine;
use guardrails::ports::Store;
use guardrails::units::Share;

use super::Sim;

/// Invariant 4: a watched alarm in ALARM during a bake (or shift) starts a rollback in the
/// invocation that saw it.
pub(super) async fn check_alarm_rule(sim: &Sim, endpoint: &str) -> Result<(), String> {
    let Ok(Some(stored)) = sim.store.load(endpoint).await else {
        return Ok(());
    };
    let d = &stored.deployment;
    let final_fleet = matches!(d.phase, Phase::BakingFinalFleet { .. });
    if !final_fleet
        && !matches!(
            d.phase,
            Phase::Baking { .. } | Phase::Shifting { .. } | Phase::AwaitingApproval { .. }
        )
    {
        return Ok(());
    }
    let s = sim.state();
    let Some(world) = s.worlds.get(endpoint) else {
        return Ok(());
    };
    let alarms = world.observe().alarms;
    let watched = d
        .plan
        .watched_alarms
        .iter()
        .filter(|a| a.watched(final_fleet));
    for name in watched.map(|a| a.alarm_name.as_str()) {
        if alarms
            .get(name)
            .is_some_and(|a| a.state == AlarmState::Alarm)
        {
            return Err(format!(
                "invariant 4: {endpoint} is {} with alarm {name} in ALARM after an invocation",
                d.phase.label()
            ));
        }
    }
    Ok(())
}

/// Invariants 1, 2, 3 and 5, on the store and the world after a delivery.
pub(super) async fn check(sim: &Sim, store: &MemoryStore) -> Result<(), String> {
    let endpoints: Vec<String> = sim.state().worlds.keys().cloned().collect();
    for endpoint in endpoints {
        let active = store.load(&endpoint).await.ok().flatten();
        let history = store.history(&endpoint);
        let (config, traffic) = {
            let s = sim.state();
            let w = &s.worlds[&endpoint];
            (w.config_name().to_owned(), w.traffic())
        };
        if let Some(a) = &active
            && history
                .iter()
                .any(|h| h.deployment.plan.deployment_id == a.deployment.plan.deployment_id)
        {
            return Err(format!(
                "invariant 6: deployment {} is active again after it ended",
                a.deployment.plan.deployment_id
            ));
        }
        // Invariants 2 and 3 are about traffic Guardrails moves; SageMaker moves a native one.
        if let Some(a) = &active
            && a.deployment.plan.engine == Engine::Variant
        {
            let plan = &a.deployment.plan;
            let audit = store
                .audit(&endpoint, &plan.deployment_id)
                .await
                .unwrap_or_default();
            let allowed = audit
                .iter()
                .filter_map(|e| match e.transition.to {
                    Phase::Shifting { step } | Phase::Baking { step, .. } => {
                        plan.steps.get(step).map(|s| s.green_share)
                    }
                    _ => None,
                })
                .max()
                .unwrap_or(Share::ZERO);
            let green = traffic
                .iter()
                .find(|(v, _)| *v == plan.green.variant_name)
                .map_or(0.0, |(_, s)| *s);
            if green > allowed.fraction() + 1e-6 {
                return Err(format!(
                    "invariant 2: {endpoint} sends {green:.4} of requests to green; the steps reached allow {allowed}"
                ));
            }
            let final_bake_passed = audit.iter().any(|e| {
                e.transition.cause
                    == Cause::BakePassed {
                        step: plan.last_step(),
                    }
            });
            let blue_gone = !traffic.iter().any(|(v, _)| *v == plan.blue.variant_name)
                || config == plan.green_config_name;
            if blue_gone && !final_bake_passed {
                return Err(format!(
                    "invariant 3: {endpoint} removed blue before the final bake passed"
                ));
            }
        }
        // Invariant 10, auto scaling: an ended deployment gave blue's scalable target back the
        // state it had, unless AWS refused it and the record says so.
        if active.is_none()
            && let Some(last) = history.last()
            && let Some(before) = &last.deployment.plan.scaling
        {
            let now = sim.state().worlds[&endpoint]
                .scaling
                .as_ref()
                .map(|t| t.suspended);
            let noted = last
                .deployment
                .trouble
                .after_end
                .iter()
                .any(|n| n.contains("RegisterScalableTarget"));
            if now != Some(before.suspended) && !noted {
                return Err(format!(
                    "invariant 10: {endpoint}'s scaling is {now:?} after deployment {} ended, not \
                     {:?} as before",
                    last.deployment.plan.deployment_id, before.suspended
                ));
            }
        }
        // Invariant 10: a success ends with the new model alone under blue's variant name.
        if active.is_none()
            && let Some(last) = history.last()
            && last.deployment.phase == Phase::Succeeded
        {
            let plan = &last.deployment.plan;
            let served = sim.state().worlds[&endpoint].models();
            let kept = served.len() == 1
                && served[0].0 == plan.blue.variant_name
                && served[0].1 == plan.green.model_name;
            if config != plan.green_config_name || !kept {
                return Err(format!(
                    "invariant 10: {endpoint} succeeded but serves {config} with {served:?}, not \
                     {} under {}",
                    plan.green.model_name, plan.blue.variant_name
                ));
            }
        }
        if active.is_none()
            && let Some(last) = history.last()
            && matches!(last.deployment.phase, Phase::RolledBack { .. })
        {
            let plan = &last.deployment.plan;
            // Native: the new fleet kept blue's variant name; the config tells them apart.
            let full = plan.engine == Engine::Native
                || traffic
                    .iter()
                    .all(|(v, s)| *v != plan.green.variant_name || *s == 0.0);
            if config != plan.blue_config_name || !full {
                return Err(format!(
                    "invariant 5: {endpoint} rolled back but serves {config} with {traffic:?}"
                ));
            }
        }
    }
    Ok(())
}
