//! Whole deployments, told step by step: GIVEN a policy and an endpoint, WHEN the core runs on
//! virtual time against a stand-in endpoint, THEN the transcript (time, what was seen, what was
//! done, each transition and its cause) is exactly the reviewed one in `snapshots/`.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use guardrails::core::{Cause, Command, Phase};
use guardrails_tests::transcript::{Run, run};
use guardrails_tests::world::{UpdateOutcome, World};
use guardrails_tests::{T0, example_policy, sample_plan};

fn endpoint(instances: u32) -> World {
    World::serving(
        T0,
        "fraud-scorer-v1",
        "AllTraffic",
        "fraud-scorer-v1",
        instances,
    )
    .with_endpoint_alarm("fraud-scorer-5xx")
}

fn story(policy: &str, world: World) -> Run {
    run(sample_plan(&example_policy(policy), 4), world, &[])
}

fn assert_back_on_blue(run: &Run) {
    assert_eq!(run.world.config_name(), "fraud-scorer-v1");
    assert_eq!(run.world.traffic(), vec![("AllTraffic".to_owned(), 1.0)]);
    assert!(
        !run.world.config_exists("guardrails-d1-blue-green"),
        "nothing left behind"
    );
    assert!(
        !run.world.alarm_exists("guardrails-d1-green-errors"),
        "nothing left behind"
    );
}

#[test]
fn canary_success() {
    let run = story("canary.yaml", endpoint(4));
    assert_eq!(run.deployment.phase, Phase::Succeeded);
    assert_eq!(run.world.config_name(), "guardrails-d1-green");
    assert_eq!(
        run.world.traffic(),
        vec![("AllTraffic".to_owned(), 1.0)],
        "the new model under blue's variant name"
    );
    insta::assert_snapshot!(run.transcript);
}

#[test]
fn linear_success() {
    let run = story("linear.json", endpoint(4));
    assert_eq!(run.deployment.phase, Phase::Succeeded);
    insta::assert_snapshot!(run.transcript);
}

#[test]
fn all_at_once_with_final_bake() {
    let run = story("all-at-once.yaml", endpoint(4));
    assert_eq!(run.deployment.phase, Phase::Succeeded);
    insta::assert_snapshot!(run.transcript);
}

#[test]
fn alarm_during_the_canary_bake_rolls_back_to_blue() {
    let run = story("canary.yaml", endpoint(4).with_bad_model("fraud-scorer-v2"));
    assert!(
        matches!(
            &run.deployment.phase,
            Phase::RolledBack {
                cause: Cause::AlarmFired { .. }
            }
        ),
        "{:?}",
        run.deployment.phase
    );
    assert_back_on_blue(&run);
    insta::assert_snapshot!(run.transcript);
}

/// The story of a provisioning whose update returns to blue with `reason` (empty: silently).
fn failed_provisioning(reason: &str) -> Run {
    let mut world = endpoint(4);
    world.next_update = UpdateOutcome::ReturnsToOldConfig(reason.to_owned());
    let run = story("canary.yaml", world);
    let failed = Phase::Failed {
        cause: Cause::ProvisioningFailed {
            reason: if reason.is_empty() {
                "the endpoint returned to InService on the old config with no FailureReason"
                    .to_owned()
            } else {
                reason.to_owned()
            },
        },
    };
    assert_eq!(run.deployment.phase, failed);
    assert_back_on_blue(&run);
    run
}

#[test]
fn green_provisioning_failure_ends_failed_with_nothing_left_behind() {
    let run = failed_provisioning("Failed to download model data for container \"v2\"");
    insta::assert_snapshot!(run.transcript);
}

#[test]
fn silent_provisioning_failure_is_reported_as_failed_not_success() {
    let run = failed_provisioning("");
    insta::assert_snapshot!(run.transcript);
}

#[test]
fn timeout_during_the_final_bake_rolls_back() {
    let mut world = endpoint(4);
    world.update_secs = 2_900;
    let run = story("canary.yaml", world);
    assert!(
        matches!(
            &run.deployment.phase,
            Phase::RolledBack {
                cause: Cause::TimedOut { .. }
            }
        ),
        "{:?}",
        run.deployment.phase
    );
    assert_back_on_blue(&run);
    insta::assert_snapshot!(run.transcript);
}

#[test]
fn explicit_steps_wait_for_approval_before_the_last_shift() {
    let approve = Command::Approve {
        by: "alice@example.com".to_owned(),
    };
    let plan = sample_plan(&example_policy("steps-with-approval.yaml"), 4);
    let run = run(plan, endpoint(4), &[(2_400, approve)]);
    assert_eq!(run.deployment.phase, Phase::Succeeded);
    assert_eq!(
        run.deployment.approved_by.as_deref(),
        Some("alice@example.com")
    );
    insta::assert_snapshot!(run.transcript);
}
