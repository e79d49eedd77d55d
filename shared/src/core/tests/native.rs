//! The native engine: SageMaker runs the rollout; the core starts it, records its progress and
//! classifies the outcome, including the silent ones.

use super::*;

fn native_plan() -> Plan {
    native_plan_with("Guardrails: { Engine: native }")
}

fn native_plan_with(guardrails: &str) -> Plan {
    let yaml = format!(
        r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: CANARY
      CanarySize: {{ Type: CAPACITY_PERCENT, Value: 25 }}
      WaitIntervalInSeconds: 300
    TerminationWaitInSeconds: 600
    MaximumExecutionTimeoutInSeconds: 3600
  AutoRollbackConfiguration:
    Alarms: [{{ AlarmName: {NAMED} }}]
{guardrails}
"#
    );
    let policy = Policy::from_yaml(&yaml).unwrap();
    let (fleet, green) = fleet_and_green(4, "blue");
    Plan::new("d1", &policy, &fleet, &green).unwrap()
}

pub(super) fn started() -> Deployment {
    Deployment::start(native_plan(), T0).unwrap().0
}

fn accepted(mut d: Deployment) -> Deployment {
    d = d.update_accepted(GREEN, T0);
    d
}

fn native_obs(status: EndpointStatus, config: &str, progress: &[(&str, &str)]) -> Observation {
    let mut obs = endpoint(status, config, vec![variant("blue", 1.0, 4)]);
    obs.alarms.retain(|name, _| name == NAMED);
    if let Some(e) = obs.endpoint.as_mut() {
        if status.is_busy() {
            e.pending_config_name = Some(GREEN.to_owned());
        }
        e.progress = progress
            .iter()
            .map(|(status, message)| Progress {
                variant_name: "blue".to_owned(),
                status: (*status).to_owned(),
                message: (*message).to_owned(),
            })
            .collect();
    }
    obs
}

#[test]
fn a_native_deployment_starts_following_sagemaker_with_the_longer_deadline() {
    let d = started();
    assert!(matches!(d.phase, Phase::NativeDeploying { .. }));
    // The policy's timeout (3,600 s) plus SETTLE_SECS for SageMaker's own rollback.
    assert_eq!(d.deadline, at(3_600 + SETTLE_SECS));
}

#[test]
fn it_creates_the_new_config_and_hands_sagemaker_the_deployment_config() {
    let decision = started().decide(&native_obs(EndpointStatus::InService, BLUE, &[]), None, T0);
    let plan = native_plan();
    assert_eq!(
        decision.actions,
        vec![
            Action::CreateEndpointConfig {
                config_name: GREEN.to_owned(),
                from_config: BLUE.to_owned(),
                variants: vec![ConfigVariant::New {
                    like: "blue".to_owned(),
                    variant_name: "blue".to_owned(),
                    model_name: "fraud-v2".to_owned(),
                    instance_type: "ml.m5.xlarge".to_owned(),
                    instance_count: 4,
                    initial_weight: 1.0,
                }],
            },
            Action::UpdateEndpoint {
                config_name: GREEN.to_owned(),
                deployment_config: plan.native_config.clone(),
                retain_variant_properties: false,
            },
        ]
    );
    assert!(plan.native_config.is_some());
    assert!(decision.transitions.is_empty());
}

#[test]
fn sagemakers_progress_is_recorded_once_per_change() {
    let d = accepted(started());
    let baking = [(
        "Baking",
        "Baking for 300 seconds (WaitIntervalInSeconds) with traffic enabled on canary capacity of 1 instance(s).",
    )];
    let obs = native_obs(EndpointStatus::Updating, BLUE, &baking);
    let first = d.decide(&obs, None, at(60));
    assert_eq!(
        causes(&first),
        vec![Cause::SageMakerProgress {
            variant_name: "blue".to_owned(),
            status: "Baking".to_owned(),
            message: baking[0].1.to_owned(),
        }]
    );
    assert!(first.actions.is_empty());
    let again = first.deployment.decide(&obs, None, at(90));
    assert!(
        again.transitions.is_empty(),
        "the same progress is not recorded twice"
    );
    assert_eq!(again.deployment.phase, first.deployment.phase);
}

