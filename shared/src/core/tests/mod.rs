//! Every transition of the variant engine, GIVEN a phase and an observation, WHEN deciding,
//! THEN the exact phase, cause and requests to SageMaker and CloudWatch.

use std::collections::BTreeMap;

use super::*;
use crate::plan::{Fleet, FleetVariant, GreenSpec, ScalableTarget, Suspended};
use crate::policy::Policy;
use crate::units::Share;

const T0: Timestamp = Timestamp::from_epoch_ms(1_700_000_000_000);
const BLUE: &str = "fraud-v1";
const BG: &str = "guardrails-d1-blue-green";
const GREEN: &str = "guardrails-d1-green";
const NAMED: &str = "fraud-5xx";
const TEMPLATED: &str = "guardrails-d1-errors";
/// The templated alarm of the final fleet, on blue's variant name.
const FINAL: &str = "guardrails-d1-errors-final";

fn at(secs: u32) -> Timestamp {
    T0.plus_secs(secs)
}

fn plan_with(guardrails: &str) -> Plan {
    let yaml = format!(
        r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: CANARY
      CanarySize: {{ Type: CAPACITY_PERCENT, Value: 10 }}
      WaitIntervalInSeconds: 300
    TerminationWaitInSeconds: 600
    MaximumExecutionTimeoutInSeconds: 3600
  AutoRollbackConfiguration:
    Alarms: [{{ AlarmName: {NAMED} }}]
Guardrails:
  Alarms:
    - {{ Name: errors, MetricName: Invocation5XXErrors, Statistic: Average, ComparisonOperator: GreaterThanThreshold, Threshold: 0.05, PeriodInSeconds: 60, EvaluationPeriods: 1 }}
{guardrails}
"#
    );
    let policy = Policy::from_yaml(&yaml).unwrap();
    let (fleet, green) = fleet_and_green(4, "green");
    Plan::new("d1", &policy, &fleet, &green).unwrap()
}

/// Endpoint `fraud` serving blue's config with variant `blue` on `instances` instances, and
/// green `fraud-v2` of the same size as variant `green_variant` (blue's name for the native
/// engine).
fn fleet_and_green(instances: u32, green_variant: &str) -> (Fleet, GreenSpec) {
    let fleet = Fleet {
        endpoint_name: "fraud".to_owned(),
        config_name: BLUE.to_owned(),
        variants: vec![FleetVariant {
            variant_name: "blue".to_owned(),
            model_name: String::new(),
            instance_type: "ml.m5.xlarge".to_owned(),
            instance_count: instances,
        }],
    };
    let green = GreenSpec {
        variant_name: green_variant.to_owned(),
        model_name: "fraud-v2".to_owned(),
        instance_type: "ml.m5.xlarge".to_owned(),
        instance_count: instances,
    };
    (fleet, green)
}

/// A canary: 10% on 1 instance, bake 300 s; 100% on 4, final bake 600 s; poll 30 s.
fn deployment(phase: Phase) -> Deployment {
    deployment_of(plan_with(""), phase)
}

fn deployment_of(plan: Plan, phase: Phase) -> Deployment {
    let (mut d, _) = Deployment::start(plan, T0).unwrap();
    d.phase = phase;
    d
}

fn provisioning(accepted: bool) -> Phase {
    Phase::Provisioning {
        update: UpdateProgress {
            accepted_at: accepted.then_some(T0),
            failures: 0,
        },
    }
}

fn alarms_ok() -> BTreeMap<String, AlarmView> {
    [NAMED, TEMPLATED, FINAL]
        .into_iter()
        .map(|n| {
            let view = AlarmView {
                state: AlarmState::Ok,
                reason: String::new(),
                since: None,
            };
            (n.to_owned(), view)
        })
        .collect()
}

fn endpoint(status: EndpointStatus, config: &str, variants: Vec<VariantView>) -> Observation {
    Observation {
        endpoint: Some(EndpointView {
            status,
            config_name: config.to_owned(),
            pending_config_name: None,
            failure_reason: None,
            variants,
            progress: Vec::new(),
        }),
        alarms: alarms_ok(),
        alarms_fired: BTreeMap::new(),
        judged: None,
        hook: None,
        unseen: None,
    }
}

fn variant(name: &str, weight: f64, instances: u32) -> VariantView {
    VariantView {
        variant_name: name.to_owned(),
        current_weight: weight,
        current_instance_count: instances,
        desired_instance_count: instances,
    }
}

