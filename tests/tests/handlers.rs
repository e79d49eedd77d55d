//! The functions' handlers on the `events/` samples, with the in-memory store and the stand-in
//! endpoint: GIVEN an event, WHEN a function handles it, THEN it starts, reconciles, refuses
//! (published, changing nothing) or ignores it, and never fails on a malformed event.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use guardrails::handlers::{
    self, Handled, HandlerError, PackageTarget, Settings, bake_watcher, endpoint_events,
    rollback_notifier,
};
use guardrails::ports::Store;
use guardrails_tests::harness::Harness;
use guardrails_tests::world::World;
use guardrails_tests::{T0, repo_root};
use serde_json::{Value, json};

fn sample(file: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join("events").join(file)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The body of a function URL sample, edited by `edit`, as a signed request again.
fn edited(file: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut request = sample(file);
    let mut body: Value = serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
    edit(&mut body);
    request["body"] = Value::String(body.to_string());
    request
}

fn body(file: &str) -> Value {
    serde_json::from_str(sample(file)["body"].as_str().unwrap()).unwrap()
}

/// What `start-deployment` does with an invocation: a function URL request is a command (from
/// a caller the local stack's parameters allow, unless `settings` names principals), anything
/// else an event.
async fn start_deployment(
    driver: &guardrails::driver::Driver,
    settings: &Settings,
    event: &Value,
) -> Result<Handled, HandlerError> {
    if event.get("requestContext").is_some() {
        let local = guardrails_tests::flow::local_settings();
        let settings = Settings {
            principals: local.principals,
            ..settings.clone()
        };
        return handlers::command(driver, &settings, event)
            .await
            .map(|a| a.handled);
    }
    handlers::start_deployment(driver, settings, event).await
}

fn harness() -> Harness {
    Harness::new(
        World::serving(T0, "fraud-scorer-v1", "AllTraffic", "fraud-scorer-v1", 4)
            .with_endpoint_alarm("fraud-scorer-5xx"),
    )
}

fn reconciled(handled: &Handled) -> Vec<(String, String)> {
    match handled {
        Handled::Reconciled { deployments } => deployments
            .iter()
            .map(|d| (d.deployment_id.clone(), d.phase.clone()))
            .collect(),
        other => panic!("expected a reconciliation, got {other:?}"),
    }
}

#[tokio::test]
async fn a_deployment_request_starts_a_deployment() {
    let h = harness();
    let handled = start_deployment(
        &h.driver,
        &Settings::default(),
        &sample("command-deploy.json"),
    )
    .await
    .unwrap();
    assert_eq!(
        reconciled(&handled),
        vec![("d-6a7e8febb491".to_owned(), "provisioning".to_owned())]
    );
    let active = h.store.load("fraud-scorer").await.unwrap().unwrap();
    assert_eq!(active.deployment.plan.green.model_name, "fraud-scorer-v2");
    assert_eq!(active.deployment.plan.green.instance_count, 4);
    assert!(
        h.ports
            .log()
            .contains(&"UpdateEndpoint guardrails-d-6a7e8febb491-blue-green".to_owned())
    );
}

#[tokio::test]
async fn a_duplicated_request_is_recognised_and_another_is_refused_and_published() {
    let h = harness();
    let request = sample("command-deploy.json");
    start_deployment(&h.driver, &Settings::default(), &request)
        .await
        .unwrap();
    let again = start_deployment(&h.driver, &Settings::default(), &request)
        .await
        .unwrap();
    assert!(
        matches!(&again, Handled::Ignored { reason, .. } if reason.starts_with("duplicate request")),
        "{again:?}"
    );
    let mut other = request.clone();
    other["requestContext"]["requestId"] = json!("ffffffff-0000-0000-0000-000000000000");
    let refused = start_deployment(&h.driver, &Settings::default(), &other)
        .await
        .unwrap();
    // Refused before anything else is looked at, naming the active deployment.
    let Handled::Refused { endpoint, reason } = &refused else {
        panic!("expected a refusal, got {refused:?}");
    };
    assert_eq!(endpoint, "fraud-scorer");
    assert_eq!(
        reason,
        "endpoint fraud-scorer already has an active deployment (d-6a7e8febb491); wait for it \
         to end or abort it"
    );
    let published = h.bus.refusals();
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0].active_deployment_id.as_deref(),
        Some("d-6a7e8febb491")
    );
    assert_eq!(
        published[0].requested_by.as_deref(),
        Some(ALICE),
        "the signed caller, not a name the sender typed"
    );
    assert_eq!(
        h.store
            .load("fraud-scorer")
            .await
            .unwrap()
            .unwrap()
            .deployment
            .plan
            .deployment_id,
        "d-6a7e8febb491"
    );
    // Once green serves beside blue (two variants), the same request is still recognised as
    // its deployment, not refused for the fleet it changed.
    for _ in 0..200 {
        let report = h.driver.reconcile("fraud-scorer", None).await.unwrap();
        if matches!(
            &report,
            guardrails::driver::Outcome::Reconciled(r)
                if matches!(r.phase, guardrails::core::Phase::Baking { .. })
        ) {
            break;
        }
        let now = guardrails::ports::Clock::now(h.clock.as_ref());
        let next = h.ports.world().next_change().unwrap_or(now.plus_secs(30));
        h.advance_to(next.max(now.plus_secs(1)));
    }
    assert_eq!(h.ports.world().traffic().len(), 2, "blue and green serve");
    let again = start_deployment(&h.driver, &Settings::default(), &request)
        .await
        .unwrap();
    assert!(
        matches!(&again, Handled::Ignored { reason, .. } if reason.starts_with("duplicate request")),
        "{again:?}"
    );
}

