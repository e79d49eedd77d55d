//! No refusal can hold a deployment (DESIGN.md invariant 8): the real driver and core, the
//! stand-in endpoint and in-memory ports, with AWS refusing a call for good or failing it for
//! as long as the test likes. GIVEN a refusal in each phase, WHEN the driver runs, THEN the
//! deployment ends (rolled back or failed), cleans up what it can, says what is left, publishes
//! its outcome for the page, and frees the endpoint for the next deployment.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use guardrails::core::{Cause, Command, Phase};
use guardrails::driver::Outcome;
use guardrails::events::PhaseKind;
use guardrails::ports::Store;
use guardrails_tests::harness::Harness;
use guardrails_tests::world::World;
use guardrails_tests::{T0, example_policy, sample_plan};

const ENDPOINT: &str = "fraud-scorer";
const NO_MODEL: &str = "ValidationException: Could not find model \"arn:aws:sagemaker:us-east-1:123456789012:model/fraud-scorer-v2x\".";
const DENIED: &str = "AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/EndpointEventsFunctionRole/endpoint-events is not authorized to perform: sagemaker:UpdateEndpoint on resource: arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/guardrails-d1-blue-green because no identity-based policy allows the sagemaker:UpdateEndpoint action";

fn endpoint() -> World {
    World::serving(T0, "fraud-scorer-v1", "AllTraffic", "fraud-scorer-v1", 4)
        .with_endpoint_alarm("fraud-scorer-5xx")
}

fn canary() -> guardrails::plan::Plan {
    sample_plan(&example_policy("canary.yaml"), 4)
}

/// The final cause, and the outcome published on the bus.
fn ended(h: &Harness) -> (Phase, Option<PhaseKind>) {
    let history = h.memory.history(ENDPOINT);
    let last = history.last().expect("the deployment ended");
    let published = h.bus.events().iter().rev().find_map(|e| e.outcome);
    (last.deployment.phase.clone(), published)
}

fn refused_api(phase: &Phase) -> String {
    match phase {
        Phase::Failed {
            cause: Cause::Refused { api, .. },
        }
        | Phase::RolledBack {
            cause: Cause::Refused { api, .. },
        } => api.clone(),
        other => panic!("not ended by a refusal: {other:?}"),
    }
}

#[tokio::test]
async fn a_misspelt_model_fails_in_the_first_invocation_and_frees_the_endpoint() {
    // Before: 2,880 failed sweeps in 48 simulated hours and a frozen endpoint.
    let h = Harness::new(endpoint());
    h.ports.refuse("sagemaker:CreateEndpointConfig", NO_MODEL);
    let outcome = h.driver.start(canary()).await.unwrap();
    let Outcome::Reconciled(report) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(report.phase.is_final(), "{:?}", report.phase);
    let (phase, published) = ended(&h);
    assert_eq!(refused_api(&phase), "sagemaker:CreateEndpointConfig");
    assert_eq!(
        published,
        Some(PhaseKind::Failed),
        "the outcome goes to the notifier"
    );
    assert_eq!(
        h.ports.world().config_name(),
        "fraud-scorer-v1",
        "nothing changed"
    );
    assert!(
        h.store.load(ENDPOINT).await.unwrap().is_none(),
        "endpoint freed"
    );
    // The next deployment starts.
    h.ports.heal("sagemaker:CreateEndpointConfig");
    let mut next = canary();
    next.deployment_id = "d2".to_owned();
    h.driver.start(next).await.unwrap();
    assert_eq!(h.run_to_end(ENDPOINT).await.unwrap(), Phase::Succeeded);
}

#[tokio::test]
async fn a_denied_update_in_the_middle_of_a_canary_rolls_back_and_pages() {
    let h = Harness::new(endpoint());
    h.driver.start(canary()).await.unwrap();
    // Until green is provisioned and baking at 10%.
    for _ in 0..50 {
        let _ = h.driver.reconcile(ENDPOINT, None).await;
        let phase = h
            .store
            .load(ENDPOINT)
            .await
            .unwrap()
            .map(|s| s.deployment.phase);
        if matches!(phase, Some(Phase::Baking { .. })) {
            break;
        }
        let next = h
            .ports
            .world()
            .next_change()
            .unwrap_or(h.clock_now().plus_secs(30));
        h.advance_to(next);
    }
    // The alarms can no longer be read: Guardrails will not bake blind.
    h.ports.refuse("cloudwatch:DescribeAlarms", DENIED);
    let end = h.run_to_end(ENDPOINT).await.unwrap();
    assert!(
        matches!(
            end,
            Phase::RolledBack {
                cause: Cause::Refused { .. }
            }
        ),
        "{end:?}"
    );
    assert_eq!(h.ports.world().config_name(), "fraud-scorer-v1");
    assert_eq!(
        h.ports.world().traffic(),
        vec![("AllTraffic".to_owned(), 1.0)]
    );
}