fn on_blue() -> Observation {
    endpoint(
        EndpointStatus::InService,
        BLUE,
        vec![variant("blue", 1.0, 4)],
    )
}

/// Blue and green side by side, green at `green_pct` percent on `instances` instances.
fn on_blue_green(green_pct: f64, instances: u32) -> Observation {
    let g = green_pct / 100.0;
    endpoint(
        EndpointStatus::InService,
        BG,
        vec![variant("blue", 1.0 - g, 4), variant("green", g, instances)],
    )
}

fn on_green() -> Observation {
    endpoint(
        EndpointStatus::InService,
        GREEN,
        // The new model under blue's variant name.
        vec![variant("blue", 1.0, 4)],
    )
}

fn with_alarm(mut obs: Observation, name: &str, state: AlarmState) -> Observation {
    obs.alarms.insert(
        name.to_owned(),
        AlarmView {
            state,
            reason: "Threshold Crossed: 1 datapoint [0.31] was greater than 0.05".to_owned(),
            since: None,
        },
    );
    obs
}

fn busy(mut obs: Observation, pending: Option<&str>) -> Observation {
    if let Some(e) = obs.endpoint.as_mut() {
        e.status = EndpointStatus::Updating;
        e.pending_config_name = pending.map(str::to_owned);
    }
    obs
}

fn failure_reason(mut obs: Observation, reason: &str) -> Observation {
    if let Some(e) = obs.endpoint.as_mut() {
        e.failure_reason = Some(reason.to_owned());
    }
    obs
}

fn causes(d: &Decision) -> Vec<Cause> {
    d.transitions.iter().map(|t| t.cause.clone()).collect()
}

fn weights(pct: f64) -> Action {
    Action::SetWeights {
        blue_variant: "blue".to_owned(),
        green_variant: "green".to_owned(),
        green_share: Share::from_percent(pct).unwrap(),
    }
}

fn update(config: &str) -> Action {
    Action::UpdateEndpoint {
        config_name: config.to_owned(),
        deployment_config: None,
        // Back to blue's config, variants keep their capacity.
        retain_variant_properties: config == BLUE,
    }
}

fn action_names(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::CreateEndpointConfig { config_name, .. } => format!("create {config_name}"),
            Action::UpdateEndpoint { config_name, .. } => format!("update to {config_name}"),
            Action::SetWeights { green_share, .. } => format!("weights green {green_share}"),
            Action::SetInstanceCount {
                variant_name,
                instance_count,
            } => format!("instances {variant_name} {instance_count}"),
            Action::PutGreenAlarm { alarm_name, .. } => format!("put alarm {alarm_name}"),
            Action::DeleteAlarms { alarm_names } => {
                format!("delete alarms {}", alarm_names.join(","))
            }
            Action::DeleteEndpointConfig { config_name } => format!("delete {config_name}"),
            Action::RaiseAlarm { alarm_name, .. } => format!("raise alarm {alarm_name}"),
            Action::SetScaling { suspended, .. } if *suspended == Suspended::ALL => {
                "suspend scaling".to_owned()
            }
            Action::SetScaling { .. } => "restore scaling".to_owned(),
        })
        .collect()
}

fn alarm_fired(name: &str) -> Cause {
    Cause::AlarmFired {
        alarm_name: name.to_owned(),
        reason: "Threshold Crossed: 1 datapoint [0.31] was greater than 0.05".to_owned(),
    }
}

// --- Provisioning --------------------------------------------------------------------------

#[test]
fn provisioning_creates_the_blue_green_config_and_green_alarms_then_updates_the_endpoint() {
    let d = deployment(provisioning(false)).decide(
        &Observation {
            alarms: BTreeMap::new(),
            ..on_blue()
        },
        None,
        T0,
    );
    assert_eq!(
        action_names(&d.actions),
        vec![
            "create guardrails-d1-blue-green",
            "update to guardrails-d1-blue-green",
            "put alarm guardrails-d1-errors"
        ]
    );
    let Action::CreateEndpointConfig {
        variants,
        from_config,
        ..
    } = &d.actions[0]
    else {
        panic!("{:?}", d.actions[0]);
    };
    assert_eq!(from_config, BLUE, "every other setting is blue's");
    assert_eq!(
        variants,
        &vec![
            ConfigVariant::Copy {
                variant_name: "blue".to_owned(),
                initial_weight: 1.0,
                instance_count: Some(4)
            },
            ConfigVariant::New {
                like: "blue".to_owned(),
                variant_name: "green".to_owned(),
                model_name: "fraud-v2".to_owned(),
                instance_type: "ml.m5.xlarge".to_owned(),
                instance_count: 1,
                initial_weight: 0.0
            },
        ],
        "green starts at weight 0 with the first step's instances"
    );
    assert_eq!(d.wake_at, Some(at(30)));
    assert!(d.transitions.is_empty());
}

