//! Policy parsing and validation: every rule has a test for its exact, helpful message.

use super::*;

fn problems(yaml: &str) -> Vec<String> {
    match Policy::from_yaml(yaml) {
        Ok(policy) => panic!("expected problems, got {policy:?}"),
        Err(e) => e.problems.iter().map(ToString::to_string).collect(),
    }
}

fn parses(text: &str) -> Policy {
    match Policy::parse(text) {
        Ok(policy) => policy,
        Err(e) => panic!("{e}"),
    }
}

const CANARY_JSON: &str = r#"{
  "DeploymentConfig": {
    "BlueGreenUpdatePolicy": {
      "TrafficRoutingConfiguration": {
        "Type": "CANARY",
        "CanarySize": { "Type": "CAPACITY_PERCENT", "Value": 10 },
        "WaitIntervalInSeconds": 300
      },
      "TerminationWaitInSeconds": 600,
      "MaximumExecutionTimeoutInSeconds": 3600
    },
    "AutoRollbackConfiguration": {
      "Alarms": [ { "AlarmName": "endpoint-5xx" } ]
    }
  }
}"#;

#[test]
fn sagemakers_own_deployment_config_parses_as_aws_spells_it() {
    let policy = parses(CANARY_JSON);
    let bg = policy.deployment_config.blue_green_update_policy.as_ref();
    let routing = bg.map(|b| &b.traffic_routing_configuration);
    assert_eq!(routing.map(|r| r.r#type), Some(TrafficRoutingType::Canary));
    assert_eq!(
        routing.and_then(|r| r.canary_size),
        Some(CapacitySize {
            r#type: CapacityType::CapacityPercent,
            value: 10
        })
    );
    assert_eq!(bg.and_then(|b| b.termination_wait_in_seconds), Some(600));
    assert_eq!(policy.named_alarms(), vec!["endpoint-5xx"]);
    assert_eq!(policy.timeout_secs(), Some(3600));
    assert_eq!(policy.guardrails, GuardrailsSection::default());
}

#[test]
fn the_deployment_config_serializes_back_exactly_as_given() {
    let policy = parses(CANARY_JSON);
    let given: serde_json::Value = serde_json::from_str(CANARY_JSON).unwrap();
    let back = serde_json::to_value(&policy.deployment_config).unwrap();
    assert_eq!(back, given["DeploymentConfig"]);
}

#[test]
fn yaml_and_json_give_the_same_policy() {
    let yaml = r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: CANARY
      CanarySize: { Type: CAPACITY_PERCENT, Value: 10 }
      WaitIntervalInSeconds: 300
    TerminationWaitInSeconds: 600
    MaximumExecutionTimeoutInSeconds: 3600
  AutoRollbackConfiguration:
    Alarms:
      - AlarmName: endpoint-5xx
"#;
    assert_eq!(parses(yaml), parses(CANARY_JSON));
}

#[test]
fn the_guardrails_section_reads_steps_templates_and_approval() {
    let policy = parses(
        r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration: { Type: ALL_AT_ONCE, WaitIntervalInSeconds: 120 }
    TerminationWaitInSeconds: 300
Guardrails:
  Engine: variant
  TrafficSteps: [0.5, 5, 25, 100]
  ApproveBeforeFinalShift: true
  PollIntervalInSeconds: 5
  FinalFleetBakeInSeconds: 900
  Alarms:
    - Name: errors
      MetricName: Invocation5XXErrors
      Statistic: Average
      ComparisonOperator: GreaterThanThreshold
      Threshold: 0.05
      PeriodInSeconds: 60
      EvaluationPeriods: 3
      DatapointsToAlarm: 2
    - Name: latency
      MetricName: ModelLatency
      Statistic: p99
      ComparisonOperator: GreaterThanThreshold
      Threshold: 250000
      PeriodInSeconds: 60
      EvaluationPeriods: 1
      TreatMissingData: notBreaching
"#,
    );
    let g = &policy.guardrails;
    let steps: Vec<u32> = g
        .traffic_steps
        .iter()
        .flatten()
        .map(|s| s.basis_points())
        .collect();
    assert_eq!(steps, vec![50, 500, 2_500, 10_000]);
    assert!(g.approve_before_final_shift);
    assert_eq!(g.poll_interval_in_seconds, Some(5));
    assert_eq!(g.final_fleet_bake_in_seconds, Some(900));
    assert_eq!(g.alarms.len(), 2);
    assert_eq!(g.alarms[0].namespace, "AWS/SageMaker");
    assert_eq!(g.alarms[0].datapoints_to_alarm, 2);
    assert_eq!(g.alarms[0].treat_missing_data, TreatMissingData::Missing);
    assert_eq!(g.alarms[1].statistic, Statistic::Percentile(99.0));
    assert_eq!(
        g.alarms[1].datapoints_to_alarm, 1,
        "defaults to EvaluationPeriods"
    );
}

#[test]
fn an_empty_policy_is_sagemakers_default_all_at_once() {
    let policy = parses("{}");
    assert_eq!(policy.deployment_config, DeploymentConfig::default());
    assert_eq!(policy.guardrails.engine, EngineChoice::Auto);
}

#[test]
fn syntax_errors_say_where() {
    assert_eq!(
        Policy::parse("{ \"DeploymentConfig\": }").map_err(|e| e.to_string()),
        Err("invalid policy (1 problem):\n  - policy: not valid JSON: expected value at line 1 column 23".to_owned())
    );
    let yaml = Policy::parse("DeploymentConfig: [").map_err(|e| e.problems[0].message.clone());
    assert!(
        matches!(&yaml, Err(m) if m.starts_with("not valid YAML")),
        "{yaml:?}"
    );
}

/// Each row: a policy and the exact problems it must produce, in order.
#[test]
fn invalid_policies_get_exact_helpful_messages() {
    let cases: &[(&str, &[&str])] = &[
        (
            "[]",
            &[
                "policy: expected an object with BlueGreenUpdatePolicy, RollingUpdatePolicy, AutoRollbackConfiguration, DeploymentConfig or Guardrails, found a list",
            ],
        ),
        (
            "DeploymentConfig: {}\nGuardRails: {}",
            &[
                "GuardRails: unknown field; expected one of BlueGreenUpdatePolicy, RollingUpdatePolicy, AutoRollbackConfiguration, DeploymentConfig or Guardrails (did you mean Guardrails?)",
            ],
        ),
        (
            r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration: { Type: ALL_AT_ONCE, WaitIntervalInSeconds: 0 }
  RollingUpdatePolicy:
    MaximumBatchSize: { Type: CAPACITY_PERCENT, Value: 10 }
    WaitIntervalInSeconds: 60
Guardrails: { Engine: native }
"#,
            &[
                "DeploymentConfig: give exactly one of BlueGreenUpdatePolicy and RollingUpdatePolicy, not both",
            ],
        ),
        (
            r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: CANARY
      CanarySize: { Type: CAPACITY_PERCENT, Value: 80 }
      WaitIntervalInSeconds: 300
"#,
            &[
                "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.CanarySize.Value: 80% exceeds the 50% SageMaker allows for a canary",
            ],
        ),
        (
            r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration: { Type: CANARY, WaitIntervalInSeconds: 300 }
"#,
            &[
                "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.CanarySize: is required when Type is CANARY",
            ],
        ),
        (
            r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: LINEAR
      LinearStepSize: { Type: CAPACITY_PERCENT, Value: 5 }
      CanarySize: { Type: INSTANCE_COUNT, Value: 1 }
      WaitIntervalInSeconds: 300
"#,
            &[
                "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.LinearStepSize.Value: 5% is below the 10% SageMaker allows for a linear step",
                "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.CanarySize: applies only to Type CANARY, not LINEAR",
            ],
        ),
        (
            r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: LINEAR
      LinearStepSize: { Type: CAPACITY_PERCENTAGE, Value: 60 }
      WaitIntervalInSeconds: 300
"#,
            &[
                "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.LinearStepSize.Type: \"CAPACITY_PERCENTAGE\" is not one of INSTANCE_COUNT or CAPACITY_PERCENT (did you mean CAPACITY_PERCENT?)",
            ],
        ),
        (
            r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration: { Type: ALL_AT_ONCE }
    TerminationWaitInSeconds: 7200
    MaximumExecutionTimeoutInSeconds: 30000
"#,
            &[
                "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.WaitIntervalInSeconds: is required, even for ALL_AT_ONCE, which does not use it (SageMaker's API requires it; AWS's all-at-once example leaves it out): add WaitIntervalInSeconds: 0",
                "DeploymentConfig.BlueGreenUpdatePolicy.TerminationWaitInSeconds: 7200 is out of range; allowed: 0 to 3600 seconds",
                "DeploymentConfig.BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds: 30000 is out of range; allowed: 600 to 28800 seconds",
            ],
        ),
        (
            r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: LINEAR
      LinearStepSize: { Type: CAPACITY_PERCENT, Value: 25 }
      WaitIntervalInSeconds: 600
    TerminationWaitInSeconds: 600
    MaximumExecutionTimeoutInSeconds: 2400
"#,
            &[
                "DeploymentConfig.BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds: 2400 must be larger than the sum of all waits: 2400 seconds (3 x WaitIntervalInSeconds 600 + TerminationWaitInSeconds 600)",
            ],
        ),
        (
            r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration: { Type: ALL_AT_ONCE, WaitIntervalInSeconds: "300" }
"#,
            &[
                "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.WaitIntervalInSeconds: expected a whole number of seconds, found \"300\"",
            ],
        ),
        (
            r#"
DeploymentConfig:
  RollingUpdatePolicy:
    MaximumBatchSize: { Type: CAPACITY_PERCENT, Value: 60 }
    WaitIntervalInSeconds: 300
    MaximumExecutionTimeoutInSeconds: 3600
Guardrails: { Engine: native }
"#,
            &[
                "DeploymentConfig.RollingUpdatePolicy.MaximumBatchSize.Value: 60% exceeds the 50% SageMaker allows for a rolling batch",
            ],
        ),
        (
            r#"
DeploymentConfig:
  RollingUpdatePolicy:
    MaximumBatchSize: { Type: CAPACITY_PERCENT, Value: 4 }
    WaitIntervalInSeconds: 300
Guardrails: { Engine: native }
"#,
            &[
                "DeploymentConfig.RollingUpdatePolicy.MaximumBatchSize.Value: 4% is below the 5% SageMaker allows for a rolling batch",
            ],
        ),
        (
            r#"
DeploymentConfig:
  RollingUpdatePolicy:
    MaximumBatchSize: { Type: CAPACITY_PERCENT, Value: 25 }
    WaitIntervalInSeconds: 300
    MaximumExecutionTimeoutInSeconds: 1200
Guardrails: { Engine: native }
"#,
            &[
                "DeploymentConfig.RollingUpdatePolicy.MaximumExecutionTimeoutInSeconds: 1200 must be larger than the sum of all waits: 1200 seconds (4 batches x WaitIntervalInSeconds 300)",
            ],
        ),
        (
            r#"
DeploymentConfig:
  RollingUpdatePolicy:
    MaximumBatchSize: { Type: INSTANCE_COUNT, Value: 1 }
    WaitIntervalInSeconds: 300
Guardrails: { Engine: variant }
"#,
            &[
                "DeploymentConfig.RollingUpdatePolicy: rolling updates replace instances inside one variant and are run by SageMaker; use Guardrails.Engine native or auto, or BlueGreenUpdatePolicy with the variant engine",
            ],
        ),
        (
            r#"
RollingUpdatePolicy:
  MaximumBatchSize: { Type: INSTANCE_COUNT, Value: 1 }
  WaitIntervalInSeconds: 300
Guardrails: { ApproveBeforeFinalShift: true }
"#,
            &[
                "Guardrails.ApproveBeforeFinalShift: needs the variant engine, but RollingUpdatePolicy is run by SageMaker (the native engine); use BlueGreenUpdatePolicy, or drop this field",
            ],
        ),
        (
            r#"
BlueGreenUpdatePolicy:
  TrafficRoutingConfiguration: { Type: ALL_AT_ONCE, WaitIntervalInSeconds: 0 }
DeploymentConfig:
  AutoRollbackConfiguration: { Alarms: [{ AlarmName: a }] }
"#,
            &[
                "DeploymentConfig: give SageMaker's DeploymentConfig either as it is (BlueGreenUpdatePolicy at the top, as UpdateEndpoint takes it) or wrapped in DeploymentConfig, not both",
            ],
        ),
        (
            r#"
BlueGreenUpdatePolicy:
  TrafficRoutingConfiguration: { Type: ALL_AT_ONCE, WaitIntervalInSeconds: 0 }
RollingUpdatePolicy:
  MaximumBatchSize: { Type: CAPACITY_PERCENT, Value: 10 }
  WaitIntervalInSeconds: 60
"#,
            &[
                "policy: give exactly one of BlueGreenUpdatePolicy and RollingUpdatePolicy, not both",
            ],
        ),
        (
            r#"
BlueGreenUpdatePolicy:
  TrafficRoutingConfiguration:
    Type: LINEAR
    LinearStepSize: { Type: CAPACITY_PERCENTAGE, Value: 20 }
    WaitIntervalInSeconds: 300
  MaximumExecutionTimeoutInSeconds: 900
"#,
            &[
                "BlueGreenUpdatePolicy.TrafficRoutingConfiguration.LinearStepSize.Type: \"CAPACITY_PERCENTAGE\" is not one of INSTANCE_COUNT or CAPACITY_PERCENT (did you mean CAPACITY_PERCENT?)",
            ],
        ),
        (
            "DeploymentConfig:\n  AutoRollbackConfiguration:\n    Alarms: []\n",
            &[
                "DeploymentConfig.AutoRollbackConfiguration.Alarms: has 0 entries; allowed: 1 to 10 alarms",
            ],
        ),
        (
            &ELEVEN_ALARMS,
            &[
                "DeploymentConfig.AutoRollbackConfiguration.Alarms: has 11 entries; allowed: 1 to 10 alarms",
            ],
        ),
        (
            r#"
DeploymentConfig:
  AutoRollbackConfiguration:
    Alarms:
      - AlarmName: ""
      - { AlarmName: a, Threshold: 1 }
      - AlarmName: a
"#,
            &[
                "DeploymentConfig.AutoRollbackConfiguration.Alarms[0].AlarmName: \"\" has 0 characters; allowed: 1 to 255",
                "DeploymentConfig.AutoRollbackConfiguration.Alarms[1].Threshold: unknown field; the only field allowed here is AlarmName",
                "DeploymentConfig.AutoRollbackConfiguration.Alarms[2].AlarmName: \"a\" is listed twice",
            ],
        ),
        (
            "DeploymentConfig:\n  AutoRollbackConfiguration:\n    Alarms: [{AlarmName: a}, {AlarmName: a}]\n",
            &[
                "DeploymentConfig.AutoRollbackConfiguration.Alarms[1].AlarmName: \"a\" is listed twice",
            ],
        ),
        (
            "Guardrails:\n  Engine: blue-green\n",
            &["Guardrails.Engine: \"blue-green\" is not one of auto, variant or native"],
        ),
        (
            "Guardrails:\n  TrafficSteps: [5, 5, 0, 150, 50]\n",
            &[
                "Guardrails.TrafficSteps[1]: 5% does not increase on the step before it (5%); steps must rise strictly",
                "Guardrails.TrafficSteps[2]: 0 is not a share of requests; allowed: more than 0 and at most 100 percent, in steps of 0.01",
                "Guardrails.TrafficSteps[3]: 150 is not a share of requests; allowed: more than 0 and at most 100 percent, in steps of 0.01",
            ],
        ),
        (
            "Guardrails:\n  TrafficSteps: [1, 10, 50]\n",
            &[
                "Guardrails.TrafficSteps[2]: the last step is 50%; it must be 100 so that green ends with all traffic",
            ],
        ),
        (
            r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration: { Type: ALL_AT_ONCE, WaitIntervalInSeconds: 300 }
    TerminationWaitInSeconds: 0
    MaximumExecutionTimeoutInSeconds: 900
Guardrails:
  TrafficSteps: [1, 5, 25, 100]
"#,
            &[
                "DeploymentConfig.BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds: 900 must be larger than the sum of all waits: 900 seconds (3 x WaitIntervalInSeconds 300 + TerminationWaitInSeconds 0)",
            ],
        ),
        (
            r#"
Guardrails:
  Engine: native
  TrafficSteps: [10, 100]
  ApproveBeforeFinalShift: true
  Alarms:
    - { Name: e, MetricName: Invocation5XXErrors, Statistic: Average, ComparisonOperator: GreaterThanThreshold, Threshold: 0.1, PeriodInSeconds: 60, EvaluationPeriods: 1 }
"#,
            &[
                "Guardrails.TrafficSteps: needs Engine variant: SageMaker shifts instances, not a list of request shares",
                "Guardrails.Alarms: needs Engine variant: name existing alarms in DeploymentConfig.AutoRollbackConfiguration instead",
                "Guardrails.ApproveBeforeFinalShift: needs Engine variant: SageMaker cannot pause a deployment for approval",
            ],
        ),
        (
            r#"
Guardrails:
  ApproveBeforeFinalShift: "yes"
  PollIntervalInSeconds: 0
  FinalFleetBakeInSeconds: 3601
  Alarms:
    - Name: "bad name"
      MetricName: Invocation5XXErrors
      Statistic: p100
      ComparisonOperator: Above
      Threshold: high
      PeriodInSeconds: 45
      EvaluationPeriods: 2
      DatapointsToAlarm: 3
      TreatMissingData: breach
      Dimensions: {}
"#,
            &[
                "Guardrails.Alarms[0].Name: \"bad name\" may hold only letters, digits, '-' and '_'",
                "Guardrails.Alarms[0].Statistic: \"p100\" is not a statistic; allowed: Average, Sum, SampleCount, Minimum, Maximum or a percentile such as p99",
                "Guardrails.Alarms[0].ComparisonOperator: \"Above\" is not one of GreaterThanOrEqualToThreshold, GreaterThanThreshold, LessThanThreshold or LessThanOrEqualToThreshold",
                "Guardrails.Alarms[0].Threshold: expected a number, found \"high\"",
                "Guardrails.Alarms[0].PeriodInSeconds: 45 is not a CloudWatch alarm period; allowed: 10, 20, 30 or a multiple of 60 seconds",
                "Guardrails.Alarms[0].DatapointsToAlarm: 3 exceeds EvaluationPeriods (2); an alarm needs at most that many datapoints",
                "Guardrails.Alarms[0].TreatMissingData: \"breach\" is not one of breaching, notBreaching, ignore or missing (did you mean breaching?)",
                "Guardrails.Alarms[0].Dimensions: unknown field; expected one of Name, Namespace, MetricName, Statistic, ComparisonOperator, Threshold, PeriodInSeconds, EvaluationPeriods, DatapointsToAlarm or TreatMissingData",
                "Guardrails.ApproveBeforeFinalShift: expected true or false, found \"yes\"",
                "Guardrails.PollIntervalInSeconds: 0 is out of range; allowed: 1 to 300 seconds",
                "Guardrails.FinalFleetBakeInSeconds: 3601 is out of range; allowed: 0 to 3600 seconds",
            ],
        ),
        (
            r#"
Guardrails:
  Alarms:
    - { Name: e, MetricName: M, Statistic: Sum, ComparisonOperator: GreaterThanThreshold, Threshold: 1, PeriodInSeconds: 3600, EvaluationPeriods: 48 }
    - { Name: e, MetricName: M, Statistic: Sum, ComparisonOperator: GreaterThanThreshold, Threshold: 1, PeriodInSeconds: 60, EvaluationPeriods: 1 }
"#,
            &[
                "Guardrails.Alarms[0].EvaluationPeriods: 48 periods of 3600 seconds look back more than the one day CloudWatch allows",
                "Guardrails.Alarms[1].Name: \"e\" is used by another template; names must be unique",
            ],
        ),
    ];
    for (yaml, expected) in cases {
        assert_eq!(problems(yaml), *expected, "for policy:\n{yaml}");
    }
}

static ELEVEN_ALARMS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let alarms: String = (0..11)
        .map(|i| format!("      - AlarmName: a{i}\n"))
        .collect();
    format!("DeploymentConfig:\n  AutoRollbackConfiguration:\n    Alarms:\n{alarms}")
});

