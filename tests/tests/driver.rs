//! The driver around the real core, with in-memory store, bus and waker and the stand-in
//! endpoint: GIVEN a deployment, WHEN invocations run on wake-ups and world changes (some of
//! them crashing at chosen points, racing or throttled), THEN it converges, with one audit entry
//! and one event per transition.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use guardrails::core::{Cause, Phase};
use guardrails::driver::{DriverError, Outcome};
use guardrails::events::PhaseKind;
use guardrails::ports::{AuditEntry, Store};
use guardrails_tests::harness::{Crash, Harness, RacingStore};
use guardrails_tests::world::{UpdateOutcome, World};
use guardrails_tests::{T0, example_policy, sample_plan};

const ENDPOINT: &str = "fraud-scorer";

fn endpoint() -> World {
    World::serving(T0, "fraud-scorer-v1", "AllTraffic", "fraud-scorer-v1", 4)
        .with_endpoint_alarm("fraud-scorer-5xx")
}

fn canary() -> guardrails::plan::Plan {
    sample_plan(&example_policy("canary.yaml"), 4)
}

/// Checks what every finished deployment must have: an archived record, one audit entry per
/// transition numbered without gaps, and one event per audit entry with the same ids.
async fn assert_trail(h: &Harness) -> Vec<AuditEntry> {
    assert!(h.store.load(ENDPOINT).await.unwrap().is_none(), "archived");
    let history = h.memory.history(ENDPOINT);
    assert_eq!(history.len(), 1);
    let audit = h.store.audit(ENDPOINT, "d1").await.unwrap();
    let sequences: Vec<u64> = audit.iter().map(|a| a.sequence).collect();
    assert_eq!(sequences, (0..audit.len() as u64).collect::<Vec<_>>());
    let mut event_ids: Vec<String> = h.bus.events().iter().map(|e| e.event_id.clone()).collect();
    event_ids.sort();
    event_ids.dedup();
    assert_eq!(
        event_ids.len(),
        audit.len(),
        "one event per transition (duplicates allowed)"
    );
    audit
}

#[tokio::test]
async fn a_canary_deployment_runs_to_success() {
    let h = Harness::new(endpoint());
    h.driver.start(canary()).await.unwrap();
    assert_eq!(h.run_to_end(ENDPOINT).await.unwrap(), Phase::Succeeded);
    assert_eq!(h.ports.world().config_name(), "guardrails-d1-green");
    let audit = assert_trail(&h).await;
    assert_eq!(
        audit.last().map(|a| a.transition.cause.clone()),
        Some(Cause::FinalBakePassed)
    );
    let last = h.bus.events().last().cloned().unwrap();
    assert_eq!(last.outcome, Some(PhaseKind::Succeeded));
}

#[tokio::test]
async fn an_alarm_during_the_canary_bake_rolls_back_to_the_original_config() {
    let h = Harness::new(endpoint().with_bad_model("fraud-scorer-v2"));
    h.driver.start(canary()).await.unwrap();
    let end = h.run_to_end(ENDPOINT).await.unwrap();
    assert!(
        matches!(
            end,
            Phase::RolledBack {
                cause: Cause::AlarmFired { .. }
            }
        ),
        "{end:?}"
    );
    assert_eq!(h.ports.world().config_name(), "fraud-scorer-v1");
    assert_eq!(
        h.ports.world().traffic(),
        vec![("AllTraffic".to_owned(), 1.0)]
    );
    assert_trail(&h).await;
    let rolled_back = h
        .bus
        .events()
        .into_iter()
        .find(|e| e.state == PhaseKind::RollingBack)
        .unwrap();
    assert_eq!(
        rolled_back.observed_green_percent,
        Some(10.0),
        "green's share when it tripped"
    );
}

