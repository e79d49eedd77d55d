//! How long the pure parts take: parsing a policy, planning, and one core decision per phase.
//! Run with `cargo bench -p guardrails-tests`; numbers are per call, on this machine, in a
//! release build. Timing is measured here and never asserted in tests.

// A benchmark reads the clock; the core never does.
#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use guardrails::core::{
    AlarmState, AlarmView, Deployment, EndpointStatus, EndpointView, Phase, VariantView,
};
use guardrails::policy::Policy;
use guardrails_tests::world::World;
use guardrails_tests::{T0, example_policy, repo_root, sample_plan};

/// Runs `f` repeatedly for about half a second and returns the mean time per call.
fn time<T>(mut f: impl FnMut() -> T) -> Duration {
    let warm_up = Instant::now();
    let mut calls = 0_u32;
    while warm_up.elapsed() < Duration::from_millis(100) {
        black_box(f());
        calls += 1;
    }
    let rounds = calls.saturating_mul(5).max(10);
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(f());
    }
    start.elapsed() / rounds
}

fn report(what: &str, per_call: Duration) {
    println!("{what:<48} {:>10.2} us", per_call.as_secs_f64() * 1e6);
}

fn main() {
    let yaml = std::fs::read_to_string(repo_root().join("examples/policies/canary.yaml")).unwrap();
    let json = std::fs::read_to_string(repo_root().join("examples/policies/linear.json")).unwrap();
    report(
        "parse + validate canary.yaml",
        time(|| Policy::parse(&yaml).unwrap()),
    );
    report(
        "parse + validate linear.json",
        time(|| Policy::parse(&json).unwrap()),
    );
    let policy = example_policy("canary.yaml");
    report(
        "plan canary for 4 instances",
        time(|| sample_plan(&policy, 4)),
    );

    let plan = sample_plan(&policy, 4);
    let world = World::serving(T0, "fraud-scorer-v1", "AllTraffic", "fraud-scorer-v1", 4)
        .with_endpoint_alarm("fraud-scorer-5xx");
    let observation = world.observe();
    let (deployment, _) = Deployment::start(plan, T0).unwrap();
    report(
        "decide: provisioning (emits 3 actions)",
        time(|| deployment.decide(&observation, None, T0)),
    );
    let mut baking = deployment.clone();
    baking.phase = Phase::Baking {
        step: 0,
        until: T0.plus_secs(900),
    };
    let mut serving = observation.clone();
    serving.endpoint = Some(EndpointView {
        status: EndpointStatus::InService,
        config_name: baking.plan.blue_green_config_name.clone(),
        pending_config_name: None,
        failure_reason: None,
        variants: vec![variant("AllTraffic", 0.9, 4), variant("v2", 0.1, 1)],
        progress: Vec::new(),
    });
    serving.alarms.insert(
        "guardrails-d1-green-errors".to_owned(),
        AlarmView {
            state: AlarmState::Ok,
            reason: String::new(),
            since: None,
        },
    );
    let quiet = baking.decide(&serving, None, T0.plus_secs(600));
    assert!(
        quiet.transitions.is_empty() && quiet.actions.is_empty(),
        "{quiet:?}"
    );
    report(
        "decide: baking, alarms OK, nothing to do",
        time(|| baking.decide(&serving, None, T0.plus_secs(600))),
    );
    let mut alarmed = serving.clone();
    if let Some(alarm) = alarmed.alarms.get_mut("guardrails-d1-green-errors") {
        alarm.state = AlarmState::Alarm;
    }
    report(
        "decide: baking, ALARM -> rollback + weights",
        time(|| baking.decide(&alarmed, None, T0.plus_secs(600))),
    );
    // The native engine: following SageMaker while it bakes, and the preflight checks.
    let (fleet, mut green) = guardrails_tests::fleet_and_green(4);
    green.variant_name = "AllTraffic".to_owned();
    let native_plan =
        guardrails::plan::Plan::new("d1", &example_policy("native-canary.yaml"), &fleet, &green)
            .unwrap();
    let (native, _) = Deployment::start(native_plan.clone(), T0).unwrap();
    let native = native.update_accepted(&native_plan.green_config_name, T0);
    let mut deploying = world.observe();
    if let Some(e) = deploying.endpoint.as_mut() {
        e.status = EndpointStatus::Updating;
        e.pending_config_name = Some(native_plan.green_config_name.clone());
        e.progress = vec![guardrails::core::Progress {
            variant_name: "AllTraffic".to_owned(),
            status: "Baking".to_owned(),
            message: "Baking for 300 seconds (WaitIntervalInSeconds)".to_owned(),
        }];
    }
    let native = native.decide(&deploying, None, T0.plus_secs(60)).deployment;
    report(
        "decide: native, SageMaker baking, nothing new",
        time(|| native.decide(&deploying, None, T0.plus_secs(90))),
    );
    let look = guardrails::preflight::Look {
        endpoint: world.observe().endpoint,
        fleet: Some(fleet.clone()),
        alarms: std::collections::BTreeMap::new(),
        alarms_with_recent_data: Vec::new(),
        active_deployment: None,
        model_exists: Some(true),
        endpoint_tags: Some(vec![("guardrails:managed".to_owned(), "true".to_owned())]),
        kind: Some(guardrails::ports::EndpointKind::default()),
        quotas: std::collections::BTreeMap::from([("ml.m5.xlarge".to_owned(), 50)]),
        scaling: None,
    };
    report(
        "preflight: every check of a native canary",
        time(|| guardrails::preflight::check(&native_plan, &look)),
    );
    let record = serde_json::to_string(&deployment).unwrap();
    println!("deployment record as JSON: {} bytes", record.len());
    report(
        "deployment record from JSON",
        time(|| serde_json::from_str::<Deployment>(&record).unwrap()),
    );
}

fn variant(name: &str, weight: f64, instances: u32) -> VariantView {
    VariantView {
        variant_name: name.to_owned(),
        current_weight: weight,
        current_instance_count: instances,
        desired_instance_count: instances,
    }
}
