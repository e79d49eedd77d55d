//! Runs the real core against the `World` on virtual time, like a driver would (observe,
//! decide, act, acknowledge, sleep until the wake-up or the next event), and writes a
//! transcript a person can read: time, what was seen, what was done, and each transition.

use std::fmt::Write as _;

use guardrails::core::{Action, AlarmState, Command, Decision, Deployment, Observation};
use guardrails::plan::Plan;
use guardrails::units::Timestamp;

use crate::world::{World, percent};

/// The most decisions one story may take; a story that needs more is stuck.
const MAX_DECISIONS: usize = 500;

/// A finished story.
#[derive(Debug)]
pub struct Run {
    pub transcript: String,
    pub deployment: Deployment,
    pub world: World,
    pub decisions: Vec<Decision>,
}

/// Runs `plan` from `world.now` until the deployment ends, giving `commands` at their times
/// (seconds from the start).
pub fn run(plan: Plan, mut world: World, commands: &[(u32, Command)]) -> Run {
    let start = world.now;
    let mut out = String::new();
    let (mut deployment, started) = match Deployment::start(plan, start) {
        Ok(started) => started,
        Err(e) => panic!("cannot start: {e}"),
    };
    let _ = writeln!(
        out,
        "{}  => {} ({})",
        clock(start, start),
        started.to.label(),
        started.cause
    );
    let mut pending: Vec<&(u32, Command)> = commands.iter().collect();
    let mut decisions = Vec::new();
    let mut last_seen = String::new();
    let mut quiet_polls = 0;
    for _ in 0..MAX_DECISIONS {
        let now = world.now;
        let command = match pending.first() {
            Some((at, command)) if start.plus_secs(*at) <= now => {
                let command = command.clone();
                pending.remove(0);
                Some(command)
            }
            _ => None,
        };
        let observation = world.observe();
        let decision = deployment.decide(&observation, command.as_ref(), now);
        let mut seen = format!(
            "{:<28} | {}",
            deployment.phase.label(),
            describe(&observation)
        );
        if let Some(command) = &command {
            let _ = write!(seen, " | command {command:?}");
        }
        let quiet = decision.actions.is_empty() && decision.transitions.is_empty();
        if quiet && seen == last_seen {
            // Polls that see nothing new are counted, not printed.
            quiet_polls += 1;
        } else {
            flush_quiet(&mut out, &mut quiet_polls);
            let _ = writeln!(out, "{}  {seen}", clock(start, now));
        }
        last_seen = seen;
        for t in &decision.transitions {
            let _ = writeln!(
                out,
                "{}  => {} ({})",
                clock(start, now),
                t.to.label(),
                t.cause
            );
        }
        deployment = decision.deployment.clone();
        for action in &decision.actions {
            match world.apply(action) {
                Ok(()) => {
                    let _ = writeln!(
                        out,
                        "{}     do {}",
                        clock(start, now),
                        describe_action(action)
                    );
                    if let Action::UpdateEndpoint { config_name, .. } = action {
                        deployment = deployment.update_accepted(config_name, now);
                    }
                }
                Err(refusal) => {
                    let _ = writeln!(
                        out,
                        "{}     refused {}: {refusal}",
                        clock(start, now),
                        describe_action(action)
                    );
                }
            }
        }
        let wake = decision.wake_at;
        decisions.push(decision);
        let Some(wake) = wake else {
            break;
        };
        // An event (the endpoint or an alarm changing) wakes the deployment sooner.
        let next_command = pending.first().map(|(at, _)| start.plus_secs(*at));
        let next = [Some(wake), world.next_change(), next_command]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(wake)
            .max(now);
        world.advance_to(next);
    }
    flush_quiet(&mut out, &mut quiet_polls);
    let _ = writeln!(
        out,
        "end: {}; endpoint on {} [{}]",
        deployment.phase.label(),
        world.config_name(),
        traffic(&world)
    );
    Run {
        transcript: out,
        deployment,
        world,
        decisions,
    }
}

fn flush_quiet(out: &mut String, quiet_polls: &mut u32) {
    if *quiet_polls > 0 {
        let _ = writeln!(
            out,
            "            ... {quiet_polls} more looks, nothing changed"
        );
        *quiet_polls = 0;
    }
}

fn clock(start: Timestamp, now: Timestamp) -> String {
    format!("t+{:>5}s", now.secs_since(start))
}

fn traffic(world: &World) -> String {
    world
        .traffic()
        .iter()
        .map(|(name, share)| format!("{name} {}", percent(*share)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(obs: &Observation) -> String {
    let endpoint = match &obs.endpoint {
        None => "endpoint missing".to_owned(),
        Some(e) => {
            let total: f64 = e.variants.iter().map(|v| v.current_weight).sum();
            let variants: Vec<String> = e
                .variants
                .iter()
                .map(|v| {
                    let share = if total > 0.0 {
                        v.current_weight / total
                    } else {
                        0.0
                    };
                    format!(
                        "{} {} x{}",
                        v.variant_name,
                        percent(share),
                        v.current_instance_count
                    )
                })
                .collect();
            let pending = e
                .pending_config_name
                .as_ref()
                .map(|p| format!(" -> {p}"))
                .unwrap_or_default();
            let reason = e
                .failure_reason
                .as_ref()
                .map(|r| format!(" (FailureReason: {r})"))
                .unwrap_or_default();
            format!(
                "{:?} {}{pending} [{}]{reason}",
                e.status,
                e.config_name,
                variants.join(", ")
            )
        }
    };
    let alarms: Vec<String> = obs
        .alarms
        .iter()
        .map(|(name, a)| {
            let state = match a.state {
                AlarmState::Ok => "OK",
                AlarmState::Alarm => "ALARM",
                AlarmState::InsufficientData => "INSUFFICIENT_DATA",
            };
            format!("{name} {state}")
        })
        .collect();
    if alarms.is_empty() {
        endpoint
    } else {
        format!("{endpoint}; {}", alarms.join(", "))
    }
}

fn describe_action(action: &Action) -> String {
    match action {
        Action::CreateEndpointConfig {
            config_name,
            variants,
            ..
        } => format!(
            "CreateEndpointConfig {config_name} ({} variants)",
            variants.len()
        ),
        Action::UpdateEndpoint { config_name, .. } => format!("UpdateEndpoint -> {config_name}"),
        Action::SetWeights {
            blue_variant,
            green_variant,
            green_share,
        } => format!(
            "UpdateEndpointWeightsAndCapacities {blue_variant} {} / {green_variant} {green_share}",
            green_share.complement()
        ),
        Action::SetInstanceCount {
            variant_name,
            instance_count,
        } => format!("UpdateEndpointWeightsAndCapacities {variant_name} x{instance_count}"),
        Action::PutGreenAlarm { alarm_name, .. } => format!("PutMetricAlarm {alarm_name}"),
        Action::SetScaling {
            variant_name,
            suspended,
        } => format!(
            "RegisterScalableTarget {variant_name} (dynamic scaling {})",
            if suspended.dynamic_scaling_in {
                "suspended"
            } else {
                "as before"
            }
        ),
        Action::DeleteAlarms { alarm_names } => format!("DeleteAlarms {}", alarm_names.join(", ")),
        Action::RaiseAlarm { alarm_name, .. } => format!("SetAlarmState {alarm_name} ALARM"),
        Action::DeleteEndpointConfig { config_name } => {
            format!("DeleteEndpointConfig {config_name}")
        }
    }
}
