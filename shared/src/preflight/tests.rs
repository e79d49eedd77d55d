//! Every preflight check, GIVEN what it looks at, THEN exactly its finding (and none when all is
//! well).

use super::*;
use crate::core::VariantView;
use crate::plan::{FleetVariant, GreenSpec};
use crate::policy::Policy;

const ALARM: &str = "fraud-5xx";

fn fleet(instance_type: &str) -> Fleet {
    Fleet {
        endpoint_name: "fraud".to_owned(),
        config_name: "fraud-v1".to_owned(),
        variants: vec![FleetVariant {
            variant_name: "AllTraffic".to_owned(),
            model_name: String::new(),
            instance_type: instance_type.to_owned(),
            instance_count: 4,
        }],
    }
}

fn plan_of(config: &str, engine: &str, green_variant: &str, instance_type: &str) -> Plan {
    let yaml = format!(
        "DeploymentConfig:\n{config}\n  AutoRollbackConfiguration:\n    Alarms: [{{ AlarmName: {ALARM} }}]\nGuardrails: {{ Engine: {engine} }}\n"
    );
    let policy = Policy::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}"));
    let green = GreenSpec {
        variant_name: green_variant.to_owned(),
        model_name: "fraud-v2".to_owned(),
        instance_type: instance_type.to_owned(),
        instance_count: 4,
    };
    Plan::new("d1", &policy, &fleet(instance_type), &green).unwrap_or_else(|e| panic!("{e}"))
}

const CANARY: &str = "  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: CANARY
      CanarySize: { Type: CAPACITY_PERCENT, Value: 25 }
      WaitIntervalInSeconds: 300
    TerminationWaitInSeconds: 300
    MaximumExecutionTimeoutInSeconds: 3600";

fn native() -> Plan {
    plan_of(CANARY, "native", "AllTraffic", "ml.m5.xlarge")
}

fn variant_engine() -> Plan {
    plan_of(CANARY, "variant", "green", "ml.m5.xlarge")
}

fn error_alarm(statistic: &str, comparison: &str, threshold: f64) -> AlarmDefinition {
    AlarmDefinition {
        state: AlarmState::Ok,
        metric: Some(AlarmMetric {
            namespace: "AWS/SageMaker".to_owned(),
            metric_name: "Invocation5XXErrors".to_owned(),
            statistic: statistic.to_owned(),
            dimensions: vec![
                ("EndpointName".to_owned(), "fraud".to_owned()),
                ("VariantName".to_owned(), "AllTraffic".to_owned()),
            ],
            comparison: comparison.to_owned(),
            threshold,
            period_secs: 60,
        }),
    }
}

/// All is well: the endpoint in service, the alarm present, OK, fed and sensible.
fn good() -> Look {
    Look {
        endpoint: Some(EndpointView {
            status: EndpointStatus::InService,
            config_name: "fraud-v1".to_owned(),
            pending_config_name: None,
            failure_reason: None,
            variants: vec![VariantView {
                variant_name: "AllTraffic".to_owned(),
                current_weight: 1.0,
                current_instance_count: 4,
                desired_instance_count: 4,
            }],
            progress: Vec::new(),
        }),
        fleet: Some(fleet("ml.m5.xlarge")),
        alarms: BTreeMap::from([(
            ALARM.to_owned(),
            error_alarm("Average", "GreaterThanThreshold", 0.05),
        )]),
        alarms_with_recent_data: vec![ALARM.to_owned()],
        active_deployment: None,
        model_exists: Some(true),
        endpoint_tags: Some(vec![("guardrails:managed".to_owned(), "true".to_owned())]),
        kind: Some(EndpointKind::default()),
        quotas: BTreeMap::from([("ml.m5.xlarge".to_owned(), 50)]),
        scaling: None,
    }
}

/// The `(check, severity)` of every finding.
fn found(plan: &Plan, look: &Look) -> Vec<(String, Severity)> {
    check(plan, look)
        .findings
        .into_iter()
        .map(|f| (f.check, f.severity))
        .collect()
}

fn one(check: &str, severity: Severity) -> Vec<(String, Severity)> {
    vec![(check.to_owned(), severity)]
}