#[test]
fn provisioning_waits_and_notes_acceptance_while_the_endpoint_updates_towards_green() {
    let d = deployment(provisioning(false)).decide(&busy(on_blue(), Some(BG)), None, at(40));
    assert!(d.actions.is_empty());
    assert_eq!(
        d.deployment.phase,
        Phase::Provisioning {
            update: UpdateProgress {
                accepted_at: Some(at(40)),
                failures: 0
            }
        }
    );
}

#[test]
fn an_endpoint_busy_with_something_else_is_left_alone_until_it_is_in_service() {
    let d = deployment(provisioning(false)).decide(&busy(on_blue(), None), None, at(40));
    assert!(
        d.actions.is_empty(),
        "Cannot update in-progress endpoint: do not try"
    );
    assert_eq!(d.deployment.phase, provisioning(false));
}

#[test]
fn provisioned_green_moves_to_the_first_shift_in_the_same_decision() {
    let d = deployment(provisioning(true)).decide(&on_blue_green(0.0, 1), None, at(600));
    assert_eq!(causes(&d), vec![Cause::GreenProvisioned]);
    assert_eq!(d.deployment.phase, Phase::Shifting { step: 0 });
    assert_eq!(d.actions, vec![weights(10.0)]);
}

#[test]
fn provisioning_is_not_done_until_green_alarms_exist() {
    let mut obs = on_blue_green(0.0, 1);
    obs.alarms.remove(TEMPLATED);
    let d = deployment(provisioning(true)).decide(&obs, None, at(600));
    assert_eq!(
        action_names(&d.actions),
        vec!["put alarm guardrails-d1-errors"]
    );
    assert!(matches!(d.deployment.phase, Phase::Provisioning { .. }));
}

#[test]
fn alarms_do_not_stop_provisioning_because_green_serves_no_traffic_yet() {
    let obs = with_alarm(busy(on_blue(), Some(BG)), NAMED, AlarmState::Alarm);
    let d = deployment(provisioning(true)).decide(&obs, None, at(60));
    assert!(matches!(d.deployment.phase, Phase::Provisioning { .. }));
}

#[test]
fn green_provisioning_failure_ends_failed_and_removes_what_guardrails_created() {
    let obs = failure_reason(on_blue(), "Image fraud-v2 could not be pulled");
    let d = deployment(provisioning(true)).decide(&obs, None, at(600));
    assert_eq!(
        d.deployment.phase,
        Phase::Failed {
            cause: Cause::ProvisioningFailed {
                reason: "Image fraud-v2 could not be pulled".to_owned()
            }
        }
    );
    assert_eq!(
        action_names(&d.actions),
        vec![
            "delete alarms guardrails-d1-errors,guardrails-d1-errors-final",
            "delete guardrails-d1-blue-green"
        ]
    );
    assert_eq!(d.wake_at, None);
}

#[test]
fn silent_provisioning_failure_back_in_service_on_blue_is_a_failure_not_a_success() {
    let d = deployment(provisioning(true)).decide(&on_blue(), None, at(600));
    assert_eq!(
        causes(&d),
        vec![Cause::ProvisioningFailed {
            reason: "the endpoint returned to InService on the old config with no FailureReason"
                .to_owned()
        }]
    );
}

#[test]
fn a_deleted_or_broken_endpoint_fails_the_deployment() {
    let gone = Observation {
        endpoint: None,
        alarms: alarms_ok(),
        alarms_fired: BTreeMap::new(),
        judged: None,
        hook: None,
        unseen: None,
    };
    let d = deployment(provisioning(true)).decide(&gone, None, at(60));
    assert_eq!(causes(&d), vec![Cause::EndpointDeleted]);
    assert_eq!(
        action_names(&d.actions),
        vec![
            "delete alarms guardrails-d1-errors,guardrails-d1-errors-final",
            "delete guardrails-d1-blue-green",
            "delete guardrails-d1-green"
        ]
    );
    let mut broken = failure_reason(on_blue(), "capacity error");
    if let Some(e) = broken.endpoint.as_mut() {
        e.status = EndpointStatus::Failed;
    }
    let d = deployment(Phase::Baking {
        step: 0,
        until: at(900),
    })
    .decide(&broken, None, at(700));
    assert_eq!(
        causes(&d),
        vec![Cause::EndpointBroken {
            status: "Failed".to_owned(),
            reason: "capacity error".to_owned()
        }]
    );
}

