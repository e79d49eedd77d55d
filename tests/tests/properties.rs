//! Property tests of the core: whatever the world shows it, in whatever order (a stand-in
//! endpoint that does what it is asked, interleaved with random, even contradictory,
//! observations; random times, commands, stray acknowledgements and lost actions), the core
//! keeps its safety invariants:
//!
//! - green never gets more traffic than the step it has reached allows (and the last step only
//!   with approval, when the policy asks for it);
//! - blue is never removed before the final bake passes;
//! - a rollback ends only with the endpoint on the original config;
//! - a final state never changes;
//! - nothing is asked of SageMaker while it reports the endpoint busy.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use guardrails::core::{
    Action, AlarmState, AlarmView, Cause, Command, Decision, Deployment, EndpointStatus,
    EndpointView, Observation, Phase, VariantView,
};
use guardrails::plan::Plan;
use guardrails::units::{Share, Timestamp};
use guardrails_tests::world::{UpdateOutcome, World};
use guardrails_tests::{T0, example_policy, sample_plan};
use proptest::prelude::*;

const POLICIES: [&str; 4] = [
    "canary.yaml",
    "linear.json",
    "all-at-once.yaml",
    "steps-with-approval.yaml",
];

/// One invocation: time passes, the world is observed, maybe a command or an acknowledgement.
#[derive(Debug, Clone)]
struct Input {
    after_secs: u32,
    /// `None`: look at the stand-in endpoint, which performs what the core asks; `Some`: a
    /// random, possibly contradictory observation instead.
    chaos: Option<Observation>,
    command: Option<Command>,
    /// Index into the plan's config names: a stray UpdateEndpoint acknowledgement.
    ack: Option<usize>,
    /// The driver crashed before acting: the decision's actions are lost.
    crash_before_act: bool,
}

/// How the stand-in endpoint behaves in one case.
#[derive(Debug, Clone)]
struct WorldSetup {
    bad_green: bool,
    failed_update: Option<String>,
    update_secs: u32,
    weights_secs: u32,
    /// Whether anyone ever approves (without approvals, a gated deployment must wait).
    approvals: bool,
}

fn configs(plan: &Plan) -> [String; 4] {
    [
        plan.blue_config_name.clone(),
        plan.blue_green_config_name.clone(),
        plan.green_config_name.clone(),
        "someone-elses-config".to_owned(),
    ]
}

fn status() -> impl Strategy<Value = EndpointStatus> {
    prop_oneof![
        20 => Just(EndpointStatus::InService),
        3 => Just(EndpointStatus::Updating),
        1 => Just(EndpointStatus::SystemUpdating),
        1 => Just(EndpointStatus::RollingBack),
        1 => prop_oneof![
            Just(EndpointStatus::Failed),
            Just(EndpointStatus::UpdateRollbackFailed),
            Just(EndpointStatus::OutOfService),
        ],
    ]
}

fn alarm_state() -> impl Strategy<Value = Option<AlarmState>> {
    prop_oneof![
        12 => Just(Some(AlarmState::Ok)),
        3 => Just(Some(AlarmState::InsufficientData)),
        2 => Just(Some(AlarmState::Alarm)),
        1 => Just(None),
    ]
}

fn observation(plan: &Plan) -> impl Strategy<Value = Observation> + use<> {
    let configs = configs(plan);
    let shares: Vec<u32> = plan
        .steps
        .iter()
        .map(|s| s.green_share.basis_points())
        .collect();
    let alarms: Vec<String> = plan.watched_alarm_names().map(str::to_owned).collect();
    let blue = plan.blue.variant_name.clone();
    let green = plan.green.variant_name.clone();
    let green_share = prop_oneof![
        3 => Just(0_u32),
        4 => proptest::sample::select(shares),
        1 => 0_u32..=10_000,
    ];
    (
        prop_oneof![50 => Just(true), 1 => Just(false)],
        status(),
        prop_oneof![6 => Just(0_usize), 10 => Just(1_usize), 4 => Just(2_usize), 1 => Just(3_usize)],
        proptest::option::of(0_usize..4),
        proptest::option::of(prop_oneof![Just(String::new()), Just("quota".to_owned())]),
        green_share,
        0_u32..=8,
        0_u32..=8,
        proptest::collection::vec(alarm_state(), alarms.len()),
    )
        .prop_map(
            move |(exists, status, config, pending, failure_reason, green_bp, desired, current, states)| {
                let green_fraction = f64::from(green_bp) / 10_000.0;
                let variants = match config {
                    0 => vec![view(&blue, 1.0, 4, 4)],
                    1 => vec![
                        view(&blue, 1.0 - green_fraction, 4, 4),
                        view(&green, green_fraction, current, desired.max(current)),
                    ],
                    2 => vec![view(&green, 1.0, current, desired)],
                    _ => vec![view("Other", 1.0, 1, 1)],
                };
                let endpoint = exists.then(|| EndpointView {
                    status,
                    config_name: configs[config].clone(),
                    pending_config_name: pending.map(|p| configs[p].clone()),
                    failure_reason,
                    variants,
                    progress: Vec::new(),
                });
                let alarms = alarms
                    .iter()
                    .zip(states)
                    .filter_map(|(name, state)| {
                        state.map(|state| {
                            let view = AlarmView {
                                state,
                                reason: "random".to_owned(),
                                since: None,
                            };
                            (name.clone(), view)
                        })
                    })
                    .collect::<BTreeMap<_, _>>();
                Observation {
                    endpoint,
                    alarms,
                    alarms_fired: BTreeMap::new(),
                    judged: None,
                    hook: None,
                    unseen: None,
                }
            },
        )
}