#[tokio::test]
async fn an_injected_failed_update_ends_failed() {
    let mut world = endpoint();
    world.next_update = UpdateOutcome::ReturnsToOldConfig("capacity".to_owned());
    let h = Harness::new(world);
    h.driver.start(canary()).await.unwrap();
    let end = h.run_to_end(ENDPOINT).await.unwrap();
    assert_eq!(
        end,
        Phase::Failed {
            cause: Cause::ProvisioningFailed {
                reason: "capacity".to_owned()
            }
        }
    );
    assert!(!h.ports.world().config_exists("guardrails-d1-blue-green"));
    assert_trail(&h).await;
}

#[tokio::test]
async fn a_second_deployment_for_a_busy_endpoint_is_refused_and_changes_nothing() {
    let h = Harness::new(endpoint());
    h.driver.start(canary()).await.unwrap();
    let before = h.store.load(ENDPOINT).await.unwrap();
    let mut second = canary();
    second.deployment_id = "d2".to_owned();
    let refused = h.driver.start(second).await.unwrap_err();
    assert_eq!(
        refused,
        DriverError::AlreadyActive {
            endpoint: ENDPOINT.to_owned(),
            active_deployment: "d1".to_owned()
        }
    );
    assert!(!refused.is_retryable());
    assert_eq!(h.store.load(ENDPOINT).await.unwrap(), before);
}

/// GIVEN a deployment that ended (its final event out) whose invocation has not archived it yet,
/// WHEN the next deployment is asked for, THEN it starts: the ended one is archived first, as
/// its next invocation would, rather than the request refused as if the endpoint were busy.
#[tokio::test]
async fn a_deployment_that_ended_but_is_not_archived_yet_does_not_block_the_next() {
    let h = Harness::new(endpoint());
    h.driver.start(canary()).await.unwrap();
    let mut ended = h.store.load(ENDPOINT).await.unwrap().unwrap();
    let version = ended.version;
    ended.version += 1;
    ended.deployment.phase = Phase::RolledBack {
        cause: Cause::RollbackComplete,
    };
    ended.outbox = Default::default();
    h.store.save(&ended, version, &[]).await.unwrap();
    let mut second = canary();
    second.deployment_id = "d2".to_owned();
    h.driver.start(second).await.unwrap();
    let active = h.store.load(ENDPOINT).await.unwrap().unwrap();
    assert_eq!(active.deployment.plan.deployment_id, "d2");
    let history = h.memory.history(ENDPOINT);
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].deployment.plan.deployment_id, "d1");
}

#[tokio::test]
async fn a_crash_after_acting_before_saving_still_converges() {
    for n in 1..=7 {
        let h = Harness::new(endpoint());
        h.ports.crash(Some(Crash::AfterAct(n)));
        let _ = h.driver.start(canary()).await;
        assert_eq!(
            h.run_to_end(ENDPOINT).await.unwrap(),
            Phase::Succeeded,
            "crash after act #{n}"
        );
        assert_eq!(h.ports.crashes(), 1, "the crash after act #{n} happened");
        assert_trail(&h).await;
    }
}

#[tokio::test]
async fn a_crash_after_saving_before_acting_still_converges() {
    for n in 1..=7 {
        let h = Harness::new(endpoint());
        h.ports.crash(Some(Crash::BeforeAct(n)));
        let _ = h.driver.start(canary()).await;
        let end = h.run_to_end(ENDPOINT).await.unwrap();
        assert_eq!(end, Phase::Succeeded, "crash before act #{n}");
        assert_eq!(h.ports.crashes(), 1, "the crash before act #{n} happened");
        assert_trail(&h).await;
    }
}

#[tokio::test]
async fn a_crash_in_any_save_still_converges_without_losing_or_repeating_audit() {
    for n in 1..=12 {
        let h = Harness::new(endpoint().with_bad_model("fraud-scorer-v2"));
        h.store.fail_save(n);
        let _ = h.driver.start(canary()).await;
        let end = h.run_to_end(ENDPOINT).await.unwrap();
        assert!(
            matches!(end, Phase::RolledBack { .. }),
            "crash in save #{n}: {end:?}"
        );
        assert_eq!(h.store.crashes(), 1, "the crash in save #{n} happened");
        assert_trail(&h).await;
    }
}