#[test]
fn a_config_guardrails_did_not_set_fails_the_deployment_without_touching_it() {
    let mut obs = on_blue();
    if let Some(e) = obs.endpoint.as_mut() {
        e.config_name = "someone-elses".to_owned();
    }
    let d = deployment(provisioning(false)).decide(&obs, None, at(60));
    assert_eq!(
        causes(&d),
        vec![Cause::ChangedOutsideGuardrails {
            config_name: "someone-elses".to_owned()
        }]
    );
    assert!(d.actions.is_empty());
}

#[test]
fn the_deadline_during_provisioning_rolls_back() {
    let d = deployment(provisioning(false)).decide(&on_blue(), None, at(3600));
    assert_eq!(
        causes(&d),
        vec![
            Cause::TimedOut { deadline: at(3600) },
            Cause::RollbackComplete
        ],
        "green never served, so the endpoint is already on the original config"
    );
    assert_eq!(
        d.deployment.phase,
        Phase::RolledBack {
            cause: Cause::TimedOut { deadline: at(3600) }
        }
    );
}

// --- Shifting and baking -------------------------------------------------------------------

#[test]
fn shifting_adds_green_capacity_before_moving_traffic() {
    let d = deployment(Phase::Shifting { step: 1 }).decide(&on_blue_green(10.0, 1), None, at(1000));
    assert_eq!(action_names(&d.actions), vec!["instances green 4"]);
    let mut scaling = on_blue_green(10.0, 1);
    if let Some(v) = scaling
        .endpoint
        .as_mut()
        .and_then(|e| e.variants.get_mut(1))
    {
        v.desired_instance_count = 4;
    }
    let d = deployment(Phase::Shifting { step: 1 }).decide(&scaling, None, at(1000));
    assert!(d.actions.is_empty(), "capacity is coming: wait");
    let d = deployment(Phase::Shifting { step: 1 }).decide(&on_blue_green(10.0, 4), None, at(1000));
    assert_eq!(d.actions, vec![weights(100.0)]);
}

#[test]
fn reaching_the_steps_share_starts_its_bake() {
    let d = deployment(Phase::Shifting { step: 0 }).decide(&on_blue_green(10.0, 1), None, at(700));
    assert_eq!(
        causes(&d),
        vec![Cause::Shifted {
            step: 0,
            green_share: Share::from_percent(10.0).unwrap()
        }]
    );
    assert_eq!(
        d.deployment.phase,
        Phase::Baking {
            step: 0,
            until: at(1000)
        }
    );
    assert_eq!(d.wake_at, Some(at(730)), "polls alarms while baking");
    assert!(d.actions.is_empty());
}

#[test]
fn a_passed_bake_moves_to_the_next_shift() {
    let d = deployment(Phase::Baking {
        step: 0,
        until: at(1000),
    })
    .decide(&on_blue_green(10.0, 1), None, at(1000));
    assert_eq!(causes(&d), vec![Cause::BakePassed { step: 0 }]);
    assert_eq!(action_names(&d.actions), vec!["instances green 4"]);
}

#[test]
fn a_bake_waits_until_its_end_while_alarms_are_ok_or_lack_data() {
    let obs = with_alarm(
        on_blue_green(10.0, 1),
        TEMPLATED,
        AlarmState::InsufficientData,
    );
    let d = deployment(Phase::Baking {
        step: 0,
        until: at(1000),
    })
    .decide(&obs, None, at(990));
    assert!(d.transitions.is_empty());
    assert_eq!(d.wake_at, Some(at(1000)));
}

#[test]
fn alarm_during_canary_bake_rolls_back_to_blue_in_the_same_decision() {
    let obs = with_alarm(on_blue_green(10.0, 1), TEMPLATED, AlarmState::Alarm);
    let d = deployment(Phase::Baking {
        step: 0,
        until: at(1000),
    })
    .decide(&obs, None, at(800));
    assert_eq!(causes(&d), vec![alarm_fired(TEMPLATED)]);
    assert_eq!(d.actions, vec![weights(0.0)], "traffic back on blue first");
    assert!(matches!(d.deployment.phase, Phase::RollingBack { .. }));
}