#[test]
fn all_problems_are_reported_at_once() {
    let found = problems(
        r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: CANARY
      CanarySize: { Type: CAPACITY_PERCENT, Value: 90 }
      WaitIntervalInSeconds: 5000
    TerminationWaitInSecs: 60
  AutoRollbackConfiguration:
    Alarms: [{ AlarmName: "" }]
"#,
    );
    assert_eq!(found.len(), 4, "{found:#?}");
}

/// AWS's own `DeploymentConfig` examples, exactly as its documentation prints them (the
/// `DeploymentConfig=` argument of `update_endpoint` in the SageMaker Developer Guide's pages
/// "Use canary traffic shifting", "Use linear traffic shifting" and "Use all at once traffic
/// shifting", awsdocs/amazon-sagemaker-developer-guide), as JSON.
const AWS_CANARY: &str = r#"{
    "BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {
            "Type": "CANARY",
            "CanarySize": {
                "Type": "CAPACITY_PERCENT",
                "Value": 30
            },
            "WaitIntervalInSeconds": 600
        },
        "TerminationWaitInSeconds": 600,
        "MaximumExecutionTimeoutInSeconds": 1800
    },
    "AutoRollbackConfiguration": {
        "Alarms": [
            {
                "AlarmName": "<your-cw-alarm>"
            }
        ]
    }
}"#;

