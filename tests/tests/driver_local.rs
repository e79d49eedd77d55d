//! The driver on the local stack: the real AWS adapters and SDK clients against the emulator
//! (SageMaker, CloudWatch) and moto (DynamoDB, EventBridge), on the wall clock with short bakes.
//! GIVEN an endpoint serving v1, WHEN a deployment of v2 runs through invocations on every
//! wake-up, THEN it succeeds, rolls back on an alarm fired by the model's errors, fails on an
//! injected failed update, resists a racing invocation and converges after a crash.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use guardrails::aws::eventbridge::EventBridgeBus;
use guardrails::aws::sagemaker::SageMakerEndpoints;
use guardrails::core::{Cause, Phase};
use guardrails::driver::{Driver, Outcome};
use guardrails::plan::{Fleet, FleetVariant, GreenSpec, Plan};
use guardrails::policy::Policy;
use guardrails::ports::{Endpoints, Store};
use guardrails_local::sagemaker::Outcome as UpdateOutcome;
use guardrails_tests::harness::{CrashAfterAct, RacingStore};
use guardrails_tests::local::{self, OnStack};

const ENDPOINT: &str = "fraud";

/// A canary of 10% with `bake_secs` bakes, green's own error alarm, and 1 s polls.
fn plan(bake_secs: u32) -> Plan {
    let yaml = format!(
        r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: CANARY
      CanarySize: {{ Type: CAPACITY_PERCENT, Value: 10 }}
      WaitIntervalInSeconds: {bake_secs}
    TerminationWaitInSeconds: {bake_secs}
    MaximumExecutionTimeoutInSeconds: 600
Guardrails:
  PollIntervalInSeconds: 1
  Alarms:
    - Name: errors
      MetricName: Invocation5XXErrors
      Statistic: Average
      ComparisonOperator: GreaterThanThreshold
      Threshold: 0.05
      PeriodInSeconds: 10
      EvaluationPeriods: 1
"#
    );
    let policy = Policy::from_yaml(&yaml).unwrap();
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
        variant_name: "v2".to_owned(),
        model_name: "fraud-model-v2".to_owned(),
        instance_type: "ml.m5.xlarge".to_owned(),
        instance_count: 2,
    };
    Plan::new("d1", &policy, &fleet, &green).unwrap()
}

async fn setup() -> OnStack {
    OnStack::start(ENDPOINT).await
}

/// A driver publishing our events to moto's EventBridge.
fn new_driver(s: &OnStack) -> Driver {
    let bus = EventBridgeBus::new(s.clients.eventbridge.clone(), "default");
    s.driver(Arc::new(bus))
}

async fn run_to_end(s: &OnStack, driver: &Driver) -> Phase {
    s.run_to_end(driver, local::WAIT_LIMIT).await
}