#[test]
fn all_is_well_finds_nothing_and_lists_every_check() {
    let result = check(&native(), &good());
    assert!(result.findings.is_empty(), "{result}");
    assert_eq!(
        result.checked,
        [
            "endpoint-in-service",
            "no-active-deployment",
            "model-exists",
            "endpoint-opted-in",
            "endpoint-type-supported",
            "instance-quota-covers-peak",
            "alarms-exist",
            "alarms-not-firing",
            "alarms-have-recent-data",
            "alarm-thresholds-can-fire",
            "alarms-see-green",
            "timeout-covers-waits",
            "variant-names-match",
            "native-supported",
        ]
    );
    assert!(!result.is_blocked());
}

#[test]
fn a_missing_endpoint_blocks() {
    let look = Look {
        endpoint: None,
        ..good()
    };
    let result = check(&native(), &look);
    assert_eq!(result.findings[0].message, "endpoint fraud does not exist");
    assert!(result.is_blocked());
}

#[test]
fn an_endpoint_not_in_service_blocks() {
    let mut look = good();
    if let Some(e) = look.endpoint.as_mut() {
        e.status = EndpointStatus::Updating;
    }
    assert_eq!(
        found(&native(), &look),
        one("endpoint-in-service", Severity::Blocking)
    );
}

#[test]
fn another_active_deployment_blocks_but_the_same_one_does_not() {
    let mut look = good();
    look.active_deployment = Some("d-other".to_owned());
    assert_eq!(
        found(&native(), &look),
        one("no-active-deployment", Severity::Blocking)
    );
    look.active_deployment = Some("d1".to_owned());
    assert!(found(&native(), &look).is_empty());
}

#[test]
fn a_missing_alarm_blocks() {
    let mut look = good();
    look.alarms.clear();
    look.alarms_with_recent_data.clear();
    assert_eq!(
        found(&native(), &look),
        one("alarms-exist", Severity::Blocking)
    );
}

#[test]
fn an_alarm_already_in_alarm_blocks() {
    let mut look = good();
    if let Some(a) = look.alarms.get_mut(ALARM) {
        a.state = AlarmState::Alarm;
    }
    assert_eq!(
        found(&native(), &look),
        one("alarms-not-firing", Severity::Blocking)
    );
}

#[test]
fn an_alarm_without_recent_data_warns() {
    let mut look = good();
    look.alarms_with_recent_data.clear();
    assert_eq!(
        found(&native(), &look),
        one("alarms-have-recent-data", Severity::Warning)
    );
}

#[test]
fn an_average_error_threshold_of_one_warns_and_above_it_blocks() {
    let mut look = good();
    look.alarms.insert(
        ALARM.to_owned(),
        error_alarm("Average", "GreaterThanOrEqualToThreshold", 1.0),
    );
    let result = check(&native(), &look);
    assert_eq!(
        found(&native(), &look),
        one("alarm-thresholds-can-fire", Severity::Warning)
    );
    assert!(
        result.findings[0]
            .message
            .contains("only fires when every request fails")
    );
    look.alarms.insert(
        ALARM.to_owned(),
        error_alarm("Average", "GreaterThanThreshold", 1.0),
    );
    assert_eq!(
        found(&native(), &look),
        one("alarm-thresholds-can-fire", Severity::Blocking)
    );
    // A Sum counts errors: 1 is a fine threshold there.
    look.alarms.insert(
        ALARM.to_owned(),
        error_alarm("Sum", "GreaterThanOrEqualToThreshold", 1.0),
    );
    assert!(found(&native(), &look).is_empty());
}