const AWS_LINEAR: &str = r#"{
    "BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {
            "Type": "LINEAR",
            "LinearStepSize": {
                "Type": "CAPACITY_PERCENT",
                "Value": 20
            },
            "WaitIntervalInSeconds": 300
        },
        "TerminationWaitInSeconds": 300,
        "MaximumExecutionTimeoutInSeconds": 3600
    },
    "AutoRollbackConfiguration": {
        "Alarms": [
            {
                "AlarmName": "<your-cw-alarm>"
            }
        ]
    }
}"#;

/// The all-at-once page's example leaves out `WaitIntervalInSeconds`, which SageMaker's API
/// requires (boto3 refuses it before sending): a known mistake of the page.
const AWS_ALL_AT_ONCE: &str = r#"{
    "BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {
            "Type": "ALL_AT_ONCE"
        },
        "TerminationWaitInSeconds": 600,
        "MaximumExecutionTimeoutInSeconds": 1800
    },
    "AutoRollbackConfiguration": {
        "Alarms": [
            {
                "AlarmName": "<your-cw-alarm>"
            }
        ]
    }
}"#;

/// The CLI examples of the canary and all-at-once pages pass `--deployment-config` without the
/// object's braces (`'"BlueGreenUpdatePolicy": {...}, "AutoRollbackConfiguration": {...}'`).
const AWS_CLI_CANARY: &str = r#""BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "CANARY",
    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 30}, "WaitIntervalInSeconds": 600},
    "TerminationWaitInSeconds": 600, "MaximumExecutionTimeoutInSeconds": 1800},
    "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "<your-alarm>"}]}"#;

