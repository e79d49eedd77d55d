//! Green's steps from a policy: the shares of requests (or, for rolling updates, of instances)
//! and the bake after each, whatever way the policy gives them.

use crate::policy::{CapacitySize, CapacityType, Policy, RollingUpdatePolicy, TrafficRoutingType};
use crate::units::Share;

/// Green's shares with their bakes (and blue's remaining instances for rolling updates).
pub(super) struct Schedule {
    pub(super) from: String,
    pub(super) bakes: Vec<(Share, u32, Option<u32>)>,
    pub(super) notes: Vec<String>,
}

pub(super) fn schedule(
    policy: &Policy,
    fleet_size: u32,
    problem: &mut impl FnMut(&str, String),
) -> Option<Schedule> {
    let config = &policy.deployment_config;
    let explicit = policy.guardrails.traffic_steps.as_ref();
    if let Some(rolling) = &config.rolling_update_policy {
        return rolling_schedule(rolling, fleet_size, problem);
    }
    let Some(bg) = &config.blue_green_update_policy else {
        let from = "no update policy: SageMaker's default, all at once with no bake".to_owned();
        return match explicit {
            Some(steps) => Some(explicit_schedule(steps, 0, 0, Vec::new())),
            None => Some(Schedule {
                from,
                bakes: vec![(Share::FULL, 0, None)],
                notes: Vec::new(),
            }),
        };
    };
    let routing = &bg.traffic_routing_configuration;
    let wait = routing.wait_interval_in_seconds;
    let final_bake = bg.termination_wait_in_seconds.unwrap_or(0);
    let mut notes = Vec::new();
    if let Some(steps) = explicit {
        return Some(explicit_schedule(steps, wait, final_bake, notes));
    }
    const BASE: &str = "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration";
    let (from, shares) = match routing.r#type {
        TrafficRoutingType::AllAtOnce => {
            if wait > 0 {
                notes.push(format!(
                    "WaitIntervalInSeconds ({wait} s) is not used by ALL_AT_ONCE: there is no \
                     step before the last; the bake after it is TerminationWaitInSeconds"
                ));
            }
            ("ALL_AT_ONCE".to_owned(), vec![Share::FULL])
        }
        TrafficRoutingType::Canary => {
            let size = routing.canary_size?;
            let share = size_share(
                size,
                fleet_size,
                &format!("{BASE}.CanarySize"),
                1,
                5_000,
                "a canary",
                problem,
            )?;
            (
                format!("CANARY, CanarySize {}", size_words(size)),
                vec![share, Share::FULL],
            )
        }
        TrafficRoutingType::Linear => {
            let size = routing.linear_step_size?;
            let step = size_share(
                size,
                fleet_size,
                &format!("{BASE}.LinearStepSize"),
                1_000,
                5_000,
                "a linear step",
                problem,
            )?;
            (
                format!("LINEAR, LinearStepSize {}", size_words(size)),
                linear(step),
            )
        }
    };
    let last = shares.len() - 1;
    let bakes = shares
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, if i == last { final_bake } else { wait }, None))
        .collect();
    Some(Schedule { from, bakes, notes })
}

/// `10%` or `2 instances`, as the policy gave it.
fn size_words(size: CapacitySize) -> String {
    match size.r#type {
        CapacityType::CapacityPercent => format!("{}%", size.value),
        CapacityType::InstanceCount => size.to_string(),
    }
}

fn explicit_schedule(steps: &[Share], wait: u32, final_bake: u32, notes: Vec<String>) -> Schedule {
    let last = steps.len().saturating_sub(1);
    let listed: Vec<String> = steps.iter().map(ToString::to_string).collect();
    Schedule {
        from: format!("Guardrails.TrafficSteps [{}]", listed.join(", ")),
        bakes: steps
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, if i == last { final_bake } else { wait }, None))
            .collect(),
        notes,
    }
}

/// `step`, `2 x step`, ... up to and ending at 100%.
fn linear(step: Share) -> Vec<Share> {
    let bp = step.basis_points().max(1);
    let mut shares: Vec<Share> = (1..)
        .map(|k| k * bp)
        .take_while(|b| *b < 10_000)
        .filter_map(Share::from_basis_points)
        .collect();
    shares.push(Share::FULL);
    shares
}

/// A `CapacitySize` as a share of a fleet of `fleet_size`, checked against `min_bp..=max_bp`
/// when given in instances (percentages were checked with the policy).
fn size_share(
    size: CapacitySize,
    fleet_size: u32,
    path: &str,
    min_bp: u32,
    max_bp: u32,
    what: &str,
    problem: &mut impl FnMut(&str, String),
) -> Option<Share> {
    match size.r#type {
        CapacityType::CapacityPercent => Share::from_basis_points(size.value * 100),
        CapacityType::InstanceCount => {
            let share = Share::from_fraction(size.value, fleet_size);
            let in_range = share.is_some_and(|s| (min_bp..=max_bp).contains(&s.basis_points()));
            if !in_range {
                problem(
                    &format!("{path}.Value"),
                    format!(
                        "{size} of a {fleet_size}-instance fleet is {}; SageMaker allows {} to {} for {what}",
                        share.map_or("more than all of it".to_owned(), |s| s.to_string()),
                        Share::from_basis_points(min_bp).unwrap_or(Share::ZERO),
                        Share::from_basis_points(max_bp).unwrap_or(Share::FULL),
                    ),
                );
                return None;
            }
            share
        }
    }
}

fn rolling_schedule(
    rolling: &RollingUpdatePolicy,
    fleet_size: u32,
    problem: &mut impl FnMut(&str, String),
) -> Option<Schedule> {
    let size = rolling.maximum_batch_size;
    let path = "DeploymentConfig.RollingUpdatePolicy.MaximumBatchSize";
    let batch_share = size_share(
        size,
        fleet_size,
        path,
        500,
        5_000,
        "a rolling batch",
        problem,
    )?;
    let batch = batch_share.of_instances_rounded_up(fleet_size).max(1);
    let mut bakes = Vec::new();
    let mut replaced = 0;
    while replaced < fleet_size {
        replaced = (replaced + batch).min(fleet_size);
        let share = Share::from_fraction(replaced, fleet_size).unwrap_or(Share::FULL);
        bakes.push((
            share,
            rolling.wait_interval_in_seconds,
            Some(fleet_size - replaced),
        ));
    }
    Some(Schedule {
        from: format!("RollingUpdatePolicy, MaximumBatchSize {}", size_words(size)),
        bakes,
        notes: Vec::new(),
    })
}
