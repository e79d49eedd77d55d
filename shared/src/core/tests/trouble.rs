//! Refusals and failed calls: GIVEN a phase and what AWS refused (or how often a call failed),
//! WHEN deciding, THEN the deployment ends the way invariant 8 asks, cleaning up what it can and
//! saying what is left.

use super::*;

const DENIED: &str = "AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/r/f is not authorized to perform: sagemaker:UpdateEndpoint";

fn refused(phase: Phase, api: &str) -> Deployment {
    deployment(phase).refused(api, DENIED)
}

fn refusal_cause(d: &Decision) -> (String, String) {
    match d.transitions.first().map(|t| &t.cause) {
        Some(Cause::Refused {
            api, left_behind, ..
        }) => (api.clone(), left_behind.clone()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_refusal_before_sagemaker_took_the_update_fails_and_removes_what_was_made() {
    let d =
        refused(provisioning(false), "sagemaker:UpdateEndpoint").decide(&on_blue(), None, at(60));
    assert!(matches!(d.deployment.phase, Phase::Failed { .. }));
    let (api, left) = refusal_cause(&d);
    assert_eq!(api, "sagemaker:UpdateEndpoint");
    assert!(left.starts_with("nothing changed"), "{left}");
    assert_eq!(
        action_names(&d.actions),
        vec![
            "delete alarms guardrails-d1-errors,guardrails-d1-errors-final",
            "delete guardrails-d1-blue-green",
            "delete guardrails-d1-green"
        ]
    );
    assert!(d.deployment.trouble.refused.is_none(), "decided on once");
}

#[test]
fn a_refusal_after_the_update_was_taken_rolls_back() {
    let d = refused(provisioning(true), "cloudwatch:PutMetricAlarm").decide(
        &busy(on_blue(), Some(BG)),
        None,
        at(60),
    );
    assert!(matches!(
        d.deployment.phase,
        Phase::RollingBack {
            cause: Cause::Refused { .. },
            ..
        }
    ));
}

#[test]
fn a_refusal_in_a_bake_rolls_back_to_blue_at_once() {
    let d = refused(
        Phase::Baking {
            step: 0,
            until: at(1000),
        },
        "sagemaker:UpdateEndpointWeightsAndCapacities",
    )
    .decide(&on_blue_green(10.0, 1), None, at(500));
    assert_eq!(d.transitions.len(), 1);
    assert!(matches!(d.deployment.phase, Phase::RollingBack { .. }));
    assert_eq!(d.actions, vec![weights(0.0)]);
}

#[test]
fn a_refused_rollback_fails_saying_what_is_left_and_what_to_do() {
    let d = refused(
        rolling_back_phase(UpdateProgress::default()),
        "sagemaker:UpdateEndpoint",
    )
    .decide(&on_blue_green(0.0, 1), None, at(900));
    assert!(matches!(d.deployment.phase, Phase::Failed { .. }));
    let (_, left) = refusal_cause(&d);
    assert!(
        left.contains("every request is on blue")
            && left.contains("UpdateEndpoint with EndpointConfigName fraud-v1"),
        "{left}"
    );
    assert!(d.actions.is_empty());
}

#[test]
fn a_refused_removal_of_blue_fails_saying_how_to_finish() {
    let d = refused(
        Phase::RemovingBlue {
            since: at(2000),
            update: UpdateProgress::default(),
        },
        "sagemaker:CreateEndpointConfig",
    )
    .decide(&on_blue_green(100.0, 4), None, at(2100));
    let (_, left) = refusal_cause(&d);
    assert!(left.contains("passed its final bake"), "{left}");
    assert!(left.contains(GREEN), "{left}");
}

#[test]
fn a_native_refusal_before_sagemaker_runs_fails_and_deletes_the_new_config() {
    let d = native::started()
        .refused("sagemaker:CreateEndpointConfig", DENIED)
        .decide(&on_blue(), None, at(10));
    assert!(matches!(d.deployment.phase, Phase::Failed { .. }));
    assert_eq!(action_names(&d.actions), vec!["delete guardrails-d1-green"]);
}

#[test]
fn a_failed_look_decides_nothing_but_the_deadline_still_holds() {
    let baking = deployment(Phase::Baking {
        step: 0,
        until: at(1000),
    });
    let blind = Observation::unseen(
        "sagemaker:DescribeEndpoint",
        "503 Service Unavailable",
        false,
    );
    let d = baking.decide(&blind, None, at(500));
    assert!(d.transitions.is_empty() && d.actions.is_empty());
    assert!(d.wake_at.is_some());
    // No alarm can be read, but that is not a missing alarm: no rollback for it.
    let late = baking.decide(&blind, None, at(3_600));
    assert!(matches!(
        late.deployment.phase,
        Phase::RollingBack {
            cause: Cause::TimedOut { .. },
            ..
        }
    ));
}

#[test]
fn failures_worth_retrying_count_and_become_a_refusal_past_the_bound() {
    let mut d = deployment(provisioning(true));
    // A burst: ten failures within a minute are not enough.
    for i in 0..MAX_FAILURES_IN_A_ROW {
        d = d.call_failed("sagemaker:DescribeEndpoint", "503", at(i));
    }
    assert!(d.trouble.refused.is_none());
    assert_eq!(d.trouble.failures_in_a_row, MAX_FAILURES_IN_A_ROW);
    // Failing on for ten minutes is.
    let d = d.call_failed("sagemaker:DescribeEndpoint", "503", at(MIN_FAILING_SECS));
    let refusal = d.trouble.refused.clone().unwrap();
    assert_eq!(refusal.api, "sagemaker:DescribeEndpoint");
    assert!(
        refusal.message.contains("stopped retrying"),
        "{}",
        refusal.message
    );
    assert_eq!(d.trouble.failures, MAX_FAILURES_IN_A_ROW + 1);
    // A clean invocation ends a run (the total is kept for the record).
    let d = deployment(provisioning(true))
        .call_failed("x", "503", at(0))
        .calls_succeeded();
    assert_eq!(d.trouble.failures_in_a_row, 0);
    assert_eq!(d.trouble.failures, 1);
}

#[test]
fn a_refusal_after_the_end_is_noted_not_decided() {
    let d = deployment(Phase::Succeeded).refused("sagemaker:DeleteEndpointConfig", DENIED);
    assert!(d.trouble.refused.is_none());
    assert_eq!(d.trouble.after_end.len(), 1);
}

#[test]
fn an_abort_ends_a_rollback_that_aws_keeps_refusing() {
    let stuck = refused(
        rolling_back_phase(UpdateProgress::default()),
        "sagemaker:UpdateEndpoint",
    );
    let abort = Command::Abort {
        by: "oncall".to_owned(),
        reason: "stop".to_owned(),
    };
    let d = stuck.decide(
        &Observation::unseen("sagemaker:DescribeEndpoint", DENIED, true),
        Some(&abort),
        at(900),
    );
    assert!(matches!(
        d.deployment.phase,
        Phase::Failed {
            cause: Cause::RollbackAborted { .. }
        }
    ));
}