#[test]
fn in_service_on_the_new_config_is_success() {
    let d = accepted(started());
    let decision = d.decide(
        &native_obs(EndpointStatus::InService, GREEN, &[]),
        None,
        at(900),
    );
    assert_eq!(decision.deployment.phase, Phase::Succeeded);
    assert_eq!(
        causes(&decision),
        vec![Cause::Deployed {
            config_name: GREEN.to_owned()
        }]
    );
}

#[test]
fn back_on_the_old_config_after_an_alarm_is_a_rollback_by_that_alarm() {
    let d = accepted(started());
    let baking = [("Baking", "Baking for 300 seconds")];
    let during = with_alarm(
        native_obs(EndpointStatus::Updating, BLUE, &baking),
        NAMED,
        AlarmState::Alarm,
    );
    let d = d.decide(&during, None, at(60)).deployment;
    // The alarm is OK again by the time SageMaker is back on blue: the rollback is still its.
    let mut after = native_obs(EndpointStatus::InService, BLUE, &[]);
    after = failure_reason(after, "Rolled back: alarm fraud-5xx fired");
    let decision = d.decide(&after, None, at(400));
    let Phase::RolledBack { cause } = &decision.deployment.phase else {
        panic!("expected RolledBack, got {:?}", decision.deployment.phase);
    };
    assert!(matches!(cause, Cause::AlarmFired { alarm_name, .. } if alarm_name == NAMED));
    assert_eq!(
        decision.actions,
        vec![Action::DeleteEndpointConfig {
            config_name: GREEN.to_owned()
        }]
    );
}

#[test]
fn back_on_the_old_config_after_traffic_moved_is_a_rollback_with_sagemakers_reason() {
    let d = accepted(started());
    let shifting = [("ActivatingTraffic", "Shifting traffic to canary capacity")];
    let d = d
        .decide(
            &native_obs(EndpointStatus::Updating, BLUE, &shifting),
            None,
            at(60),
        )
        .deployment;
    let after = failure_reason(
        native_obs(EndpointStatus::InService, BLUE, &[]),
        "Deployment rolled back",
    );
    let decision = d.decide(&after, None, at(400));
    assert_eq!(
        decision.deployment.phase,
        Phase::RolledBack {
            cause: Cause::SageMakerRolledBack {
                reason: "Deployment rolled back".to_owned()
            }
        }
    );
}

#[test]
fn back_on_the_old_config_with_no_reason_is_the_silent_failure_not_success() {
    let d = accepted(started());
    let decision = d.decide(
        &native_obs(EndpointStatus::InService, BLUE, &[]),
        None,
        at(600),
    );
    let Phase::Failed {
        cause: Cause::ProvisioningFailed { reason },
    } = &decision.deployment.phase
    else {
        panic!("expected Failed, got {:?}", decision.deployment.phase);
    };
    assert!(reason.contains("no FailureReason"), "{reason}");
}

#[test]
fn update_rollback_failed_fails_with_the_recovery_step() {
    let d = accepted(started());
    let obs = failure_reason(
        native_obs(EndpointStatus::UpdateRollbackFailed, BLUE, &[]),
        "Rollback failed: insufficient capacity",
    );
    let decision = d.decide(&obs, None, at(600));
    let Phase::Failed {
        cause: Cause::RollbackFailed { reason, recovery },
    } = &decision.deployment.phase
    else {
        panic!("expected Failed, got {:?}", decision.deployment.phase);
    };
    assert_eq!(reason, "Rollback failed: insufficient capacity");
    assert!(
        recovery.contains(&format!("EndpointConfigName {BLUE}")),
        "{recovery}"
    );
    assert!(
        decision.actions.is_empty(),
        "nothing is touched on a mixed fleet"
    );
}