/// The linear page's CLI example has them, but closes one brace too few.
const AWS_CLI_LINEAR: &str = r#"{"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "LINEAR",
    "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 20}, "WaitIntervalInSeconds": 300},
    "TerminationWaitInSeconds": 300, "MaximumExecutionTimeoutInSeconds": 3600},
    "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "<your-alarm>"}]}"#;

/// The rolling-deployment page ("Use rolling deployments") prints a template rather than a
/// document: `number` placeholders (filled in here with 3600, 300, 25 and 100) and `"Type":
/// "INSTANCE_COUNT" | "CAPACITY_PERCENTAGE" (default)`, whose `CAPACITY_PERCENTAGE` is not
/// SageMaker's enum (`CAPACITY_PERCENT`) and whose "default" does not exist (`Type` is
/// required): its known mistakes. Here each `Type` is the page's "default".
const AWS_ROLLING_AS_PRINTED: &str = r#"{
        "AutoRollbackConfiguration": {
            "Alarms": [
                {
                    "AlarmName": "<your-cw-alarm>"
                }
            ]
        },
        "RollingUpdatePolicy": {
            "MaximumExecutionTimeoutInSeconds": 3600,
            "WaitIntervalInSeconds": 300,
            "MaximumBatchSize": {
                "Type": "CAPACITY_PERCENTAGE",
                "Value": 25
            },
            "RollbackMaximumBatchSize": {
                "Type": "CAPACITY_PERCENTAGE",
                "Value": 100
            }
        }
    }"#;