#[test]
fn alarm_during_a_shift_rolls_back() {
    let obs = with_alarm(on_blue_green(0.0, 1), NAMED, AlarmState::Alarm);
    let d = deployment(Phase::Shifting { step: 0 }).decide(&obs, None, at(700));
    assert_eq!(causes(&d), vec![alarm_fired(NAMED)]);
}

#[test]
fn a_watched_alarm_that_disappears_rolls_back_rather_than_baking_blind() {
    let mut obs = on_blue_green(10.0, 1);
    obs.alarms.remove(NAMED);
    let d = deployment(Phase::Baking {
        step: 0,
        until: at(1000),
    })
    .decide(&obs, None, at(800));
    assert_eq!(
        causes(&d)[0],
        Cause::AlarmMissing {
            alarm_name: NAMED.to_owned()
        }
    );
}

#[test]
fn weights_changed_outside_guardrails_are_shifted_back_and_the_bake_restarts() {
    let d = deployment(Phase::Baking {
        step: 0,
        until: at(1000),
    })
    .decide(&on_blue_green(50.0, 1), None, at(800));
    assert_eq!(
        causes(&d),
        vec![Cause::WeightsChanged {
            green_share: Share::from_percent(50.0).unwrap()
        }]
    );
    assert_eq!(d.actions, vec![weights(10.0)]);
}

#[test]
fn the_final_bake_passing_removes_blue() {
    let d = deployment(Phase::Baking {
        step: 1,
        until: at(2000),
    })
    .decide(&on_blue_green(100.0, 4), None, at(2000));
    assert_eq!(causes(&d), vec![Cause::BakePassed { step: 1 }]);
    assert_eq!(
        action_names(&d.actions),
        vec![
            "create guardrails-d1-green",
            "update to guardrails-d1-green"
        ]
    );
    let Action::CreateEndpointConfig { variants, .. } = &d.actions[0] else {
        panic!("{:?}", d.actions[0]);
    };
    assert!(
        matches!(variants.as_slice(), [ConfigVariant::New { instance_count: 4, initial_weight, .. }] if *initial_weight == 1.0),
        "green alone at its full size: {variants:?}"
    );
}

#[test]
fn the_deadline_during_a_bake_rolls_back() {
    let d = deployment(Phase::Baking {
        step: 1,
        until: at(4000),
    })
    .decide(&on_blue_green(100.0, 4), None, at(3600));
    assert_eq!(causes(&d), vec![Cause::TimedOut { deadline: at(3600) }]);
    assert_eq!(d.actions, vec![weights(0.0)]);
}

// --- Approval ------------------------------------------------------------------------------

#[test]
fn the_last_shift_waits_for_approval_when_the_policy_asks() {
    let d = deployment_of(
        plan_with("  ApproveBeforeFinalShift: true"),
        Phase::Baking {
            step: 0,
            until: at(1000),
        },
    );
    let waiting = d.decide(&on_blue_green(10.0, 1), None, at(1000));
    assert_eq!(
        causes(&waiting),
        vec![Cause::BakePassed { step: 0 }, Cause::ApprovalRequired]
    );
    assert!(waiting.actions.is_empty());
    let approve = Command::Approve {
        by: "alice".to_owned(),
    };
    let approved = waiting
        .deployment
        .decide(&on_blue_green(10.0, 1), Some(&approve), at(1500));
    assert_eq!(
        causes(&approved),
        vec![Cause::Approved {
            by: "alice".to_owned()
        }]
    );
    assert_eq!(action_names(&approved.actions), vec!["instances green 4"]);
}

#[test]
fn an_endpoint_changed_by_hand_while_waiting_for_approval_is_noticed_at_once() {
    let d = deployment_of(
        plan_with("  ApproveBeforeFinalShift: true"),
        Phase::AwaitingApproval { step: 1 },
    );
    let moved = d.decide(&on_blue(), None, at(1500));
    assert_eq!(
        causes(&moved),
        vec![Cause::ChangedOutsideGuardrails {
            config_name: BLUE.to_owned()
        }]
    );
    // Busy (someone's update in flight): wait for it to land first.
    let busy_now = d.decide(&busy(on_blue_green(10.0, 1), Some(BLUE)), None, at(1500));
    assert!(busy_now.transitions.is_empty());
}