#[test]
fn an_update_still_running_past_the_deadline_times_out() {
    let d = accepted(started());
    let deadline = d.deadline;
    let busy = native_obs(EndpointStatus::Updating, BLUE, &[]);
    let before = d.decide(&busy, None, at(60));
    assert!(before.wake_at.is_some_and(|w| w <= deadline));
    let after = d.decide(&busy, None, deadline);
    assert_eq!(
        after.deployment.phase,
        Phase::Failed {
            cause: Cause::TimedOut { deadline }
        }
    );
}

#[test]
fn a_failed_endpoint_and_a_foreign_config_fail_the_deployment() {
    let d = accepted(started());
    let broken = d.decide(&native_obs(EndpointStatus::Failed, BLUE, &[]), None, at(60));
    assert!(matches!(
        broken.deployment.phase,
        Phase::Failed {
            cause: Cause::EndpointBroken { .. }
        }
    ));
    let foreign = d.decide(
        &native_obs(EndpointStatus::InService, "someone-else", &[]),
        None,
        at(60),
    );
    assert!(matches!(
        foreign.deployment.phase,
        Phase::Failed {
            cause: Cause::ChangedOutsideGuardrails { .. }
        }
    ));
}

#[test]
fn an_abort_waits_for_sagemaker_then_returns_the_endpoint_to_the_old_config() {
    let d = accepted(started());
    let abort = Command::Abort {
        by: "oncall".to_owned(),
        reason: "looks bad".to_owned(),
    };
    // SageMaker cannot be stopped: Guardrails waits for it...
    let decision = d.decide(
        &native_obs(EndpointStatus::Updating, BLUE, &[]),
        Some(&abort),
        at(60),
    );
    assert!(matches!(
        decision.deployment.phase,
        Phase::RollingBack {
            cause: Cause::Aborted { .. },
            ..
        }
    ));
    assert!(decision.actions.is_empty());
    // ... and once SageMaker has deployed the new config, puts the old one back.
    let on_new = decision.deployment.decide(
        &native_obs(EndpointStatus::InService, GREEN, &[]),
        None,
        at(120),
    );
    assert_eq!(
        on_new.actions,
        vec![Action::UpdateEndpoint {
            config_name: BLUE.to_owned(),
            deployment_config: None,
            retain_variant_properties: true,
        }]
    );
    let back = on_new.deployment.decide(
        &native_obs(EndpointStatus::InService, BLUE, &[]),
        None,
        at(600),
    );
    assert!(matches!(back.deployment.phase, Phase::RolledBack { .. }));
    assert_eq!(
        back.actions,
        vec![Action::DeleteEndpointConfig {
            config_name: GREEN.to_owned(),
        }]
    );
}

#[test]
fn an_endpoint_busy_with_someone_elses_update_is_waited_for() {
    let d = started();
    let mut obs = native_obs(EndpointStatus::Updating, BLUE, &[]);
    if let Some(e) = obs.endpoint.as_mut() {
        e.pending_config_name = Some("someone-elses".to_owned());
    }
    let decision = d.decide(&obs, None, at(60));
    assert!(decision.actions.is_empty());
    let Phase::NativeDeploying { update, .. } = decision.deployment.phase else {
        panic!("still deploying");
    };
    assert_eq!(update.accepted_at, None);
}

#[test]
fn an_alarm_seen_before_sagemaker_runs_the_deployment_does_not_make_a_failure_a_rollback() {
    // Someone else's update is running while the alarm fires: SageMaker is not watching it for
    // this deployment yet.
    let mut busy = with_alarm(
        native_obs(EndpointStatus::Updating, BLUE, &[]),
        NAMED,
        AlarmState::Alarm,
    );
    if let Some(e) = busy.endpoint.as_mut() {
        e.pending_config_name = Some("someone-elses".to_owned());
    }
    let d = started().decide(&busy, None, at(30)).deployment;
    let d = accepted(d);
    let decision = d.decide(
        &native_obs(EndpointStatus::InService, BLUE, &[]),
        None,
        at(600),
    );
    assert!(
        matches!(
            decision.deployment.phase,
            Phase::Failed {
                cause: Cause::ProvisioningFailed { .. }
            }
        ),
        "{:?}",
        decision.deployment.phase
    );
}