#[test]
fn aws_documented_deployment_configs_are_accepted_as_printed() {
    for (name, text) in [("canary", AWS_CANARY), ("linear", AWS_LINEAR)] {
        let policy = Policy::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(policy.guardrails.engine, EngineChoice::Auto, "{name}");
        assert_eq!(policy.named_alarms().len(), 1, "{name}");
        assert!(policy.deployment_config.blue_green_update_policy.is_some());
        // The same document wrapped in DeploymentConfig reads the same.
        let wrapped = format!("{{ \"DeploymentConfig\": {text} }}");
        assert_eq!(Policy::parse(&wrapped), Ok(policy.clone()), "{name}");
    }
    let fixed = AWS_ROLLING_AS_PRINTED.replace("CAPACITY_PERCENTAGE", "CAPACITY_PERCENT");
    let rolling = parses(&fixed);
    let r = rolling.deployment_config.rolling_update_policy.unwrap();
    assert_eq!(r.maximum_batch_size.value, 25);
    assert_eq!(r.rollback_maximum_batch_size.map(|s| s.value), Some(100));
}

#[test]
fn the_known_mistakes_of_awss_examples_are_refused_naming_the_field() {
    assert_eq!(
        problems(AWS_ALL_AT_ONCE),
        vec![
            "BlueGreenUpdatePolicy.TrafficRoutingConfiguration.WaitIntervalInSeconds: is required, even for ALL_AT_ONCE, which does not use it (SageMaker's API requires it; AWS's all-at-once example leaves it out): add WaitIntervalInSeconds: 0"
        ]
    );
    assert_eq!(
        problems(AWS_ROLLING_AS_PRINTED),
        vec![
            "RollingUpdatePolicy.MaximumBatchSize.Type: \"CAPACITY_PERCENTAGE\" is not one of INSTANCE_COUNT or CAPACITY_PERCENT (did you mean CAPACITY_PERCENT?)",
            "RollingUpdatePolicy.RollbackMaximumBatchSize.Type: \"CAPACITY_PERCENTAGE\" is not one of INSTANCE_COUNT or CAPACITY_PERCENT (did you mean CAPACITY_PERCENT?)",
        ]
    );
    let errors = |text: &str| Policy::parse(text).map_err(|e| e.to_string());
    assert_eq!(
        errors(AWS_CLI_CANARY),
        Err("invalid policy (1 problem):\n  - policy: the members of a JSON object without its braces (as in AWS's CLI examples): wrap the document in { }".to_owned())
    );
    assert_eq!(
        errors(AWS_CLI_LINEAR),
        Err("invalid policy (1 problem):\n  - policy: not valid JSON: EOF while parsing an object at line 4 column 76".to_owned())
    );
}