async fn serving(s: &OnStack) -> (String, Vec<(String, f32)>) {
    let d = s
        .clients
        .sagemaker
        .describe_endpoint()
        .endpoint_name(ENDPOINT)
        .send()
        .await
        .unwrap();
    let weights = d
        .production_variants()
        .iter()
        .map(|v| {
            (
                v.variant_name().unwrap().to_owned(),
                v.current_weight().unwrap(),
            )
        })
        .collect();
    (d.endpoint_config_name().unwrap().to_owned(), weights)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_deployment_runs_to_success() {
    let s = setup().await;
    let driver = new_driver(&s);
    driver.start(plan(2)).await.unwrap();
    assert_eq!(run_to_end(&s, &driver).await, Phase::Succeeded);
    assert_eq!(
        serving(&s).await,
        (
            "guardrails-d1-green".to_owned(),
            // The new model under blue's variant name.
            vec![("AllTraffic".to_owned(), 1.0)]
        )
    );
    assert_eq!(s.store.load(ENDPOINT).await.unwrap(), None, "archived");
    let audit = s.store.audit(ENDPOINT, "d1").await.unwrap();
    assert_eq!(
        audit.last().map(|a| a.transition.cause.clone()),
        Some(Cause::FinalBakePassed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_whose_errors_trip_its_alarm_in_the_canary_bake_is_rolled_back() {
    let s = setup().await;
    local::set_model(&s.stack, "fraud-model-v2", 0.5);
    let driver = new_driver(&s);
    driver.start(plan(30)).await.unwrap();
    let end = run_to_end(&s, &driver).await;
    assert!(
        matches!(&end, Phase::RolledBack { cause: Cause::AlarmFired { alarm_name, .. } } if alarm_name == "guardrails-d1-errors"),
        "{end:?}"
    );
    assert_eq!(
        serving(&s).await,
        ("fraud-v1".to_owned(), vec![("AllTraffic".to_owned(), 1.0)]),
        "the original config at full weight"
    );
    let alarms = s
        .clients
        .cloudwatch
        .describe_alarms()
        .alarm_names("guardrails-d1-errors")
        .send()
        .await
        .unwrap();
    assert!(
        alarms.metric_alarms().is_empty(),
        "green's alarm is cleaned up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_failed_update_ends_failed() {
    let s = setup().await;
    local::next_update(
        &s.stack,
        ENDPOINT,
        UpdateOutcome::ReturnsToOldConfig(String::new()),
    );
    let driver = new_driver(&s);
    driver.start(plan(2)).await.unwrap();
    let end = run_to_end(&s, &driver).await;
    assert!(
        matches!(
            &end,
            Phase::Failed {
                cause: Cause::ProvisioningFailed { .. }
            }
        ),
        "{end:?}"
    );
    assert_eq!(serving(&s).await.0, "fraud-v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_drivers_racing_on_one_endpoint_never_both_act() {
    let s = setup().await;
    let driver = new_driver(&s);
    driver.start(plan(2)).await.unwrap();
    // Wait until green is provisioned, so that both invocations want the first shift.
    let endpoints = SageMakerEndpoints::new(s.clients.sagemaker.clone());
    local::wait_for(async || {
        endpoints
            .describe(ENDPOINT)
            .await
            .unwrap()
            .is_some_and(|e| e.config_name == "guardrails-d1-blue-green" && !e.status.is_busy())
    })
    .await;
    let racing = Arc::new(RacingStore::new(s.store.clone()));
    let mut first = new_driver(&s);
    first.store = racing.clone();
    let mut second = new_driver(&s);
    second.store = racing.clone();
    let (a, b) = tokio::join!(
        first.reconcile(ENDPOINT, None),
        second.reconcile(ENDPOINT, None)
    );
    let provisioned = |o: &Outcome| match o {
        Outcome::Reconciled(r) => r
            .transitions
            .iter()
            .any(|t| t.cause == Cause::GreenProvisioned),
        Outcome::NoDeployment => false,
    };
    let (a, b) = (a.unwrap(), b.unwrap());
    // The loser's decision is refused; it may then also lose the write that clears the outbox
    // it helped perform (convergent actions, so doing them twice is harmless).
    assert!(racing.conflicts() >= 1, "the conditional write decided");
    assert!(
        provisioned(&a) != provisioned(&b),
        "exactly one invocation decided and acted"
    );
    let audit = s.store.audit(ENDPOINT, "d1").await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.transition.cause == Cause::GreenProvisioned)
            .count(),
        1
    );
    assert_eq!(run_to_end(&s, &driver).await, Phase::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_acting_before_saving_still_converges() {
    let s = setup().await;
    let crashing = Arc::new(CrashAfterAct::new(
        Arc::new(SageMakerEndpoints::new(s.clients.sagemaker.clone())),
        1,
    ));
    let mut driver = new_driver(&s);
    driver.endpoints = crashing.clone();
    let first = driver.start(plan(2)).await;
    assert!(
        first.is_err(),
        "the first invocation died after UpdateEndpoint"
    );
    assert_eq!(crashing.crashes(), 1);
    assert_eq!(run_to_end(&s, &driver).await, Phase::Succeeded);
    let audit = s.store.audit(ENDPOINT, "d1").await.unwrap();
    let sequences: Vec<u64> = audit.iter().map(|a| a.sequence).collect();
    assert_eq!(
        sequences,
        (0..audit.len() as u64).collect::<Vec<_>>(),
        "complete, no duplicates"
    );
}