fn view(name: &str, weight: f64, current: u32, desired: u32) -> VariantView {
    VariantView {
        variant_name: name.to_owned(),
        current_weight: weight,
        current_instance_count: current,
        desired_instance_count: desired,
    }
}

fn command() -> impl Strategy<Value = Option<Command>> {
    prop_oneof![
        30 => Just(None),
        2 => Just(Some(Command::Approve { by: "alice".to_owned() })),
        1 => Just(Some(Command::Abort { by: "bob".to_owned(), reason: "test".to_owned() })),
    ]
}

fn world_setup() -> impl Strategy<Value = WorldSetup> {
    (
        proptest::bool::weighted(0.3),
        prop_oneof![
            6 => Just(None),
            1 => Just(Some(String::new())),
            1 => Just(Some("capacity".to_owned())),
        ],
        30_u32..1_500,
        1_u32..60,
        proptest::bool::ANY,
    )
        .prop_map(
            |(bad_green, failed_update, update_secs, weights_secs, approvals)| WorldSetup {
                bad_green,
                failed_update,
                update_secs,
                weights_secs,
                approvals,
            },
        )
}

fn scenario() -> impl Strategy<Value = (Plan, WorldSetup, Vec<Input>)> {
    let chaos_percent = proptest::sample::select(vec![0_u32, 2, 10, 30]);
    let cases = (
        proptest::sample::select(POLICIES.to_vec()),
        1_u32..=8,
        chaos_percent,
    );
    cases.prop_flat_map(|(policy, instances, chaos_percent)| {
        let plan = sample_plan(&example_policy(policy), instances);
        let input = (
            prop_oneof![3 => 0_u32..60, 1 => 60_u32..1_200],
            prop_oneof![
                100 - chaos_percent => Just(None),
                chaos_percent => observation(&plan).prop_map(Some),
            ],
            command(),
            prop_oneof![60 => Just(None), 1 => (0_usize..3).prop_map(Some)],
            proptest::bool::weighted(0.1),
        )
            .prop_map(
                |(after_secs, chaos, command, ack, crash_before_act)| Input {
                    after_secs,
                    chaos,
                    command,
                    ack,
                    crash_before_act,
                },
            );
        (
            Just(plan),
            world_setup(),
            proptest::collection::vec(input, 1..150),
        )
    })
}

fn world_for(plan: &Plan, setup: &WorldSetup) -> World {
    let blue = &plan.blue;
    let mut world = World::serving(
        T0,
        &plan.blue_config_name,
        &blue.variant_name,
        "fraud-scorer-v1",
        blue.instance_count,
    );
    for name in plan.watched_alarm_names() {
        if plan
            .watched_alarms
            .iter()
            .any(|a| a.alarm_name == name && a.green_template.is_none())
        {
            world = world.with_endpoint_alarm(name);
        }
    }
    if setup.bad_green {
        world = world.with_bad_model(&plan.green.model_name);
    }
    if let Some(reason) = &setup.failed_update {
        world.next_update = UpdateOutcome::ReturnsToOldConfig(reason.clone());
    }
    world.update_secs = setup.update_secs;
    world.weights_secs = setup.weights_secs;
    world
}

/// What the checker has learned from the transitions so far.
#[derive(Default)]
struct History {
    /// The highest step green may be shifted to.
    allowed_step: Option<usize>,
    final_bake_passed: bool,
    /// When green last reached each step's share.
    shifted_at: BTreeMap<usize, Timestamp>,
}