#[tokio::test]
async fn an_invalid_policy_is_refused_with_every_problem_and_changes_nothing() {
    let h = harness();
    let handled = start_deployment(
        &h.driver,
        &Settings::default(),
        &sample("command-deploy-invalid-policy.json"),
    )
    .await
    .unwrap();
    let Handled::Refused { reason, .. } = handled else {
        panic!("{handled:?}")
    };
    assert!(
        reason.contains("CanarySize.Value: 80% exceeds the 50% SageMaker allows for a canary"),
        "{reason}"
    );
    assert!(h.store.load("fraud-scorer").await.unwrap().is_none());
    assert!(h.ports.log().is_empty(), "nothing was done to the endpoint");
    assert_eq!(h.bus.refusals().len(), 1);
}

#[tokio::test]
async fn a_request_for_an_unknown_endpoint_is_refused() {
    let h = harness();
    let request = edited("command-deploy.json", |b| {
        b["endpointName"] = json!("no-such-endpoint");
    });
    let handled = start_deployment(&h.driver, &Settings::default(), &request)
        .await
        .unwrap();
    assert!(
        matches!(&handled, Handled::Refused { reason, .. } if reason == "endpoint no-such-endpoint does not exist"),
        "{handled:?}"
    );
}

fn package_settings(policy: Value) -> Settings {
    Settings {
        package_targets: Arc::new(BTreeMap::from([(
            "versionedmp-p-idy6c3e1fiqj".to_owned(),
            PackageTarget {
                endpoint_name: "fraud-scorer".to_owned(),
                policy,
                instance_type: None,
                instance_count: Some(2),
            },
        )])),
        model_role_arn: Some("arn:aws:iam::123456789012:role/models".to_owned()),
        ..Settings::default()
    }
}

const PACKAGE_ARN: &str =
    "arn:aws:sagemaker:us-east-2:111122223333:model-package/versionedmp-p-idy6c3e1fiqj/2";