#[test]
fn alarms_are_still_watched_while_waiting_for_approval() {
    let d = deployment_of(
        plan_with("  ApproveBeforeFinalShift: true"),
        Phase::AwaitingApproval { step: 1 },
    );
    let obs = with_alarm(on_blue_green(10.0, 1), NAMED, AlarmState::Alarm);
    assert_eq!(
        causes(&d.decide(&obs, None, at(1500)))[0],
        alarm_fired(NAMED)
    );
}

// --- Abort ---------------------------------------------------------------------------------

#[test]
fn an_abort_rolls_back_every_phase_and_ends_a_rollback_at_once() {
    let abort = Command::Abort {
        by: "bob".to_owned(),
        reason: "customer complaints".to_owned(),
    };
    let aborted = Cause::Aborted {
        by: "bob".to_owned(),
        reason: "customer complaints".to_owned(),
    };
    let d = deployment(Phase::Baking {
        step: 0,
        until: at(1000),
    })
    .decide(&on_blue_green(10.0, 1), Some(&abort), at(800));
    assert_eq!(causes(&d), vec![aborted.clone()]);
    assert_eq!(d.actions, vec![weights(0.0)]);

    // After the final bake, while blue is being removed: still back to blue.
    let removing = deployment(Phase::RemovingBlue {
        since: at(2000),
        update: UpdateProgress::default(),
    });
    let d = removing.decide(
        &busy(on_blue_green(100.0, 4), Some(GREEN)),
        Some(&abort),
        at(2100),
    );
    assert_eq!(causes(&d), vec![aborted.clone()]);
    assert!(matches!(d.deployment.phase, Phase::RollingBack { .. }));
    assert!(d.ignored.is_none());

    // During the rollback: the deployment ends now, saying what is left.
    let d = d
        .deployment
        .decide(&on_blue_green(30.0, 4), Some(&abort), at(2200));
    let Phase::Failed {
        cause: Cause::RollbackAborted { left_behind, .. },
    } = &d.deployment.phase
    else {
        panic!("{:?}", d.deployment.phase);
    };
    assert!(
        left_behind.contains("still receives 30.00% of requests"),
        "{left_behind}"
    );
    assert!(d.actions.is_empty(), "nothing more is attempted");
}

// --- Removing blue -------------------------------------------------------------------------

#[test]
fn the_final_config_keeps_blues_variant_name_and_its_fleet_bakes_before_success() {
    let removing = deployment(Phase::RemovingBlue {
        since: at(2000),
        update: UpdateProgress::default(),
    });
    let mut obs = on_blue_green(100.0, 4);
    obs.alarms.remove(FINAL);
    let d = removing.decide(&obs, None, at(2000));
    assert_eq!(
        action_names(&d.actions),
        vec![
            "create guardrails-d1-green",
            "put alarm guardrails-d1-errors-final",
            "update to guardrails-d1-green"
        ]
    );
    let Action::CreateEndpointConfig { variants, .. } = &d.actions[0] else {
        panic!("{:?}", d.actions[0]);
    };
    assert!(
        matches!(variants.as_slice(), [ConfigVariant::New { variant_name, model_name, .. }] if variant_name == "blue" && model_name == "fraud-v2"),
        "the new model under blue's variant name: {variants:?}"
    );
    let Action::PutGreenAlarm { variant_name, .. } = &d.actions[1] else {
        panic!("{:?}", d.actions[1]);
    };
    assert_eq!(
        variant_name, "blue",
        "the final fleet's alarm watches the name it keeps"
    );

    // In service on the final config: its fleet bakes, watched.
    let d = d.deployment.decide(&on_green(), None, at(2600));
    assert_eq!(causes(&d), vec![Cause::BlueRemoved]);
    let until = at(2600).plus_secs(d.deployment.plan.cutover_bake_secs);
    assert_eq!(d.deployment.phase, Phase::BakingFinalFleet { until });
    assert!(d.actions.is_empty());
    let later = d.deployment.decide(&on_green(), None, at(2601));
    assert!(later.transitions.is_empty());

    // The bake passes: success, and what Guardrails made for the rollout goes.
    let done = d.deployment.decide(&on_green(), None, until);
    assert_eq!(causes(&done), vec![Cause::FinalBakePassed]);
    assert_eq!(done.deployment.phase, Phase::Succeeded);
    assert_eq!(
        action_names(&done.actions),
        vec![
            "delete alarms guardrails-d1-errors,guardrails-d1-errors-final",
            "delete guardrails-d1-blue-green"
        ]
    );
}