fn check(
    plan: &Plan,
    before: &Deployment,
    observation: &Observation,
    input: &Input,
    now: Timestamp,
    history: &mut History,
) -> Result<Decision, TestCaseError> {
    let decision = before.decide(observation, input.command.as_ref(), now);
    let after = &decision.deployment;
    if before.is_final() {
        prop_assert_eq!(after, before, "a final state changed");
        prop_assert!(decision.actions.is_empty() && decision.transitions.is_empty());
        prop_assert!(decision.wake_at.is_none());
        return Ok(decision);
    }
    let last = plan.last_step();
    // The alarms of the phase: the steps', or the final fleet's while it bakes.
    let final_fleet = matches!(before.phase, Phase::BakingFinalFleet { .. });
    let alarm = plan
        .watched_alarms
        .iter()
        .filter(|a| a.watched(final_fleet))
        .any(|a| {
            observation
                .alarms
                .get(&a.alarm_name)
                .is_some_and(|a| a.state == AlarmState::Alarm)
        });
    let baking = matches!(
        before.phase,
        Phase::Baking { .. } | Phase::BakingFinalFleet { .. }
    );
    if alarm && baking && !decision.transitions.is_empty() {
        prop_assert!(
            matches!(
                decision.transitions[0].to,
                Phase::RollingBack { .. } | Phase::Failed { .. }
            ),
            "ALARM during a bake did not start a rollback: {:?}",
            decision.transitions[0]
        );
    }
    if alarm && baking && input.command.is_none() {
        prop_assert!(
            !decision.transitions.is_empty(),
            "ALARM during a bake was ignored"
        );
    }
    for transition in &decision.transitions {
        if let Cause::BakePassed { step } = &transition.cause {
            let shifted = history.shifted_at.get(step).copied();
            prop_assert!(
                shifted.is_some_and(|at| now >= at.plus_secs(plan.steps[*step].bake_secs)),
                "bake of step {} passed at {:?}, shifted at {:?}",
                step,
                now,
                shifted
            );
        }
        match &transition.cause {
            Cause::Shifted { step, .. } => {
                history.shifted_at.insert(*step, now);
            }
            Cause::GreenProvisioned => history.allowed_step = Some(0),
            Cause::BakePassed { step } if *step == last => history.final_bake_passed = true,
            Cause::BakePassed { step } => history.allowed_step = Some(step + 1),
            _ => {}
        }
        let endpoint = observation.endpoint.as_ref();
        match &transition.to {
            Phase::RolledBack { .. } => {
                prop_assert!(
                    endpoint.is_some_and(
                        |e| e.config_name == plan.blue_config_name && !e.status.is_busy()
                    ),
                    "rolled back while the endpoint is not on the original config: {:?}",
                    endpoint
                );
            }
            Phase::Succeeded => {
                prop_assert!(
                    history.final_bake_passed,
                    "succeeded before the final bake passed"
                );
                prop_assert!(endpoint.is_some_and(|e| e.config_name == plan.green_config_name));
            }
            _ => {}
        }
    }
    let busy = observation
        .endpoint
        .as_ref()
        .is_some_and(|e| e.status.is_busy());
    for action in &decision.actions {
        match action {
            Action::SetWeights { green_share, .. } => {
                prop_assert!(!busy, "weights sent to a busy endpoint");
                if *green_share > Share::ZERO {
                    let allowed = history.allowed_step.map(|i| plan.steps[i].green_share);
                    prop_assert!(
                        allowed.is_some_and(|a| *green_share <= a),
                        "green asked for {} with only {:?} allowed",
                        green_share,
                        allowed
                    );
                    if *green_share == Share::FULL && plan.approve_before_final_shift {
                        prop_assert!(after.approved_by.is_some(), "last shift without approval");
                    }
                }
            }
            Action::UpdateEndpoint { config_name, .. } => {
                prop_assert!(!busy, "UpdateEndpoint sent to a busy endpoint");
                if *config_name == plan.green_config_name {
                    prop_assert!(
                        history.final_bake_passed,
                        "blue removed before the final bake passed"
                    );
                }
            }
            Action::CreateEndpointConfig { config_name, .. }
                if *config_name == plan.green_config_name =>
            {
                prop_assert!(
                    history.final_bake_passed,
                    "green-alone config before the final bake passed"
                );
            }
            Action::SetInstanceCount { .. } => {
                prop_assert!(!busy, "capacity sent to a busy endpoint")
            }
            Action::DeleteEndpointConfig { config_name } => {
                prop_assert!(
                    *config_name != plan.blue_config_name,
                    "the user's config was deleted"
                );
            }
            _ => {}
        }
    }
    match decision.wake_at {
        None => prop_assert!(after.is_final(), "no wake-up for a live deployment"),
        Some(at) => prop_assert!(at >= now && !after.is_final()),
    }
    Ok(decision)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_core_keeps_its_invariants_whatever_it_observes((plan, setup, inputs) in scenario()) {
        let (mut deployment, _) = Deployment::start(plan.clone(), T0).unwrap();
        let mut world = world_for(&plan, &setup);
        let mut history = History::default();
        let mut now = T0;
        let names = configs(&plan);
        for input in &inputs {
            now = now.plus_secs(input.after_secs);
            world.advance_to(now);
            if let Some(i) = input.ack {
                deployment = deployment.update_accepted(&names[i], now);
            }
            let observation = input.chaos.clone().unwrap_or_else(|| world.observe());
            let mut input = input.clone();
            if !setup.approvals && matches!(input.command, Some(Command::Approve { .. })) {
                input.command = None;
            }
            let decision = check(&plan, &deployment, &observation, &input, now, &mut history)?;
            deployment = decision.deployment;
            if input.crash_before_act {
                continue;
            }
            for action in &decision.actions {
                let done = world.apply(action);
                if let (Ok(()), Action::UpdateEndpoint { config_name, .. }) = (done, action) {
                    deployment = deployment.update_accepted(config_name, now);
                }
            }
        }
    }
}