#[tokio::test]
async fn an_approved_model_package_deploys_to_its_mapped_endpoint() {
    let h = harness();
    h.ports.register_package(PACKAGE_ARN, "Approved");
    let package = sample("sagemaker-model-package-state-change.json");
    let unmapped = start_deployment(&h.driver, &Settings::default(), &package)
        .await
        .unwrap();
    assert!(
        matches!(&unmapped, Handled::Ignored { reason, .. } if reason.contains("has no package target")),
        "{unmapped:?}"
    );
    let policy = body("command-deploy.json")["policy"].clone();
    let settings = package_settings(policy);
    let handled = start_deployment(&h.driver, &settings, &package)
        .await
        .unwrap();
    assert_eq!(reconciled(&handled)[0].1, "provisioning");
    assert!(
        h.ports.log()[0]
            .starts_with("CreateModel versionedmp-p-idy6c3e1fiqj-2 from arn:aws:sagemaker")
    );
    let active = h.store.load("fraud-scorer").await.unwrap().unwrap();
    assert_eq!(active.deployment.plan.green.instance_count, 2);
    // The deployment is the version's, whichever event asked for it: an approval sent again
    // (SageMaker may send several events per change) is the same deployment.
    assert!(active.deployment.plan.deployment_id.starts_with("p-2-"));
    let mut again = package.clone();
    again["id"] = json!("another-event-id");
    let repeated = start_deployment(&h.driver, &settings, &again)
        .await
        .unwrap();
    assert!(
        matches!(&repeated, Handled::Ignored { reason, .. } if reason.contains("duplicate request")),
        "{repeated:?}"
    );
}

#[tokio::test]
async fn only_an_approval_of_a_completed_version_deploys_it() {
    let h = harness();
    h.ports.register_package(PACKAGE_ARN, "Approved");
    let settings = package_settings(body("command-deploy.json")["policy"].clone());
    let approval = sample("sagemaker-model-package-state-change.json");
    let variant = |f: &dyn Fn(&mut Value)| {
        let mut e = approval.clone();
        f(&mut e);
        e
    };
    let cases = [
        (
            variant(&|e| e["detail"]["ModelApprovalStatus"] = json!("Rejected")),
            "is Rejected, not Approved",
        ),
        (
            // A metadata update of an approved version, shaped as AWS's sample lists them.
            variant(&|e| {
                e["detail"]["UpdatedModelPackageFields"] =
                    json!(["CustomerMetadataProperties", "ModelLifeCycle"]);
            }),
            "changed CustomerMetadataProperties, ModelLifeCycle, not its approval",
        ),
        (
            variant(&|e| {
                e["detail"]
                    .as_object_mut()
                    .unwrap()
                    .remove("UpdatedModelPackageFields");
            }),
            "changed nothing (a new version), not its approval",
        ),
        (
            variant(&|e| e["detail"]["ModelPackageStatus"] = json!("InProgress")),
            "is InProgress, not Completed",
        ),
    ];
    for (event, expected) in cases {
        let handled = start_deployment(&h.driver, &settings, &event)
            .await
            .unwrap();
        assert!(
            matches!(&handled, Handled::Ignored { reason, .. } if reason.contains(expected)),
            "{expected}: {handled:?}"
        );
    }
    assert!(h.store.load("fraud-scorer").await.unwrap().is_none());
    assert!(h.ports.log().is_empty(), "{:?}", h.ports.log());
}

#[tokio::test]
async fn a_package_is_deployed_only_when_sagemaker_says_it_is_approved() {
    let h = harness();
    let settings = package_settings(body("command-deploy.json")["policy"].clone());
    // The event says Approved; the registry does not know the version (a forged or stale
    // event), then knows it pending approval.
    let approval = sample("sagemaker-model-package-state-change.json");
    let handled = start_deployment(&h.driver, &settings, &approval)
        .await
        .unwrap();
    assert!(
        matches!(&handled, Handled::Refused { reason, .. } if reason == &format!("model package {PACKAGE_ARN} does not exist")),
        "{handled:?}"
    );
    h.ports
        .register_package(PACKAGE_ARN, "PendingManualApproval");
    let request = edited("command-deploy.json", |b| {
        b["modelPackageArn"] = json!(PACKAGE_ARN);
    });
    let handled = start_deployment(&h.driver, &settings, &request)
        .await
        .unwrap();
    assert!(
        matches!(&handled, Handled::Refused { reason, .. } if reason.contains("is PendingManualApproval and Completed: only an Approved, Completed version is deployed")),
        "{handled:?}"
    );
    assert!(h.store.load("fraud-scorer").await.unwrap().is_none());
}