#[tokio::test]
async fn a_rollback_aws_refuses_fails_saying_what_is_left() {
    let h = Harness::new(endpoint().with_bad_model("fraud-scorer-v2"));
    h.driver.start(canary()).await.unwrap();
    // Green serves and trips its alarm; once the rollback has begun, its UpdateEndpoint back to
    // blue is denied.
    let mut denied = false;
    for _ in 0..200 {
        let _ = h.driver.reconcile(ENDPOINT, None).await;
        let phase = h
            .store
            .load(ENDPOINT)
            .await
            .unwrap()
            .map(|s| s.deployment.phase);
        match phase {
            Some(Phase::RollingBack { .. }) if !denied => {
                h.ports.refuse("sagemaker:UpdateEndpoint", DENIED);
                denied = true;
            }
            None => break,
            _ => {}
        }
        let now = h.clock_now();
        let next = [h.waker.wake_up(ENDPOINT), h.ports.world().next_change()]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .min()
            .unwrap_or(now.plus_secs(30));
        h.advance_to(next);
    }
    let (phase, published) = ended(&h);
    assert_eq!(published, Some(PhaseKind::Failed));
    let Phase::Failed {
        cause: Cause::Refused {
            api, left_behind, ..
        },
    } = phase
    else {
        panic!("{phase:?}")
    };
    assert_eq!(api, "sagemaker:UpdateEndpoint");
    assert!(
        left_behind.contains("every request is on blue"),
        "traffic went back first: {left_behind}"
    );
    assert_eq!(h.ports.world().traffic()[0], ("AllTraffic".to_owned(), 1.0));
}

#[tokio::test]
async fn an_outage_that_never_ends_is_retried_a_bounded_number_of_times_then_ends() {
    let h = Harness::new(endpoint());
    h.driver.start(canary()).await.unwrap();
    h.ports
        .fail("sagemaker:DescribeEndpoint", "ServiceUnavailable: 503");
    let mut invocations = 0;
    while h.store.load(ENDPOINT).await.unwrap().is_some() {
        invocations += 1;
        assert!(invocations < 500, "never ended");
        let _ = h.driver.reconcile(ENDPOINT, None).await;
        h.advance_to(h.clock_now().plus_secs(60));
    }
    let (phase, published) = ended(&h);
    assert_eq!(published, Some(PhaseKind::Failed));
    let record = h.memory.history(ENDPOINT).pop().unwrap();
    assert!(
        record.deployment.trouble.failures >= 10,
        "counted in the record"
    );
    assert!(matches!(phase, Phase::Failed { .. }), "{phase:?}");
}

#[tokio::test]
async fn an_abort_ends_a_deployment_in_every_phase() {
    let abort = Command::Abort {
        by: "oncall".to_owned(),
        reason: "stop".to_owned(),
    };
    // Stop the canary at each of its invocations in turn; each must end, and soon.
    for stop_at in 0..12 {
        let h = Harness::new(endpoint());
        h.driver.start(canary()).await.unwrap();
        for _ in 0..stop_at {
            let _ = h.driver.reconcile(ENDPOINT, None).await;
            let now = h.clock_now();
            let next = [h.waker.wake_up(ENDPOINT), h.ports.world().next_change()]
                .into_iter()
                .flatten()
                .filter(|t| *t > now)
                .min()
                .unwrap_or(now.plus_secs(30));
            h.advance_to(next);
        }
        let Some(active) = h.store.load(ENDPOINT).await.unwrap() else {
            continue;
        };
        let phase = active.deployment.phase.label();
        let _ = h.driver.reconcile(ENDPOINT, Some(&abort)).await;
        let end = h.run_to_end(ENDPOINT).await.unwrap();
        assert!(
            matches!(end, Phase::RolledBack { .. } | Phase::Failed { .. }),
            "abort while {phase} ended {end:?}"
        );
        assert_eq!(
            h.ports.world().config_name(),
            "fraud-scorer-v1",
            "abort while {phase}"
        );
    }
}

trait Now {
    fn clock_now(&self) -> guardrails::units::Timestamp;
}

impl Now for Harness {
    fn clock_now(&self) -> guardrails::units::Timestamp {
        use guardrails::ports::Clock;
        self.clock.now()
    }
}