#[test]
fn a_rollback_too_quick_to_be_seen_is_told_by_the_alarms_history() {
    // SageMaker provisioned, shifted, saw the alarm and rolled back between two looks: only
    // the alarm's history remembers it.
    let d = accepted(started());
    let mut after = native_obs(EndpointStatus::InService, BLUE, &[]);
    after.alarms_fired.insert(
        NAMED.to_owned(),
        (at(200), "Threshold Crossed: 1 datapoint [0.25]".to_owned()),
    );
    let decision = d.decide(&after, None, at(400));
    assert_eq!(
        decision.deployment.phase,
        Phase::RolledBack {
            cause: Cause::AlarmFired {
                alarm_name: NAMED.to_owned(),
                reason: "Threshold Crossed: 1 datapoint [0.25]".to_owned()
            }
        }
    );
    // An alarm that fired before SageMaker took the update is not this deployment's doing.
    let mut before = native_obs(EndpointStatus::InService, BLUE, &[]);
    before
        .alarms_fired
        .insert(NAMED.to_owned(), (T0.minus_secs(60), "earlier".to_owned()));
    let decision = d.decide(&before, None, at(400));
    assert!(
        matches!(
            decision.deployment.phase,
            Phase::Failed {
                cause: Cause::ProvisioningFailed { .. }
            }
        ),
        "{:?}",
        decision.deployment.phase
    );
}

// --- The judge under the native engine ------------------------------------------------------

const JUDGE: &str = "guardrails-d1-judge";

fn judged_native() -> Deployment {
    let plan = native_plan_with(
        "Guardrails:\n  Engine: native\n  Analysis: { WhenInconclusive: Pass, MinimumGreenRequests: 100 }",
    );
    Deployment::start(plan, T0).unwrap().0
}

/// Per-fleet counts, one minute each from T0: green 3% errors, blue 1%.
fn worse_counts(minutes: i64) -> Vec<Sample> {
    (0..minutes)
        .map(|m| Sample {
            at: Timestamp::from_epoch_ms(T0.epoch_ms() + m * 60_000),
            counts: crate::judge::Period {
                green_requests: 1_000.0,
                green_bad: 30.0,
                blue_requests: 3_000.0,
                blue_bad: 30.0,
            },
        })
        .collect()
}

fn with_judge_alarm(mut obs: Observation, state: AlarmState) -> Observation {
    obs.alarms.insert(
        JUDGE.to_owned(),
        AlarmView {
            state,
            reason: "Guardrails' judge found green worse than blue".to_owned(),
            since: None,
        },
    );
    obs
}

#[test]
fn the_judge_under_the_native_engine_has_an_alarm_sagemaker_watches() {
    let plan = judged_native().plan;
    assert_eq!(plan.judge_alarm_name().as_deref(), Some(JUDGE));
    let watched: Vec<String> = plan
        .native_config
        .as_ref()
        .and_then(|c| c.auto_rollback_configuration.as_ref())
        .map(|c| c.alarms.iter().map(|a| a.alarm_name.clone()).collect())
        .unwrap_or_default();
    assert_eq!(watched, vec![NAMED.to_owned(), JUDGE.to_owned()]);
    // Created before SageMaker is asked to deploy.
    let d = judged_native().decide(&native_obs(EndpointStatus::InService, BLUE, &[]), None, T0);
    let names = action_names(&d.actions);
    assert_eq!(names[0], format!("put alarm {JUDGE}"), "{names:?}");
    assert!(names.contains(&format!("update to {GREEN}")), "{names:?}");
}