#[tokio::test]
async fn an_approved_version_the_endpoint_already_serves_is_not_deployed_again() {
    let h = harness();
    h.ports.register_package(PACKAGE_ARN, "Approved");
    // The endpoint serves the model made from this version already (deployed earlier).
    h.ports
        .world()
        .set_model("AllTraffic", "versionedmp-p-idy6c3e1fiqj-2");
    let settings = package_settings(body("command-deploy.json")["policy"].clone());
    let approval = sample("sagemaker-model-package-state-change.json");
    let handled = start_deployment(&h.driver, &settings, &approval)
        .await
        .unwrap();
    assert!(
        matches!(&handled, Handled::Ignored { reason, .. } if reason == "endpoint fraud-scorer already serves model versionedmp-p-idy6c3e1fiqj-2 (variant AllTraffic): nothing to deploy"),
        "{handled:?}"
    );
    assert!(h.store.load("fraud-scorer").await.unwrap().is_none());
}

#[tokio::test]
async fn endpoint_events_reconcile_managed_endpoints_and_ignore_the_rest() {
    let h = harness();
    let unmanaged = endpoint_events(
        &h.driver,
        &Settings::default(),
        &sample("sagemaker-endpoint-state-change.json"),
    )
    .await
    .unwrap();
    assert_eq!(
        unmanaged,
        Handled::Ignored {
            reason: "no active deployment for endpoint MyEndpoint".to_owned(),
            malformed: false,
        }
    );
    start_deployment(
        &h.driver,
        &Settings::default(),
        &sample("command-deploy.json"),
    )
    .await
    .unwrap();
    let mut event = sample("sagemaker-endpoint-state-change.json");
    event["detail"]["EndpointName"] = json!("fraud-scorer");
    let handled = endpoint_events(&h.driver, &Settings::default(), &event)
        .await
        .unwrap();
    assert_eq!(reconciled(&handled)[0].0, "d-6a7e8febb491");
}

#[tokio::test]
async fn malformed_and_foreign_events_are_acknowledged_not_retried() {
    let h = harness();
    let malformed = sample("malformed-endpoint-event-without-name.json");
    for handled in [
        endpoint_events(&h.driver, &Settings::default(), &malformed)
            .await
            .unwrap(),
        bake_watcher(&h.driver, &Settings::default(), &malformed)
            .await
            .unwrap(),
        start_deployment(&h.driver, &Settings::default(), &malformed)
            .await
            .unwrap(),
        start_deployment(
            &h.driver,
            &Settings::default(),
            &json!("not even an object"),
        )
        .await
        .unwrap(),
        endpoint_events(
            &h.driver,
            &Settings::default(),
            &sample("scheduled-sweep.json"),
        )
        .await
        .unwrap(),
    ] {
        assert!(matches!(handled, Handled::Ignored { .. }), "{handled:?}");
    }
}

#[tokio::test]
async fn the_bake_watcher_reconciles_on_wake_ups_alarms_and_the_sweep_and_aborts_are_signed() {
    let h = harness();
    start_deployment(
        &h.driver,
        &Settings::default(),
        &sample("command-deploy.json"),
    )
    .await
    .unwrap();
    let woken = bake_watcher(
        &h.driver,
        &Settings::default(),
        &sample("guardrails-wake-up.json"),
    )
    .await
    .unwrap();
    assert_eq!(reconciled(&woken)[0].0, "d-6a7e8febb491");

    let mut alarm = sample("cloudwatch-alarm-state-change.json");
    let unwatched = bake_watcher(&h.driver, &Settings::default(), &alarm)
        .await
        .unwrap();
    assert_eq!(
        unwatched,
        Handled::Ignored {
            reason: "no active deployment watches alarm ServerCpuTooHigh".to_owned(),
            malformed: false,
        }
    );
    alarm["detail"]["alarmName"] = json!("fraud-scorer-5xx");
    let watched = bake_watcher(&h.driver, &Settings::default(), &alarm)
        .await
        .unwrap();
    assert_eq!(reconciled(&watched).len(), 1);

    let swept = bake_watcher(
        &h.driver,
        &Settings::default(),
        &sample("scheduled-sweep.json"),
    )
    .await
    .unwrap();
    assert_eq!(reconciled(&swept).len(), 1);

    let abort = edited("command-approve.json", |b| {
        *b = json!({ "command": "abort", "endpointName": "fraud-scorer",
                     "deploymentId": "d-6a7e8febb491", "reason": "customer complaints" });
    });
    let aborted = start_deployment(&h.driver, &Settings::default(), &abort)
        .await
        .unwrap();
    assert_eq!(reconciled(&aborted)[0].1, "rolling back");
    let stored = h.store.load("fraud-scorer").await.unwrap();
    let audit = h
        .store
        .audit("fraud-scorer", "d-6a7e8febb491")
        .await
        .unwrap();
    assert!(
        audit.iter().any(|e| e.transition.cause.to_string()
            == format!("aborted by {ALICE}: customer complaints")),
        "the abort is recorded under the signer's ARN: {audit:?} {stored:?}"
    );
    let stale = edited("command-approve.json", |b| {
        *b = json!({ "command": "abort", "endpointName": "fraud-scorer",
                     "deploymentId": "d-other", "reason": "x" });
    });
    let refused = start_deployment(&h.driver, &Settings::default(), &stale)
        .await
        .unwrap();
    assert!(
        matches!(&refused, Handled::Refused { reason, .. } if reason.starts_with("deployment d-other is not active on fraud-scorer (d-6a7e8febb491 is)")),
        "{refused:?}"
    );
}