#[test]
fn an_alarm_during_the_final_fleets_bake_rolls_back_to_the_original_config() {
    let baking = deployment(Phase::BakingFinalFleet { until: at(3000) });
    for alarm in [NAMED, FINAL] {
        let obs = with_alarm(on_green(), alarm, AlarmState::Alarm);
        let d = baking.decide(&obs, None, at(2700));
        assert_eq!(causes(&d), vec![alarm_fired(alarm)], "{alarm}");
        assert_eq!(action_names(&d.actions), vec!["update to fraud-v1"]);
        assert_eq!(
            d.deployment.traffic_restored_at, None,
            "requests are on the new model until the update is done"
        );
        let back = d.deployment.decide(&on_blue(), None, at(3300));
        assert_eq!(causes(&back), vec![Cause::RollbackComplete]);
        assert_eq!(back.deployment.traffic_restored_at, Some(at(3300)));
    }
    // The steps' alarm (on green's own variant, gone) is not watched now; the deadline neither.
    let long = deployment(Phase::BakingFinalFleet { until: at(9000) });
    let obs = with_alarm(on_green(), TEMPLATED, AlarmState::Alarm);
    let d = long.decide(&obs, None, long.deadline.plus_secs(1));
    assert!(d.transitions.is_empty(), "{:?}", d.transitions);
    // A missing alarm of the final fleet rolls back: no baking blind.
    let mut obs = on_green();
    obs.alarms.remove(FINAL);
    let d = baking.decide(&obs, None, at(2700));
    assert_eq!(
        causes(&d),
        vec![Cause::AlarmMissing {
            alarm_name: FINAL.to_owned()
        }]
    );
}

#[test]
fn alarms_while_the_final_fleet_is_provisioned_do_not_roll_back() {
    let removing = deployment(Phase::RemovingBlue {
        since: at(2000),
        update: UpdateProgress::default(),
    });
    let obs = with_alarm(
        busy(on_blue_green(100.0, 4), Some(GREEN)),
        NAMED,
        AlarmState::Alarm,
    );
    let d = removing.decide(&obs, None, at(2100));
    assert!(d.transitions.is_empty());
}

#[test]
fn a_failed_removal_is_retried_then_fails_after_three_attempts() {
    let mut d = deployment(Phase::RemovingBlue {
        since: at(2000),
        update: UpdateProgress::default(),
    });
    for attempt in 1..=3 {
        d = d.update_accepted(GREEN, at(2000 + attempt * 10));
        let decision = d.decide(
            &failure_reason(on_blue_green(100.0, 4), "quota"),
            None,
            at(2000 + attempt * 100),
        );
        d = decision.deployment.clone();
        if attempt < 3 {
            assert_eq!(
                action_names(&decision.actions),
                vec![
                    "create guardrails-d1-green",
                    "update to guardrails-d1-green"
                ]
            );
        } else {
            assert_eq!(
                causes(&decision),
                vec![Cause::UpdateFailed {
                    config_name: GREEN.to_owned(),
                    reason: "quota".to_owned(),
                    attempts: 3
                }]
            );
        }
    }
}

// --- Rolling back --------------------------------------------------------------------------

fn rolling_back_phase(update: UpdateProgress) -> Phase {
    Phase::RollingBack {
        cause: alarm_fired(TEMPLATED),
        since: at(800),
        update,
    }
}

#[test]
fn rollback_moves_traffic_first_then_removes_green() {
    let d = deployment(rolling_back_phase(UpdateProgress::default()));
    assert_eq!(
        d.decide(&on_blue_green(10.0, 1), None, at(801)).actions,
        vec![weights(0.0)]
    );
    assert_eq!(
        d.decide(&on_blue_green(0.0, 1), None, at(810)).actions,
        vec![update(BLUE)]
    );
}

#[test]
fn rollback_ends_when_the_endpoint_is_back_on_the_original_config() {
    let d = deployment(rolling_back_phase(UpdateProgress::default())).decide(
        &on_blue(),
        None,
        at(1400),
    );
    assert_eq!(
        d.deployment.phase,
        Phase::RolledBack {
            cause: alarm_fired(TEMPLATED)
        }
    );
    assert_eq!(causes(&d), vec![Cause::RollbackComplete]);
}

