//! The native engine end to end on the local stack: the driver with the real AWS adapters, the
//! emulator running SageMaker's own deployment guardrails (steps, bakes reading the alarm states
//! of the local CloudWatch, rollbacks), DynamoDB on moto, and the rollback notifier paging.
//! GIVEN an endpoint serving v1 and an alarm on its errors, WHEN SageMaker deploys v2 under a
//! DeploymentConfig, THEN Guardrails reports the real outcome, records SageMaker's progress in
//! the audit log and pages once for a rollback or failure.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use guardrails::aws::clock::SystemClock;
use guardrails::core::{Cause, Phase};
use guardrails::events::PhaseKind;
use guardrails::handlers::{Handled, Settings, rollback_notifier};
use guardrails::memory::{MemoryBus, MemoryPager};
use guardrails::plan::{Fleet, FleetVariant, GreenSpec, Plan};
use guardrails::policy::Policy;
use guardrails::ports::Store;
use guardrails_local::fixtures::{ErrorAlarm, put_error_alarm};
use guardrails_local::sagemaker::Outcome as UpdateOutcome;
use guardrails_tests::local::{self, OnStack};
use serde_json::{Value, json};

const ENDPOINT: &str = "fraud";
const ALARM: &str = "fraud-5xx";
/// Native deployments here run several bakes of real seconds: allow more than the usual limit.
const LIMIT: Duration = Duration::from_secs(150);

fn native_plan(deployment_config: &str) -> Plan {
    native_plan_with(deployment_config, "")
}

/// `native_plan` with more of the Guardrails section (YAML lines indented by two).
fn native_plan_with(deployment_config: &str, guardrails: &str) -> Plan {
    let yaml = format!(
        "DeploymentConfig:\n{deployment_config}\n  AutoRollbackConfiguration:\n    Alarms: [{{ AlarmName: {ALARM} }}]\nGuardrails:\n  Engine: native\n  PollIntervalInSeconds: 1\n{guardrails}"
    );
    let policy = Policy::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
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
        variant_name: "AllTraffic".to_owned(),
        model_name: "fraud-model-v2".to_owned(),
        instance_type: "ml.m5.xlarge".to_owned(),
        instance_count: 2,
    };
    Plan::new("d1", &policy, &fleet, &green).unwrap()
}

struct Setup {
    on: OnStack,
    bus: Arc<MemoryBus>,
}

/// An endpoint serving v1 on 2 instances, model v2 with `v2_error_rate`, and an alarm on the
/// endpoint's 5xx fraction (both fleets: the variant name is the same).
async fn setup(v2_error_rate: f64) -> Setup {
    let on = OnStack::start(ENDPOINT).await;
    local::set_model(&on.stack, "fraud-model-v2", v2_error_rate);
    let alarm = ErrorAlarm {
        name: ALARM,
        endpoint: ENDPOINT,
        variant: "AllTraffic",
        period_secs: 10,
        threshold: 0.05,
        or_equal: false,
    };
    put_error_alarm(&on.clients.cloudwatch, &alarm)
        .await
        .unwrap();
    Setup {
        on,
        bus: Arc::new(MemoryBus::default()),
    }
}

impl Setup {
    /// Starts `plan` and invokes the driver on every wake-up until the deployment ends.
    async fn run(&self, plan: Plan) -> Phase {
        let driver = self.on.driver(self.bus.clone());
        driver.start(plan).await.unwrap();
        self.on.run_to_end(&driver, LIMIT).await
    }

    async fn serving_config(&self) -> String {
        let d = self
            .on
            .clients
            .sagemaker
            .describe_endpoint()
            .endpoint_name(ENDPOINT)
            .send()
            .await
            .unwrap();
        d.endpoint_config_name().unwrap().to_owned()
    }

    /// SageMaker's progress as the audit log recorded it: `Status: message` lines.
    async fn progress(&self) -> Vec<String> {
        self.on
            .store
            .audit(ENDPOINT, "d1")
            .await
            .unwrap()
            .into_iter()
            .filter_map(|a| match a.transition.cause {
                Cause::SageMakerProgress {
                    status, message, ..
                } => Some(format!("{status}: {message}")),
                _ => None,
            })
            .collect()
    }