const ALICE: &str = "arn:aws:sts::123456789012:assumed-role/ml-release/alice";

fn envelope(detail: &impl serde::Serialize) -> Value {
    json!({
        "version": "0", "id": "7e1d0000-0000-0000-0000-000000000001",
        "detail-type": "Guardrails Deployment State Change", "source": "guardrails",
        "account": "123456789012", "time": "2026-11-27T08:10:00Z", "region": "us-east-1",
        "resources": [], "detail": detail
    })
}

fn notifier_settings() -> Settings {
    Settings {
        table: "guardrails".to_owned(),
        ..Settings::default()
    }
}

/// Runs a deployment of a bad model to its end and returns the final event our bus carried.
async fn rolled_back(h: &Harness) -> guardrails::events::StateChange {
    start_deployment(
        &h.driver,
        &Settings::default(),
        &sample("command-deploy.json"),
    )
    .await
    .unwrap();
    h.run_to_end("fraud-scorer").await.unwrap();
    h.bus
        .events()
        .into_iter()
        .rev()
        .find(|e| e.outcome.is_some())
        .unwrap()
}

#[tokio::test]
async fn a_rollback_pages_on_call_exactly_once_with_what_they_need() {
    let h = Harness::new(
        World::serving(T0, "fraud-scorer-v1", "AllTraffic", "fraud-scorer-v1", 4)
            .with_endpoint_alarm("fraud-scorer-5xx")
            .with_bad_model("fraud-scorer-v2"),
    );
    let last = rolled_back(&h).await;
    let pager = guardrails::memory::MemoryPager::default();
    let event = envelope(&last);
    let handled = rollback_notifier(
        h.store.as_ref(),
        &pager,
        h.clock.as_ref(),
        &notifier_settings(),
        &event,
    )
    .await
    .unwrap();
    assert!(
        matches!(&handled, Handled::Paged { message_id, .. } if message_id == "memory-1"),
        "{handled:?}"
    );
    let again = rollback_notifier(
        h.store.as_ref(),
        &pager,
        h.clock.as_ref(),
        &notifier_settings(),
        &event,
    )
    .await
    .unwrap();
    assert!(
        matches!(&again, Handled::Ignored { reason, .. } if reason.ends_with("already paged")),
        "{again:?}"
    );
    let pages = pager.pages();
    assert_eq!(pages.len(), 1, "exactly one page per outcome");
    assert_eq!(pages[0].attributes["outcome"], "ROLLED_BACK");
    assert_eq!(pages[0].attributes["cause"], "AlarmFired");
    insta::assert_snapshot!(format!(
        "Subject: {}\n\n{}",
        pages[0].subject, pages[0].body
    ));
}

