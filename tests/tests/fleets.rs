//! The plan's fleet accounting against the local stack's: GIVEN an endpoint serving 2
//! instances, WHEN a canary runs to success with each engine, THEN the fleets the emulator
//! provisioned, the most instances it ran at once, and the instances beyond blue's during every
//! bake (instance-seconds) are what the plan said.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use guardrails::core::{Cause, Phase};
use guardrails::memory::MemoryBus;
use guardrails::plan::{Fleet, FleetVariant, GreenSpec, Plan};
use guardrails::policy::Policy;
use guardrails::ports::Store;
use guardrails_local::sagemaker::fleets::Fleets;
use guardrails_tests::local::OnStack;

const ENDPOINT: &str = "fleets";
const LIMIT: Duration = Duration::from_secs(120);

fn plan(yaml: &str, green_variant: &str) -> Plan {
    let policy = Policy::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"));
    let fleet = Fleet {
        endpoint_name: ENDPOINT.to_owned(),
        config_name: "fraud-v1".to_owned(),
        variants: vec![FleetVariant {
            variant_name: "AllTraffic".to_owned(),
            model_name: String::new(),
            instance_type: "ml.m5.xlarge".to_owned(),
            instance_count: 2,
        }],
    };
    let green = GreenSpec {
        variant_name: green_variant.to_owned(),
        model_name: "fraud-model-v2".to_owned(),
        instance_type: "ml.m5.xlarge".to_owned(),
        instance_count: 2,
    };
    Plan::new("d1", &policy, &fleet, &green).unwrap()
}

fn fleets(on: &OnStack) -> Fleets {
    let emulator = on
        .stack
        .emulator
        .emulator
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    emulator.sagemaker.fleets(ENDPOINT).cloned().unwrap()
}

/// Instance-seconds beyond `steady` between `from` and `to` (epoch ms), from the timeline.
fn extra_secs(f: &Fleets, steady: u32, from: i64, to: i64) -> f64 {
    let mut total = 0.0;
    for (i, (t, n)) in f.timeline.iter().enumerate() {
        let end = f.timeline.get(i + 1).map_or(i64::MAX, |(next, _)| *next);
        let (a, b) = ((*t).max(from), end.min(to));
        if b > a {
            total += f64::from(n.saturating_sub(steady)) * (b - a) as f64 / 1_000.0;
        }
    }
    total
}

/// What the emulator counted from `since` on: fleets provisioned, the peak.
fn counted(f: &Fleets, since: i64) -> (u32, u32) {
    let provisioned = f
        .fleets
        .iter()
        .filter(|fl| fl.provisioned_at >= since)
        .count();
    let peak = f
        .timeline
        .iter()
        .filter(|(t, _)| *t >= since)
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0);
    (u32::try_from(provisioned).unwrap(), peak)
}

#[tokio::test]
async fn a_variant_canary_provisions_and_runs_the_fleets_the_plan_says() {
    let on = OnStack::start(ENDPOINT).await;
    let p = plan(
        r"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: CANARY
      CanarySize: { Type: CAPACITY_PERCENT, Value: 50 }
      WaitIntervalInSeconds: 2
    TerminationWaitInSeconds: 2
    MaximumExecutionTimeoutInSeconds: 600
Guardrails: { Engine: variant, PollIntervalInSeconds: 1 }
",
        "v2",
    );
    let expected = p.fleets.clone();
    let driver = on.driver(Arc::new(MemoryBus::default()));
    let started = guardrails_local::now_ms();
    driver.start(p.clone()).await.unwrap();
    assert_eq!(on.run_to_end(&driver, LIMIT).await, Phase::Succeeded);
    let f = fleets(&on);
    assert_eq!(
        counted(&f, started),
        (expected.provisionings, expected.peak_instances)
    );
    // Each bake ran the instances the plan says, for the instance-seconds it says.
    let audit = on.store.audit(ENDPOINT, "d1").await.unwrap();
    let shifts: Vec<(usize, i64)> = audit
        .iter()
        .filter_map(|a| match a.transition.cause {
            Cause::Shifted { step, .. } => Some((step, a.transition.at.epoch_ms())),
            _ => None,
        })
        .collect();
    assert_eq!(shifts.len(), p.steps.len());
    let mut extra = 0.0;
    for (step, at) in shifts {
        let bake_ms = i64::from(p.steps[step].bake_secs) * 1_000;
        assert_eq!(
            f.at(at + bake_ms / 2),
            expected.bake_instances[step],
            "bake {step}"
        );
        extra += extra_secs(&f, p.blue.instance_count, at, at + bake_ms);
    }
    #[allow(clippy::cast_precision_loss)]
    let planned = expected.extra_instance_secs as f64;
    assert!(
        (extra - planned).abs() < 1e-6,
        "counted {extra} s, planned {planned} s"
    );
}

#[tokio::test]
async fn a_native_canary_provisions_and_runs_the_fleets_the_plan_says() {
    let on = OnStack::start(ENDPOINT).await;
    let p = plan(
        r"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: CANARY
      CanarySize: { Type: CAPACITY_PERCENT, Value: 50 }
      WaitIntervalInSeconds: 2
    TerminationWaitInSeconds: 2
    MaximumExecutionTimeoutInSeconds: 600
Guardrails: { Engine: native, PollIntervalInSeconds: 1 }
",
        "AllTraffic",
    );
    let expected = p.fleets.clone();
    let driver = on.driver(Arc::new(MemoryBus::default()));
    let started = guardrails_local::now_ms();
    driver.start(p.clone()).await.unwrap();
    assert_eq!(on.run_to_end(&driver, LIMIT).await, Phase::Succeeded);
    let f = fleets(&on);
    assert_eq!(
        counted(&f, started),
        (expected.provisionings, expected.peak_instances)
    );
    // SageMaker's bakes, as its deployment state change events give their start.
    let bakes: Vec<i64> = {
        let emulator = on
            .stack
            .emulator
            .emulator
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut starts: Vec<i64> = emulator
            .events
            .iter()
            .filter(|e| e.detail_type == "SageMaker Endpoint Deployment State Change")
            .filter_map(|e| {
                let status = e
                    .detail
                    .pointer("/PendingDeploymentSummary/ProductionVariants/0/VariantStatus/0")?;
                (status.get("Status")?.as_str()? == "Baking")
                    .then(|| status.get("StartTime").and_then(serde_json::Value::as_i64))
                    .flatten()
            })
            .collect();
        starts.dedup();
        starts
    };
    assert_eq!(bakes.len(), p.steps.len(), "{bakes:?}");
    let mut extra = 0.0;
    for (step, at) in bakes.into_iter().enumerate() {
        let bake_ms = i64::from(p.steps[step].bake_secs) * 1_000;
        assert_eq!(
            f.at(at + bake_ms / 2),
            expected.bake_instances[step],
            "bake {step}"
        );
        extra += extra_secs(&f, p.blue.instance_count, at, at + bake_ms);
    }
    #[allow(clippy::cast_precision_loss)]
    let planned = expected.extra_instance_secs as f64;
    assert!(
        (extra - planned).abs() < 1e-6,
        "counted {extra} s, planned {planned} s"
    );
}