#[test]
fn a_rollback_that_cannot_finish_in_time_fails_and_pages() {
    let d = deployment(rolling_back_phase(UpdateProgress::default())).decide(
        &busy(on_blue_green(0.0, 1), Some(BLUE)),
        None,
        at(800 + SETTLE_SECS),
    );
    assert_eq!(
        causes(&d),
        vec![Cause::SettleTimedOut {
            config_name: BLUE.to_owned()
        }]
    );
}

// --- Records and acknowledgements ---------------------------------------------------------

#[test]
fn a_final_state_never_changes() {
    let done = deployment(Phase::Succeeded);
    let abort = Command::Abort {
        by: "bob".to_owned(),
        reason: "late".to_owned(),
    };
    let d = done.decide(
        &with_alarm(on_green(), NAMED, AlarmState::Alarm),
        Some(&abort),
        at(9000),
    );
    assert_eq!(d.deployment, done);
    assert!(d.actions.is_empty() && d.transitions.is_empty() && d.wake_at.is_none());
    assert_eq!(
        d.ignored.as_deref(),
        Some("the deployment has ended (succeeded)")
    );
}

#[test]
fn acceptance_is_recorded_only_for_the_config_the_phase_wants() {
    let d = deployment(provisioning(false));
    assert_eq!(
        d.update_accepted(BLUE, at(5)).phase,
        provisioning(false),
        "stale"
    );
    assert_eq!(
        d.update_accepted(BG, at(5)).phase,
        Phase::Provisioning {
            update: UpdateProgress {
                accepted_at: Some(at(5)),
                failures: 0
            }
        }
    );
}

#[test]
fn a_record_naming_a_step_the_plan_lacks_fails_without_acting() {
    let d = deployment(Phase::Shifting { step: 7 }).decide(&on_blue_green(10.0, 1), None, at(900));
    assert!(matches!(&causes(&d)[0], Cause::InvalidRecord { .. }));
    assert!(d.actions.is_empty());
}

#[test]
fn the_record_round_trips_through_json() {
    let d = deployment(rolling_back_phase(UpdateProgress::default()));
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(serde_json::from_str::<Deployment>(&json).unwrap(), d);
}

mod hooks;
mod judge;
mod native;
mod table;
mod trouble;

// --- Auto scaling ----------------------------------------------------------------------------

#[test]
fn blue_keeps_its_capacity_its_scaling_is_suspended_and_restored_as_it_was_at_the_end() {
    let mut plan = plan_with("");
    let before = Suspended {
        scheduled_scaling: true,
        ..Suspended::default()
    };
    plan.scaling = Some(ScalableTarget {
        min_capacity: 2,
        max_capacity: 10,
        suspended: before,
        policies: vec!["invocations".to_owned()],
    });
    let d = deployment_of(plan, provisioning(false)).decide(&on_blue(), None, T0);
    let names = action_names(&d.actions);
    assert!(names.contains(&"suspend scaling".to_owned()), "{names:?}");
    // Ends: success, rollback or failure give the target back its state.
    let done = deployment_of(
        d.deployment.plan.clone(),
        Phase::BakingFinalFleet { until: at(3000) },
    )
    .decide(&on_green(), None, at(3000));
    assert_eq!(done.deployment.phase, Phase::Succeeded);
    assert!(done.actions.contains(&Action::SetScaling {
        variant_name: "blue".to_owned(),
        suspended: before
    }));
    let rolled = deployment_of(
        d.deployment.plan.clone(),
        Phase::RollingBack {
            cause: alarm_fired(NAMED),
            since: at(800),
            update: UpdateProgress::default(),
        },
    )
    .decide(&on_blue(), None, at(900));
    assert!(matches!(rolled.deployment.phase, Phase::RolledBack { .. }));
    assert!(action_names(&rolled.actions).contains(&"restore scaling".to_owned()));
    // The rollback's UpdateEndpoint keeps the variants' current capacity.
    let back = deployment(Phase::RollingBack {
        cause: alarm_fired(NAMED),
        since: at(800),
        update: UpdateProgress::default(),
    })
    .decide(&on_blue_green(0.0, 1), None, at(830));
    assert!(back.actions.contains(&Action::UpdateEndpoint {
        config_name: BLUE.to_owned(),
        deployment_config: None,
        retain_variant_properties: true,
    }));
}