#[tokio::test]
async fn a_failure_pages_and_other_state_changes_do_not() {
    let mut world = World::serving(T0, "fraud-scorer-v1", "AllTraffic", "fraud-scorer-v1", 4)
        .with_endpoint_alarm("fraud-scorer-5xx");
    world.next_update =
        guardrails_tests::world::UpdateOutcome::ReturnsToOldConfig("image not found".to_owned());
    let h = Harness::new(world);
    let last = rolled_back(&h).await;
    let pager = guardrails::memory::MemoryPager::default();
    let settings = notifier_settings();
    rollback_notifier(
        h.store.as_ref(),
        &pager,
        h.clock.as_ref(),
        &settings,
        &envelope(&last),
    )
    .await
    .unwrap();
    let page = &pager.pages()[0];
    assert!(
        page.subject
            .starts_with("[Guardrails] FAILED fraud-scorer: green provisioning failed"),
        "{}",
        page.subject
    );
    assert!(
        page.body
            .contains("What happened:   green provisioning failed: image not found"),
        "{}",
        page.body
    );
    let first = h.bus.events()[0].clone();
    let ignored = rollback_notifier(
        h.store.as_ref(),
        &pager,
        h.clock.as_ref(),
        &settings,
        &envelope(&first),
    )
    .await
    .unwrap();
    assert!(matches!(ignored, Handled::Ignored { .. }));
    assert_eq!(pager.pages().len(), 1);
}

/// A state-change event claiming an outcome the table does not hold (forged, or about a
/// deployment still running) neither pages nor takes the page of the real outcome.
#[tokio::test]
async fn an_outcome_event_the_table_does_not_back_neither_pages_nor_claims_the_page() {
    let h = Harness::new(
        World::serving(T0, "fraud-scorer-v1", "AllTraffic", "fraud-scorer-v1", 4)
            .with_endpoint_alarm("fraud-scorer-5xx")
            .with_bad_model("fraud-scorer-v2"),
    );
    let pager = guardrails::memory::MemoryPager::default();
    let forged = rollback_notifier(
        h.store.as_ref(),
        &pager,
        h.clock.as_ref(),
        &notifier_settings(),
        &sample("guardrails-deployment-rolled-back.json"),
    )
    .await
    .unwrap();
    assert!(
        matches!(&forged, Handled::Ignored { reason, .. } if reason.contains("has no outcome in the table")),
        "{forged:?}"
    );
    // The same forgery about a real deployment, before it has ended.
    start_deployment(
        &h.driver,
        &Settings::default(),
        &sample("command-deploy.json"),
    )
    .await
    .unwrap();
    let first = h.bus.events()[0].clone();
    let mut claim = first.clone();
    claim.outcome = Some(guardrails::events::PhaseKind::RolledBack);
    claim.state = guardrails::events::PhaseKind::RolledBack;
    claim.cause_text = "forged".to_owned();
    let early = rollback_notifier(
        h.store.as_ref(),
        &pager,
        h.clock.as_ref(),
        &notifier_settings(),
        &envelope(&claim),
    )
    .await
    .unwrap();
    assert!(matches!(early, Handled::Ignored { .. }), "{early:?}");
    assert!(pager.pages().is_empty());
    // The real rollback pages, from the table, whatever the event said.
    h.run_to_end("fraud-scorer").await.unwrap();
    let paged = rollback_notifier(
        h.store.as_ref(),
        &pager,
        h.clock.as_ref(),
        &notifier_settings(),
        &envelope(&claim),
    )
    .await
    .unwrap();
    assert!(matches!(paged, Handled::Paged { .. }), "{paged:?}");
    let page = &pager.pages()[0];
    assert!(!page.body.contains("forged"), "{}", page.body);
    assert!(
        page.subject
            .starts_with("[Guardrails] ROLLED BACK fraud-scorer"),
        "{}",
        page.subject
    );
}

/// Found by the simulation (a request delivered again after its deployment had ended ran the
/// same deployment a second time): the deployment id is remembered.
#[tokio::test]
async fn a_request_delivered_again_after_its_deployment_ended_does_not_run_it_twice() {
    let h = harness();
    let request = sample("command-deploy.json");
    start_deployment(&h.driver, &Settings::default(), &request)
        .await
        .unwrap();
    assert_eq!(
        h.run_to_end("fraud-scorer").await.unwrap(),
        guardrails::core::Phase::Succeeded
    );
    let again = start_deployment(&h.driver, &Settings::default(), &request)
        .await
        .unwrap();
    assert!(
        matches!(&again, Handled::Ignored { reason, .. } if reason.starts_with("duplicate request: deployment d-6a7e8febb491 already ran")),
        "{again:?}"
    );
    assert!(
        h.store.load("fraud-scorer").await.unwrap().is_none(),
        "nothing started"
    );
}