/// A document an attacker sized to hold the function is refused before any parser runs.
#[test]
fn huge_deep_or_wide_policies_are_refused_before_parsing() {
    // 250 KB of nested YAML: quadratic in serde_yaml_ng (61 s of CPU when it was parsed).
    let nested: String = (0..250_000 / 4).map(|_| "- [").collect();
    let e = Policy::parse(&nested).unwrap_err();
    assert_eq!(e.problems.len(), 1);
    assert!(
        e.problems[0].message.contains("at most 65536 are accepted"),
        "{e}"
    );
    // Small, but nested: refused on the nesting, naming the line.
    let deep = format!(
        "DeploymentConfig:\n  x: {}1{}\n",
        "[".repeat(30),
        "]".repeat(30)
    );
    let e = Policy::parse(&deep).unwrap_err();
    assert!(
        e.problems[0]
            .message
            .contains("line 2 opens more than 16 nested"),
        "{e}"
    );
    // A parsed document with too many values (the request's JSON).
    let alarms = vec![serde_json::Value::Null; 20_000];
    let wide = serde_json::json!({ "AutoRollbackConfiguration": { "Alarms": alarms } });
    let e = Policy::from_value(&wide).unwrap_err();
    assert!(
        e.problems[0].message.contains("more than 10000 values"),
        "{e}"
    );
    // Problems are counted past the first 50.
    let bad: Vec<serde_json::Value> = (0..100)
        .map(|i| serde_json::json!({ "AlarmName": "", "Extra": i }))
        .collect();
    let many = serde_json::json!({ "AutoRollbackConfiguration": { "Alarms": bad } });
    let e = Policy::from_value(&many).unwrap_err();
    assert_eq!(e.problems.len(), limits::MAX_PROBLEMS + 1, "{e}");
    assert!(e.problems[50].message.contains("more problems"), "{e}");
}