#[tokio::test]
async fn throttled_calls_back_off_and_go_through() {
    let h = Harness::new(endpoint());
    h.ports.throttle_next(3);
    let started = h.clock_now();
    h.driver.start(canary()).await.unwrap();
    assert!(h.clock_now() > started, "backed off on virtual time");
    assert_eq!(h.run_to_end(ENDPOINT).await.unwrap(), Phase::Succeeded);
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
async fn two_drivers_racing_on_one_endpoint_never_both_act() {
    let h = Harness::new(endpoint());
    h.driver.start(canary()).await.unwrap();
    // Green is provisioned; both invocations will see it and want the first shift.
    h.advance_to(T0.plus_secs(600));
    let log_before = h.ports.log().len();
    let racing = Arc::new(RacingStore::new(h.store.clone()));
    let mut first = h.another_driver();
    first.store = racing.clone();
    let mut second = h.another_driver();
    second.store = racing.clone();
    let (a, b) = tokio::join!(
        first.reconcile(ENDPOINT, None),
        second.reconcile(ENDPOINT, None)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let shifted = |o: &Outcome| match o {
        Outcome::Reconciled(r) => r
            .transitions
            .iter()
            .any(|t| t.cause == Cause::GreenProvisioned),
        Outcome::NoDeployment => false,
    };
    assert_eq!(racing.conflicts(), 1, "the conditional write decided");
    assert!(
        shifted(&a) != shifted(&b),
        "exactly one invocation decided the shift"
    );
    let acted: Vec<String> = h.ports.log()[log_before..].to_vec();
    assert_eq!(
        acted,
        vec!["SetWeights green 10%".to_owned()],
        "the loser did not act"
    );
    let audit = h.store.audit(ENDPOINT, "d1").await.unwrap();
    let provisioned = audit
        .iter()
        .filter(|a| a.transition.cause == Cause::GreenProvisioned);
    assert_eq!(provisioned.count(), 1, "one transition recorded once");
    assert_eq!(h.run_to_end(ENDPOINT).await.unwrap(), Phase::Succeeded);
}

/// Per-minute counts from T0 for two hours: green 100 requests with 5 failed, blue 900 with 9.
fn served_per_minute() -> Vec<guardrails::core::Sample> {
    (0..120)
        .map(|m| guardrails::core::Sample {
            at: T0.plus_secs(m * 60),
            counts: guardrails::judge::Period {
                green_requests: 100.0,
                green_bad: 5.0,
                blue_requests: 900.0,
                blue_bad: 9.0,
            },
        })
        .collect()
}

#[tokio::test]
async fn a_rollback_counts_what_green_served_since_the_first_bad_signal() {
    let h = Harness::new(endpoint().with_bad_model("fraud-scorer-v2"));
    let error_rate = guardrails::policy::ComparedMetric::ErrorRate { include_4xx: false };
    h.metrics.set(error_rate, served_per_minute());
    h.driver.start(canary()).await.unwrap();
    let end = h.run_to_end(ENDPOINT).await.unwrap();
    assert!(matches!(end, Phase::RolledBack { .. }), "{end:?}");
    let record = h.memory.history(ENDPOINT).pop().unwrap().deployment;
    let blast = record.blast_radius.clone().expect("counted at the end");
    let signal = record
        .first_bad_signal
        .clone()
        .expect("the alarm is the signal");
    assert!(signal.what.starts_with("alarm "), "{signal:?}");
    assert_eq!(blast.signal.as_ref(), Some(&signal));
    // Every minute from the one green first served in to the end, and the failures with them.
    let minutes = blast.samples.len() as f64;
    assert!(minutes >= 1.0);
    assert_eq!(blast.green_requests, 100.0 * minutes);
    assert_eq!(blast.green_failed, 5.0 * minutes);
    assert_eq!(blast.blue_failed, 9.0 * minutes);
    let since = blast.since_signal_requests.unwrap();
    assert!(since > 0.0 && since <= blast.green_requests, "{blast:?}");
    assert_eq!(blast.since_signal_failed, Some(since / 20.0));
    let to_blue = blast.seconds_to_blue.unwrap();
    let restored = record.traffic_restored_at.unwrap();
    assert_eq!(
        to_blue,
        (restored.epoch_ms() - signal.at.epoch_ms()) as f64 / 1_000.0
    );
    // The final event carries it (without the per-period counts), and so does the page.
    let last = h.bus.events().last().cloned().unwrap();
    let carried = last.blast_radius.clone().unwrap();
    assert!(carried.samples.is_empty());
    let audit = h.store.audit(ENDPOINT, "d1").await.unwrap();
    let page = guardrails::page::page(&last, &audit, "guardrails-deployments");
    assert!(
        page.body.contains(&format!(
            "Blast radius:    green served {} requests, {} failed (5.00%; blue 1.00%)",
            guardrails::units::count(blast.green_requests),
            guardrails::units::count(blast.green_failed)
        )),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(&format!("since {} at ", signal.what))
            && page.body.contains("every request back on blue"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn a_success_counts_what_green_served_and_has_no_signal() {
    let h = Harness::new(endpoint());
    let error_rate = guardrails::policy::ComparedMetric::ErrorRate { include_4xx: false };
    h.metrics.set(error_rate, served_per_minute());
    h.driver.start(canary()).await.unwrap();
    assert_eq!(h.run_to_end(ENDPOINT).await.unwrap(), Phase::Succeeded);
    let record = h.memory.history(ENDPOINT).pop().unwrap().deployment;
    let blast = record.blast_radius.unwrap();
    assert!(blast.signal.is_none() && blast.seconds_to_blue.is_none());
    assert!(blast.since_signal().is_none());
    // From the minute removing blue began, what blue's variant name serves is the new model:
    // green's.
    let cutover = record.cutover_at.expect("blue was removed").epoch_ms();
    let (before, after): (Vec<&guardrails::core::Sample>, Vec<_>) = blast
        .samples
        .iter()
        .partition(|s| s.at.epoch_ms() + 60_000 <= cutover);
    assert!(!before.is_empty() && !after.is_empty(), "{blast:?}");
    assert!(after.iter().all(|s| s.counts.blue_requests == 0.0));
    assert_eq!(
        blast.green_requests,
        100.0 * before.len() as f64 + 1_000.0 * after.len() as f64
    );
    assert_eq!(blast.blue_requests, 900.0 * before.len() as f64);
}

#[tokio::test]
async fn counts_cloudwatch_will_not_give_are_noted_and_the_deployment_still_ends() {
    let h = Harness::new(endpoint().with_bad_model("fraud-scorer-v2"));
    h.metrics
        .refuse("not authorized to perform: cloudwatch:GetMetricData");
    h.driver.start(canary()).await.unwrap();
    let end = h.run_to_end(ENDPOINT).await.unwrap();
    assert!(matches!(end, Phase::RolledBack { .. }), "{end:?}");
    let record = h.memory.history(ENDPOINT).pop().unwrap().deployment;
    let blast = record.blast_radius.unwrap();
    assert!(
        blast
            .unread
            .as_deref()
            .unwrap_or_default()
            .contains("not authorized"),
        "{blast:?}"
    );
    assert!(
        blast.served().starts_with("not counted: "),
        "{}",
        blast.served()
    );
    // The signal and the seconds to blue do not depend on CloudWatch's counts.
    assert!(blast.seconds_to_blue.is_some() && blast.signal.is_some());
}

fn hooked() -> guardrails::plan::Plan {
    sample_plan(&example_policy("canary-with-hooks.yaml"), 4)
}

#[tokio::test]
async fn hooks_are_asked_before_green_serves_and_after_the_final_bake_then_it_succeeds() {
    use guardrails::core::HookAnswer;
    use guardrails::policy::HookPoint;
    let h = Harness::new(endpoint());
    let working = HookAnswer::InProgress {
        reason: "warming up".to_owned(),
    };
    let yes = HookAnswer::Succeeded {
        reason: "20 of 20 answered".to_owned(),
    };
    h.hooks.answer([working, yes.clone(), yes]);
    h.driver.start(hooked()).await.unwrap();
    assert_eq!(h.run_to_end(ENDPOINT).await.unwrap(), Phase::Succeeded);
    let calls = h.hooks.calls();
    let seen: Vec<(HookPoint, u32, f64)> = calls
        .iter()
        .map(|c| (c.payload.hook, c.payload.attempt, c.payload.green_percent))
        .collect();
    assert_eq!(
        seen,
        vec![
            (HookPoint::PreTraffic, 1, 0.0),
            (HookPoint::PreTraffic, 2, 0.0),
            (HookPoint::PostTraffic, 1, 100.0),
        ],
        "asked once per poll while it works, and never again once it answered"
    );
    let audit = assert_trail(&h).await;
    let passed = audit
        .iter()
        .filter(|a| matches!(a.transition.cause, Cause::HookPassed { .. }))
        .count();
    assert_eq!(passed, 2);
    // Green had no weight while the pre-traffic hook was asked.
    let first_shift = audit
        .iter()
        .position(|a| matches!(a.transition.cause, Cause::Shifted { .. }))
        .unwrap();
    let hook_passed = audit
        .iter()
        .position(|a| matches!(a.transition.cause, Cause::HookPassed { .. }))
        .unwrap();
    assert!(hook_passed < first_shift);
}

#[tokio::test]
async fn a_failing_post_traffic_hook_rolls_back_and_keeps_its_reason() {
    use guardrails::core::HookAnswer;
    let h = Harness::new(endpoint());
    h.hooks.answer([
        HookAnswer::Succeeded {
            reason: String::new(),
        },
        HookAnswer::Failed {
            reason: "p99 of the smoke requests is 2,400 ms".to_owned(),
        },
    ]);
    h.driver.start(hooked()).await.unwrap();
    let end = h.run_to_end(ENDPOINT).await.unwrap();
    let Phase::RolledBack {
        cause: Cause::HookFailed { reason, .. },
    } = &end
    else {
        panic!("{end:?}");
    };
    assert_eq!(reason, "p99 of the smoke requests is 2,400 ms");
    assert_eq!(h.ports.world().config_name(), "fraud-scorer-v1");
    assert_trail(&h).await;
    let record = h.memory.history(ENDPOINT).pop().unwrap().deployment;
    let signal = record.first_bad_signal.unwrap();
    assert!(signal.what.contains("post-traffic hook"), "{}", signal.what);
}

#[tokio::test]
async fn a_hook_lambda_will_not_invoke_rolls_back_and_says_so() {
    use guardrails::ports::ErrorKind;
    let h = Harness::new(endpoint());
    h.hooks.fail(
        ErrorKind::Refused,
        "ResourceNotFoundException: Function not found: arn:aws:lambda:us-east-1:123456789012:function:guardrails-hook-smoke-test",
    );
    h.driver.start(hooked()).await.unwrap();
    let end = h.run_to_end(ENDPOINT).await.unwrap();
    let Phase::RolledBack {
        cause: Cause::Refused { api, message, .. },
    } = &end
    else {
        panic!("{end:?}");
    };
    assert_eq!(api, "lambda:InvokeFunction");
    assert!(message.contains("Function not found"), "{message}");
    assert_eq!(h.ports.world().config_name(), "fraud-scorer-v1");
}