/// Found by the simulation (seed 17: a failure whose state-change event was lost never
/// paged): the sweep publishes outcomes still unpaged after two minutes again.
#[tokio::test]
async fn the_sweep_publishes_an_unpaged_outcome_again_so_a_lost_event_still_pages() {
    let mut world = World::serving(T0, "fraud-scorer-v1", "AllTraffic", "fraud-scorer-v1", 4)
        .with_endpoint_alarm("fraud-scorer-5xx");
    world.next_update =
        guardrails_tests::world::UpdateOutcome::ReturnsToOldConfig("capacity".to_owned());
    let h = Harness::new(world);
    rolled_back(&h).await;
    let published = h.bus.events().len();
    h.advance_to(h.clock_now().plus_secs(180));
    bake_watcher(
        &h.driver,
        &Settings::default(),
        &sample("scheduled-sweep.json"),
    )
    .await
    .unwrap();
    let again: Vec<_> = h.bus.events()[published..].to_vec();
    assert_eq!(again.len(), 1, "the failure's outcome, published again");
    let pager = guardrails::memory::MemoryPager::default();
    rollback_notifier(
        h.store.as_ref(),
        &pager,
        h.clock.as_ref(),
        &notifier_settings(),
        &envelope(&again[0]),
    )
    .await
    .unwrap();
    assert_eq!(pager.pages().len(), 1);
    h.advance_to(h.clock_now().plus_secs(180));
    bake_watcher(
        &h.driver,
        &Settings::default(),
        &sample("scheduled-sweep.json"),
    )
    .await
    .unwrap();
    assert_eq!(
        h.bus.events().len(),
        published + 1,
        "paged: not published again"
    );
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

#[tokio::test]
async fn a_dry_run_answers_with_the_plan_and_its_preflight_and_changes_nothing() {
    let h = harness();
    let request = edited("command-deploy.json", |b| b["dryRun"] = json!(true));
    let handled = start_deployment(&h.driver, &Settings::default(), &request)
        .await
        .unwrap();
    let Handled::Planned { text, plan, .. } = &handled else {
        panic!("expected a plan, got {handled:?}");
    };
    assert!(text.contains("Preflight, before any change:"), "{text}");
    assert!(text.contains("  ok        endpoint-in-service"), "{text}");
    assert!(plan.preflight.as_ref().is_some_and(|p| !p.is_blocked()));
    assert!(h.store.load("fraud-scorer").await.unwrap().is_none());
    assert!(h.ports.log().is_empty(), "nothing was changed");
}

#[tokio::test]
async fn a_blocking_preflight_refuses_before_any_change() {
    // The policy names fraud-scorer-5xx, which does not exist here.
    let h = Harness::new(World::serving(
        T0,
        "fraud-scorer-v1",
        "AllTraffic",
        "fraud-scorer-v1",
        4,
    ));
    let handled = start_deployment(
        &h.driver,
        &Settings::default(),
        &sample("command-deploy.json"),
    )
    .await
    .unwrap();
    let Handled::Refused { reason, .. } = &handled else {
        panic!("expected a refusal, got {handled:?}");
    };
    assert!(
        reason.starts_with("preflight: alarm fraud-scorer-5xx does not exist"),
        "{reason}"
    );
    assert!(h.ports.log().is_empty(), "nothing was changed");
    assert_eq!(h.bus.refusals().len(), 1);
}

#[tokio::test]
async fn a_native_dry_run_plans_for_sagemaker_with_the_native_checks() {
    let h = harness();
    let handled = start_deployment(
        &h.driver,
        &Settings::default(),
        &sample("command-deploy-native-dry-run.json"),
    )
    .await
    .unwrap();
    let Handled::Planned { text, plan, .. } = &handled else {
        panic!("expected a plan, got {handled:?}");
    };
    assert_eq!(plan.engine, guardrails::policy::Engine::Native);
    assert_eq!(
        plan.green.variant_name, "AllTraffic",
        "native keeps blue's variant name"
    );
    assert!(text.contains("  ok        variant-names-match"), "{text}");
    assert!(text.contains("  ok        native-supported"), "{text}");
    assert!(h.store.load("fraud-scorer").await.unwrap().is_none());
}