#[test]
fn alarms_that_will_not_see_green_warn() {
    // The variant engine serves green as its own variant: an alarm on blue's variant is blind.
    assert_eq!(
        found(&variant_engine(), &good()),
        one("alarms-see-green", Severity::Warning)
    );
    let scoped = |key: &str, value: &str| {
        let mut look = good();
        if let Some(m) = look.alarms.get_mut(ALARM).and_then(|a| a.metric.as_mut()) {
            m.dimensions.retain(|(k, _)| k != key);
            m.dimensions.push((key.to_owned(), value.to_owned()));
        }
        look
    };
    for look in [
        scoped("EndpointName", "other-endpoint"),
        scoped("EndpointConfigName", "fraud-v1"),
    ] {
        assert_eq!(
            found(&native(), &look),
            one("alarms-see-green", Severity::Warning)
        );
    }
    // Scoped to the new fleet's config: it sees green.
    assert!(
        found(
            &native(),
            &scoped("EndpointConfigName", "guardrails-d1-green")
        )
        .is_empty()
    );
}

#[test]
fn a_timeout_shorter_than_the_waits_on_this_fleet_blocks() {
    // One instance per step on a fleet of 4 is 4 steps: 3 x 300 + 300 = 1,200 s of bakes, which
    // the policy alone could not know.
    let linear = "  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: LINEAR
      LinearStepSize: { Type: INSTANCE_COUNT, Value: 1 }
      WaitIntervalInSeconds: 300
    TerminationWaitInSeconds: 300
    MaximumExecutionTimeoutInSeconds: 1000";
    let plan = plan_of(linear, "native", "AllTraffic", "ml.m5.xlarge");
    assert_eq!(
        found(&plan, &good()),
        one("timeout-covers-waits", Severity::Blocking)
    );
}

#[test]
fn native_needs_the_same_variant_name() {
    let plan = plan_of(CANARY, "native", "v2", "ml.m5.xlarge");
    let mut look = good();
    if let Some(m) = look.alarms.get_mut(ALARM).and_then(|a| a.metric.as_mut()) {
        m.dimensions.retain(|(k, _)| k != "VariantName");
    }
    assert_eq!(
        found(&plan, &look),
        one("variant-names-match", Severity::Blocking)
    );
}

#[test]
fn native_on_inf1_or_rolling_on_serverless_is_refused_with_the_variant_engine_suggested() {
    let inf1 = plan_of(CANARY, "native", "AllTraffic", "ml.inf1.xlarge");
    let mut look = good();
    look.fleet = Some(fleet("ml.inf1.xlarge"));
    let result = check(&inf1, &look);
    assert_eq!(
        found(&inf1, &look),
        one("native-supported", Severity::Blocking)
    );
    assert!(result.findings[0].message.contains("variant engine"));
    let rolling = "  RollingUpdatePolicy:
    MaximumBatchSize: { Type: CAPACITY_PERCENT, Value: 25 }
    WaitIntervalInSeconds: 60
    MaximumExecutionTimeoutInSeconds: 3600";
    let plan = plan_of(rolling, "native", "AllTraffic", "ml.m5.xlarge");
    let mut serverless = good();
    serverless.fleet = Some(fleet(""));
    assert_eq!(
        found(&plan, &serverless),
        one("native-supported", Severity::Blocking)
    );
}

#[test]
fn the_report_shows_every_check_with_its_severity() {
    let mut look = good();
    look.alarms_with_recent_data.clear();
    look.active_deployment = Some("d-other".to_owned());
    let text = check(&native(), &look).to_string();
    assert!(
        text.starts_with("Preflight, before any change:\n"),
        "{text}"
    );
    assert!(text.contains("  ok        endpoint-in-service\n"), "{text}");
    assert!(
        text.contains("  BLOCKING  no-active-deployment: deployment d-other is already active"),
        "{text}"
    );
    assert!(
        text.contains("  warning   alarms-have-recent-data: alarm fraud-5xx"),
        "{text}"
    );
}

#[test]
fn a_missing_model_blocks_before_any_change() {
    let look = Look {
        model_exists: Some(false),
        ..good()
    };
    let p = check(&variant_engine(), &look);
    let f = p
        .findings
        .iter()
        .find(|f| f.check == "model-exists")
        .unwrap();
    assert_eq!(f.severity, Severity::Blocking);
    assert!(
        f.message.starts_with("model fraud-v2 does not exist"),
        "{}",
        f.message
    );
}