#[test]
fn the_analysis_section_reads_what_to_compare_and_defaults_the_rest() {
    let policy = parses(
        r#"Guardrails:
  Analysis:
    Compare:
      - Metric: ErrorRate
        Include4XX: true
        MinimumDegradationPercent: 25
      - Metric: Latency
        Percentile: 99.5
      - Metric: Custom
        Namespace: FraudScorer
        MetricName: BadPredictions
    FalseRollbackRate: 0.005
    WhenInconclusive: HoldForApproval
    PeriodInSeconds: 300
    EndBakesEarly: true
"#,
    );
    let analysis = policy.guardrails.analysis.clone().unwrap();
    assert_eq!(
        analysis.compare,
        vec![
            Comparison {
                metric: ComparedMetric::ErrorRate { include_4xx: true },
                minimum_degradation_percent: 25.0,
            },
            Comparison {
                metric: ComparedMetric::Latency { percentile: 99.5 },
                minimum_degradation_percent: 50.0,
            },
            Comparison {
                metric: ComparedMetric::Custom {
                    namespace: "FraudScorer".to_owned(),
                    metric_name: "BadPredictions".to_owned(),
                },
                minimum_degradation_percent: 50.0,
            },
        ]
    );
    assert_eq!(analysis.false_rollback_rate, 0.005);
    assert_eq!(analysis.minimum_green_requests, 1_000);
    assert_eq!(analysis.period_in_seconds, 300);
    assert!(analysis.end_bakes_early);
    assert_eq!(
        analysis.when_inconclusive,
        WhenInconclusive::HoldForApproval
    );
    // An empty section is the defaults; no section at all is none (the judge off, for now).
    let empty = parses("Guardrails:\n  Analysis: {}\n");
    assert_eq!(empty.guardrails.analysis, Some(Analysis::default()));
    assert_eq!(parses("Guardrails: {}\n").guardrails.analysis, None);
    // It serializes back as written.
    let back = serde_json::to_value(&analysis).unwrap();
    assert_eq!(back["Compare"][0]["Metric"], "ErrorRate");
    assert_eq!(back["Compare"][0]["Include4XX"], true);
    assert_eq!(back["Compare"][2]["MetricName"], "BadPredictions");
    let again: Analysis = serde_json::from_value(back).unwrap();
    assert_eq!(again, analysis);
}