#[test]
fn a_worse_green_puts_the_judges_alarm_in_alarm_once_and_sagemakers_rollback_is_the_judges() {
    let mut d = judged_native();
    d = d.update_accepted(GREEN, T0);
    // SageMaker bakes the canary; the judge's first look sees green serve.
    let baking = with_judge_alarm(
        native_obs(
            EndpointStatus::Updating,
            BLUE,
            &[("Baking", "Baking for 300 seconds")],
        ),
        AlarmState::InsufficientData,
    );
    let first = d.decide(&baking, None, at(10));
    assert_eq!(first.deployment.judged_since, Some(at(10)));
    // Ten minutes of per-fleet counts later: green is worse.
    let mut look = baking.clone();
    look.judged = Some(vec![worse_counts(10)]);
    let worse = first.deployment.decide(&look, None, at(610));
    assert!(
        matches!(
            causes(&worse).last(),
            Some(Cause::GreenWorse { step: 0, .. })
        ),
        "{:?}",
        causes(&worse)
    );
    assert_eq!(
        action_names(&worse.actions),
        vec![format!("raise alarm {JUDGE}")]
    );
    assert!(matches!(
        worse.deployment.phase,
        Phase::NativeDeploying {
            judged_worse: Some(_),
            ..
        }
    ));
    assert!(worse.deployment.first_bad_signal.is_some());
    // The next look raises nothing more: once is enough, the alarm keeps its state.
    let again = worse
        .deployment
        .decide(&with_judge_alarm(look, AlarmState::Alarm), None, at(620));
    assert!(again.actions.is_empty(), "{:?}", again.actions);
    // SageMaker rolled back on the judge's alarm: the cause is the judge's finding.
    let back = with_judge_alarm(
        native_obs(EndpointStatus::InService, BLUE, &[]),
        AlarmState::Alarm,
    );
    let end = again.deployment.decide(&back, None, at(700));
    let Phase::RolledBack {
        cause: Cause::GreenWorse { summary, .. },
    } = &end.deployment.phase
    else {
        panic!("{:?}", end.deployment.phase);
    };
    assert!(summary.contains("green 3.00% of"), "{summary}");
    assert_eq!(
        action_names(&end.actions),
        vec![format!("delete {GREEN}"), format!("delete alarms {JUDGE}")]
    );
}

#[test]
fn the_native_judge_needs_a_pass_when_inconclusive_and_room_among_sagemakers_alarms() {
    let policy = |analysis: &str, alarms: usize| {
        let names: Vec<String> = (0..alarms)
            .map(|i| format!("{{ AlarmName: a{i} }}"))
            .collect();
        format!(
            "BlueGreenUpdatePolicy:\n  TrafficRoutingConfiguration: {{ Type: CANARY, CanarySize: {{ Type: CAPACITY_PERCENT, Value: 25 }}, WaitIntervalInSeconds: 300 }}\nAutoRollbackConfiguration: {{ Alarms: [{}] }}\nGuardrails:\n  Engine: native\n  Analysis: {analysis}\n",
            names.join(", ")
        )
    };
    let (fleet, green) = fleet_and_green(4, "blue");
    let plan = |text: &str| Plan::new("d1", &Policy::from_yaml(text).unwrap(), &fleet, &green);
    let paths = |text: &str| -> Vec<String> {
        plan(text)
            .unwrap_err()
            .problems
            .into_iter()
            .map(|p| p.path)
            .collect()
    };
    assert_eq!(
        paths(&policy("{}", 1)),
        vec!["Guardrails.Analysis.WhenInconclusive"],
        "the default (Extend) cannot be honoured: SageMaker ends its bakes"
    );
    assert_eq!(
        paths(&policy("{ WhenInconclusive: Pass }", 10)),
        vec!["AutoRollbackConfiguration.Alarms"]
    );
    assert!(plan(&policy("{ WhenInconclusive: Pass }", 9)).is_ok());
}