#[test]
fn an_endpoint_without_the_opt_in_tag_blocks_and_says_how_to_tag_it() {
    let look = Look {
        endpoint_tags: Some(vec![("team".to_owned(), "ml".to_owned())]),
        ..good()
    };
    let p = check(&variant_engine(), &look);
    let f = p
        .findings
        .iter()
        .find(|f| f.check == "endpoint-opted-in")
        .unwrap();
    assert_eq!(f.severity, Severity::Blocking);
    assert!(
        f.message.contains("Key=guardrails:managed,Value=true"),
        "{}",
        f.message
    );
}

#[test]
fn a_quota_below_the_peak_blocks_naming_both() {
    let plan = variant_engine();
    let peak = plan.fleets.peak_instances;
    let mut look = good();
    look.quotas.insert("ml.m5.xlarge".to_owned(), peak - 1);
    let p = check(&plan, &look);
    let f = p
        .findings
        .iter()
        .find(|f| f.check == "instance-quota-covers-peak")
        .unwrap();
    assert!(
        f.message
            .contains(&format!("up to {peak} ml.m5.xlarge instances")),
        "{}",
        f.message
    );
    look.quotas.insert("ml.m5.xlarge".to_owned(), peak);
    assert!(
        check(&plan, &look)
            .findings
            .iter()
            .all(|f| f.check != "instance-quota-covers-peak")
    );
}

#[test]
fn serverless_is_blocked_for_the_variant_engine_naming_native_and_components_for_both() {
    let blocked = |plan: &Plan, kind: EndpointKind| {
        let look = Look {
            kind: Some(kind),
            ..good()
        };
        check(plan, &look)
            .findings
            .into_iter()
            .find(|f| f.check == "endpoint-type-supported" && f.severity == Severity::Blocking)
            .map(|f| f.message)
    };
    let serverless = EndpointKind {
        serverless: true,
        ..EndpointKind::default()
    };
    let message = blocked(&variant_engine(), serverless).expect("serverless on the variant engine");
    assert!(message.contains("native engine"), "{message}");
    assert_eq!(
        blocked(&native(), serverless),
        None,
        "native carries ServerlessConfig"
    );
    let asynchronous = EndpointKind {
        asynchronous: true,
        ..EndpointKind::default()
    };
    assert_eq!(
        blocked(&variant_engine(), asynchronous),
        None,
        "the configs keep AsyncInferenceConfig"
    );
    assert_eq!(blocked(&native(), asynchronous), None);
    let components = EndpointKind {
        inference_components: true,
        ..EndpointKind::default()
    };
    assert!(blocked(&variant_engine(), components).is_some());
    assert!(blocked(&native(), components).is_some());
}

#[test]
fn a_scalable_target_is_reported_with_what_guardrails_does_and_a_new_instance_type_blocks() {
    let target = ScalableTarget {
        min_capacity: 2,
        max_capacity: 10,
        suspended: crate::plan::Suspended::default(),
        policies: vec!["fraud-invocations".to_owned()],
    };
    let look = Look {
        scaling: Some(target.clone()),
        ..good()
    };
    for plan in [native(), variant_engine()] {
        let result = check(&plan, &look);
        let found: Vec<&Finding> = result
            .findings
            .iter()
            .filter(|f| f.check == "autoscaling")
            .collect();
        assert_eq!(found.len(), 1, "{:?}", result.findings);
        assert_eq!(found[0].severity, Severity::Info);
        assert!(
            found[0].message.contains("suspends its scaling"),
            "{}",
            found[0].message
        );
        assert!(
            found[0].message.contains("fraud-invocations"),
            "{}",
            found[0].message
        );
        assert_eq!(result.scaling.as_ref(), Some(&target), "kept for the plan");
        assert!(
            result
                .to_string()
                .contains("  info      autoscaling: variant AllTraffic")
        );
    }
    let mut other_type = variant_engine();
    other_type.green.instance_type = "ml.c5.xlarge".to_owned();
    let result = check(&other_type, &look);
    assert!(
        result
            .findings
            .iter()
            .any(|f| f.check == "autoscaling" && f.severity == Severity::Blocking),
        "{:?}",
        result.findings
    );
    // No target: the check does not run.
    assert!(
        !check(&native(), &good())
            .checked
            .contains(&"autoscaling".to_owned())
    );
}
