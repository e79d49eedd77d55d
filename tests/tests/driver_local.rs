//! The driver on the local stack: the real AWS adapters and SDK clients against the emulator
//! (SageMaker, CloudWatch) and moto (DynamoDB, EventBridge), on the wall clock with short bakes.
//! GIVEN an endpoint serving v1, WHEN a deployment of v2 runs through invocations on every
//! wake-up, THEN it succeeds, rolls back on an alarm fired by the model's errors, fails on an
//! injected failed update, resists a racing invocation and converges after a crash.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use guardrails::aws::clock::SystemClock;
use guardrails::aws::cloudwatch::CloudWatchAlarms;
use guardrails::aws::dynamodb::DynamoStore;
use guardrails::aws::eventbridge::EventBridgeBus;
use guardrails::aws::sagemaker::SageMakerEndpoints;
use guardrails::core::{Cause, Phase};
use guardrails::driver::{Driver, Limits, Outcome};
use guardrails::memory::MemoryWaker;
use guardrails::plan::{Fleet, FleetVariant, GreenSpec, Plan};
use guardrails::policy::Policy;
use guardrails::ports::{Clock, Endpoints, Store};
use guardrails_local::sagemaker::Outcome as UpdateOutcome;
use guardrails_local::stack::LocalStack;
use guardrails_tests::harness::{CrashAfterAct, RacingStore};
use guardrails_tests::local::{self, Clients, endpoint_serving};

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

struct Setup {
    stack: LocalStack,
    clients: Clients,
    store: Arc<DynamoStore>,
    waker: Arc<MemoryWaker>,
}

async fn setup() -> Setup {
    let stack = local::start().await;
    let clients = Clients::new(&stack);
    endpoint_serving(&clients, ENDPOINT, "fraud-v1", "fraud-model-v1", 2).await;
    clients
        .sagemaker
        .create_model()
        .model_name("fraud-model-v2")
        .execution_role_arn("arn:aws:iam::123456789012:role/local")
        .send()
        .await
        .unwrap();
    let store = Arc::new(DynamoStore::new(clients.dynamodb.clone(), "guardrails"));
    store.create_table().await.unwrap();
    Setup {
        stack,
        clients,
        store,
        waker: Arc::new(MemoryWaker::default()),
    }
}

impl Setup {
    fn driver(&self) -> Driver {
        Driver {
            endpoints: Arc::new(SageMakerEndpoints::new(self.clients.sagemaker.clone())),
            alarms: Arc::new(CloudWatchAlarms::new(self.clients.cloudwatch.clone())),
            store: self.store.clone(),
            bus: Arc::new(EventBridgeBus::new(
                self.clients.eventbridge.clone(),
                "default",
            )),
            waker: self.waker.clone(),
            clock: Arc::new(SystemClock),
            limits: Limits::default(),
        }
    }

    /// Invokes `driver` on every wake-up (the local stand-in for Scheduler firing) until the
    /// deployment ends; an invocation that fails is retried, as Lambda would.
    async fn run_to_end(&self, driver: &Driver) -> Phase {
        let deadline = tokio::time::Instant::now() + local::WAIT_LIMIT;
        loop {
            match driver.reconcile(ENDPOINT, None).await {
                Ok(Outcome::Reconciled(report)) if report.phase.is_final() => return report.phase,
                Ok(Outcome::NoDeployment) => panic!("the deployment vanished before it ended"),
                // An injected crash, or a transient error: retried on the next wake-up.
                Ok(Outcome::Reconciled(_)) | Err(_) => {}
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no final state within {:?}",
                local::WAIT_LIMIT
            );
            let now = SystemClock.now();
            let wake = self.waker.wake_up(ENDPOINT).unwrap_or(now);
            let wait_ms = (wake.epoch_ms() - now.epoch_ms()).clamp(50, 1_000);
            tokio::time::sleep(Duration::from_millis(u64::try_from(wait_ms).unwrap_or(50))).await;
        }
    }

    async fn serving(&self) -> (String, Vec<(String, f32)>) {
        let d = self
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_deployment_runs_to_success() {
    let s = setup().await;
    let driver = s.driver();
    driver.start(plan(2)).await.unwrap();
    assert_eq!(s.run_to_end(&driver).await, Phase::Succeeded);
    assert_eq!(
        s.serving().await,
        (
            "guardrails-d1-green".to_owned(),
            vec![("v2".to_owned(), 1.0)]
        )
    );
    assert_eq!(s.store.load(ENDPOINT).await.unwrap(), None, "archived");
    let audit = s.store.audit(ENDPOINT, "d1").await.unwrap();
    assert_eq!(
        audit.last().map(|a| a.transition.cause.clone()),
        Some(Cause::BlueRemoved)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_whose_errors_trip_its_alarm_in_the_canary_bake_is_rolled_back() {
    let s = setup().await;
    local::set_model(&s.stack, "fraud-model-v2", 0.5);
    let driver = s.driver();
    driver.start(plan(30)).await.unwrap();
    let end = s.run_to_end(&driver).await;
    assert!(
        matches!(&end, Phase::RolledBack { cause: Cause::AlarmFired { alarm_name, .. } } if alarm_name == "guardrails-d1-errors"),
        "{end:?}"
    );
    assert_eq!(
        s.serving().await,
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
    let driver = s.driver();
    driver.start(plan(2)).await.unwrap();
    let end = s.run_to_end(&driver).await;
    assert!(
        matches!(
            &end,
            Phase::Failed {
                cause: Cause::ProvisioningFailed { .. }
            }
        ),
        "{end:?}"
    );
    assert_eq!(s.serving().await.0, "fraud-v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_drivers_racing_on_one_endpoint_never_both_act() {
    let s = setup().await;
    let driver = s.driver();
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
    let mut first = s.driver();
    first.store = racing.clone();
    let mut second = s.driver();
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
    assert_eq!(s.run_to_end(&driver).await, Phase::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_acting_before_saving_still_converges() {
    let s = setup().await;
    let crashing = Arc::new(CrashAfterAct::new(
        Arc::new(SageMakerEndpoints::new(s.clients.sagemaker.clone())),
        1,
    ));
    let mut driver = s.driver();
    driver.endpoints = crashing.clone();
    let first = driver.start(plan(2)).await;
    assert!(
        first.is_err(),
        "the first invocation died after UpdateEndpoint"
    );
    assert_eq!(crashing.crashes(), 1);
    assert_eq!(s.run_to_end(&driver).await, Phase::Succeeded);
    let audit = s.store.audit(ENDPOINT, "d1").await.unwrap();
    let sequences: Vec<u64> = audit.iter().map(|a| a.sequence).collect();
    assert_eq!(
        sequences,
        (0..audit.len() as u64).collect::<Vec<_>>(),
        "complete, no duplicates"
    );
}