#[test]
fn invalid_analyses_say_what_and_where() {
    let found = problems(
        r#"Guardrails:
  Analysis:
    Compare:
      - Metric: ErrorRates
      - Metric: Latency
        Percentile: 100
        Include4XX: true
      - Metric: Custom
        Namespace: FraudScorer
      - Metric: Latency
        MinimumDegradationPercent: 0
      - Metric: Latency
    FalseRollbackRate: 0.5
    MinimumGreenRequests: 0
    WhenInconclusive: Pass
    ExtendUpToSeconds: 60
    PeriodInSeconds: 45
    EndBakesEarly: sometimes
"#,
    );
    let expect = [
        "Guardrails.Analysis.Compare[0].Metric: \"ErrorRates\" is not one of ErrorRate, Latency or Custom (did you mean ErrorRate?)",
        "Guardrails.Analysis.Compare[1].Include4XX: only an ErrorRate comparison takes Include4XX",
        "Guardrails.Analysis.Compare[1].Percentile: 100 is out of range; allowed: from 50 to 99.9",
        "Guardrails.Analysis.Compare[2].MetricName: is required",
        "Guardrails.Analysis.Compare[3].MinimumDegradationPercent: 0 is out of range; allowed: more than 0 to 1000 percent",
        "Guardrails.Analysis.FalseRollbackRate: 0.5 is out of range; allowed: more than 0 to 0.2",
        "Guardrails.Analysis.MinimumGreenRequests: 0 is out of range; allowed: 1 to 10000000 requests",
        "Guardrails.Analysis.ExtendUpToSeconds: only WhenInconclusive: Extend takes ExtendUpToSeconds",
        "Guardrails.Analysis.PeriodInSeconds: 45 is not a GetMetricData period; allowed: 1, 5, 10, 30 or a multiple of 60 seconds",
    ];
    for e in expect {
        assert!(found.iter().any(|f| f == e), "missing {e:?} in {found:#?}");
    }
    let twice = problems(
        "Guardrails:\n  Analysis:\n    Compare:\n      - Metric: Latency\n      - Metric: Latency\n        MinimumDegradationPercent: 20\n",
    );
    assert_eq!(
        twice,
        ["Guardrails.Analysis.Compare[1].Metric: compares what another entry already compares"]
    );
}