    /// Delivers the deployment's final event to the rollback notifier twice (EventBridge
    /// delivers at least once) and returns the pages sent.
    async fn page(&self) -> Vec<guardrails::ports::Page> {
        let last = self
            .bus
            .events()
            .into_iter()
            .rev()
            .find(|e| e.outcome.is_some())
            .expect("a final state-change event");
        let event = json!({
            "version": "0", "id": "7e1d0000-0000-0000-0000-000000000009",
            "detail-type": "Guardrails Deployment State Change", "source": "guardrails",
            "account": "123456789012", "time": "2026-11-27T08:10:00Z", "region": "us-east-1",
            "resources": [], "detail": last
        });
        let pager = MemoryPager::default();
        let settings = Settings {
            table: "guardrails".to_owned(),
            ..Settings::default()
        };
        let first = rollback_notifier(&*self.on.store, &pager, &SystemClock, &settings, &event)
            .await
            .unwrap();
        assert!(matches!(first, Handled::Paged { .. }), "{first:?}");
        let again = rollback_notifier(&*self.on.store, &pager, &SystemClock, &settings, &event)
            .await
            .unwrap();
        assert!(matches!(again, Handled::Ignored { .. }), "{again:?}");
        pager.pages()
    }

    fn sagemaker_events(&self, detail_type: &str) -> Vec<Value> {
        let emulator = self
            .on
            .stack
            .emulator
            .emulator
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        emulator
            .events
            .iter()
            .filter(|e| e.detail_type == detail_type)
            .map(|e| e.detail.clone())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_canary_succeeds_and_its_progress_is_audited() {
    let s = setup(0.0).await;
    let plan = native_plan(
        "  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: CANARY
      CanarySize: { Type: CAPACITY_PERCENT, Value: 50 }
      WaitIntervalInSeconds: 2
    TerminationWaitInSeconds: 2
    MaximumExecutionTimeoutInSeconds: 600",
    );
    let end = s.run(plan).await;
    assert_eq!(end, Phase::Succeeded);
    assert_eq!(s.serving_config().await, "guardrails-d1-green");
    let progress = s.progress().await;
    assert!(
        progress.iter().any(|p| p.starts_with(
            "Baking: Baking for 2 seconds (WaitIntervalInSeconds) with traffic enabled on canary capacity of 1 instance(s)"
        )),
        "{progress:#?}"
    );
    let events = s.sagemaker_events("SageMaker Endpoint Deployment State Change");
    assert!(
        events.iter().any(|d| d
            .pointer("/PendingDeploymentSummary/ProductionVariants/0/VariantStatus/0/Status")
            == Some(&json!("Baking"))),
        "deployment events mirror DescribeEndpoint with VariantStatus"
    );
    let described =
        s.on.clients
            .sagemaker
            .describe_endpoint()
            .endpoint_name(ENDPOINT)
            .send()
            .await
            .unwrap();
    let last = described
        .last_deployment_config()
        .expect("LastDeploymentConfig");
    assert_eq!(
        last.blue_green_update_policy()
            .and_then(|b| b.termination_wait_in_seconds()),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_linear_rollout_of_a_faulty_model_rolls_back_and_pages_once() {
    let s = setup(0.5).await;
    let plan = native_plan(
        "  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: LINEAR
      LinearStepSize: { Type: CAPACITY_PERCENT, Value: 50 }
      WaitIntervalInSeconds: 40
    TerminationWaitInSeconds: 40
    MaximumExecutionTimeoutInSeconds: 600",
    );
    let end = s.run(plan).await;
    assert!(
        matches!(&end, Phase::RolledBack { cause: Cause::AlarmFired { alarm_name, .. } } if alarm_name == ALARM),
        "{end:?}"
    );
    assert_eq!(
        s.serving_config().await,
        "fraud-v1",
        "back on the old config"
    );
    let pages = s.page().await;
    assert_eq!(pages.len(), 1, "exactly one page");
    assert!(
        pages[0].subject.contains("ROLLED BACK"),
        "{}",
        pages[0].subject
    );
    assert!(pages[0].body.contains(ALARM), "{}", pages[0].body);
    assert!(
        pages[0]
            .body
            .contains("Where it was:    SageMaker's deployment, last reported: "),
        "{}",
        pages[0].body
    );
    assert!(
        pages[0].body.contains("SageMaker removed the new fleet"),
        "{}",
        pages[0].body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_failed_native_update_is_reported_as_failed_not_success() {
    let s = setup(0.0).await;
    local::next_update(
        &s.on.stack,
        ENDPOINT,
        UpdateOutcome::ReturnsToOldConfig(String::new()),
    );
    let plan = native_plan(
        "  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: ALL_AT_ONCE
      WaitIntervalInSeconds: 0
    TerminationWaitInSeconds: 2
    MaximumExecutionTimeoutInSeconds: 600",
    );
    let end = s.run(plan).await;
    let Phase::Failed {
        cause: Cause::ProvisioningFailed { reason },
    } = &end
    else {
        panic!("expected a failure, got {end:?}");
    };
    assert!(reason.contains("no FailureReason"), "{reason}");
    assert_eq!(s.serving_config().await, "fraud-v1");
    let pages = s.page().await;
    assert!(pages[0].subject.contains("FAILED"), "{}", pages[0].subject);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_rolling_update_succeeds_batch_by_batch() {
    let s = setup(0.0).await;
    let plan = native_plan(
        "  RollingUpdatePolicy:
    MaximumBatchSize: { Type: CAPACITY_PERCENT, Value: 50 }
    WaitIntervalInSeconds: 1
    MaximumExecutionTimeoutInSeconds: 600",
    );
    let end = s.run(plan).await;
    assert_eq!(end, Phase::Succeeded);
    assert_eq!(s.serving_config().await, "guardrails-d1-green");
    let launches = s
        .progress()
        .await
        .into_iter()
        .filter(|p| p.starts_with("Creating: Launching 1 instance(s)"))
        .count();
    assert!(launches >= 1, "rolling launches batches of 1 instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_native_rollback_fails_with_the_recovery_step() {
    let s = setup(0.5).await;
    local::next_update(
        &s.on.stack,
        ENDPOINT,
        UpdateOutcome::RollbackFails("insufficient capacity for the old fleet".to_owned()),
    );
    let plan = native_plan(
        "  RollingUpdatePolicy:
    MaximumBatchSize: { Type: CAPACITY_PERCENT, Value: 50 }
    WaitIntervalInSeconds: 40
    MaximumExecutionTimeoutInSeconds: 600",
    );
    let end = s.run(plan).await;
    let Phase::Failed {
        cause: Cause::RollbackFailed { recovery, .. },
    } = &end
    else {
        panic!("expected UpdateRollbackFailed, got {end:?}");
    };
    assert!(
        recovery.contains("EndpointConfigName fraud-v1"),
        "{recovery}"
    );
    let pages = s.page().await;
    assert!(
        pages[0]
            .body
            .contains("Now:             UpdateRollbackFailed: the endpoint serves a mix"),
        "{}",
        pages[0].body
    );
    let final_kind = s.bus.events().last().and_then(|e| e.outcome);
    assert_eq!(final_kind, Some(PhaseKind::Failed));
}

/// The judge under the native engine: v2 answers 4% of its requests with a 5xx, v1 1%, so
/// the endpoint's alarm (above 5%) never fires, on the canary nor after it. The judge compares
/// the fleets by their configs (`EndpointConfigName`), finds green worse during SageMaker's
/// canary bake and sets its own alarm, which SageMaker watches: SageMaker rolls back, and the
/// judge's finding is the cause, in the record and the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_judge_rolls_a_native_canary_back_through_the_alarm_sagemaker_watches() {
    let s = setup(0.04).await;
    local::set_model(&s.on.stack, "fraud-model-v1", 0.01);
    let plan = native_plan_with(
        "  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: CANARY
      CanarySize: { Type: CAPACITY_PERCENT, Value: 50 }
      WaitIntervalInSeconds: 90
    TerminationWaitInSeconds: 1
    MaximumExecutionTimeoutInSeconds: 600",
        "  Analysis: { PeriodInSeconds: 1, MinimumGreenRequests: 200, WhenInconclusive: Pass }\n",
    );
    let end = s.run(plan).await;
    let Phase::RolledBack {
        cause: Cause::GreenWorse { summary, .. },
    } = &end
    else {
        panic!("{end:?}");
    };
    assert!(summary.starts_with("5xx error rate: green "), "{summary}");
    assert_eq!(
        s.serving_config().await,
        "fraud-v1",
        "back on the old config"
    );
    let alarms =
        s.on.clients
            .cloudwatch
            .describe_alarms()
            .alarm_names("guardrails-d1-judge")
            .alarm_names(ALARM)
            .send()
            .await
            .unwrap();
    let names: Vec<&str> = alarms
        .metric_alarms()
        .iter()
        .map(|a| (a.alarm_name().unwrap_or_default(), a.state_value()))
        .inspect(|(name, state)| {
            assert_ne!(
                (*name, *state),
                (ALARM, Some(&aws_sdk_cloudwatch::types::StateValue::Alarm)),
                "the endpoint's alarm never fired"
            );
        })
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        names,
        vec![ALARM],
        "the judge's alarm is deleted at the end"
    );
    let rollback = s
        .sagemaker_events("SageMaker Endpoint Deployment State Change")
        .into_iter()
        .filter_map(|d| d["FailureReason"].as_str().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ");
    assert!(
        rollback.contains("guardrails-d1-judge"),
        "SageMaker rolled back on the judge's alarm: {rollback}"
    );
    let pages = s.page().await;
    assert_eq!(pages.len(), 1);
    assert!(
        pages[0]
            .body
            .contains("the judge found green worse than blue"),
        "{}",
        pages[0].body
    );
    assert!(denied(&s).is_empty(), "{:?}", denied(&s));
}

fn denied(s: &Setup) -> Vec<(String, String, String)> {
    s.on.denied()
}
