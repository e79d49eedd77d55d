//! Plans: the steps each policy gives, the rounding of shares to instances, and the fleet
//! problems a policy alone cannot show.

use super::*;

fn fleet(count: u32) -> Fleet {
    Fleet {
        endpoint_name: "fraud-scorer".to_owned(),
        config_name: "fraud-scorer-v1".to_owned(),
        variants: vec![FleetVariant {
            variant_name: "AllTraffic".to_owned(),
            model_name: String::new(),
            instance_type: "ml.m5.xlarge".to_owned(),
            instance_count: count,
        }],
    }
}

fn green(count: u32) -> GreenSpec {
    GreenSpec {
        variant_name: "green-v2".to_owned(),
        model_name: "fraud-scorer-v2".to_owned(),
        instance_type: "ml.m5.xlarge".to_owned(),
        instance_count: count,
    }
}

fn policy(yaml: &str) -> Policy {
    Policy::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn plan(yaml: &str, count: u32) -> Result<Plan, PlanError> {
    Plan::new("d1", &policy(yaml), &fleet(count), &green(count))
}

/// `(green %, green instances, bake)` per step.
fn steps(plan: &Plan) -> Vec<(String, u32, u32)> {
    plan.steps
        .iter()
        .map(|s| (s.green_share.to_string(), s.green_instances, s.bake_secs))
        .collect()
}

fn row(share: &str, instances: u32, bake: u32) -> (String, u32, u32) {
    (share.to_owned(), instances, bake)
}

const CANARY: &str = r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: CANARY
      CanarySize: { Type: CAPACITY_PERCENT, Value: 10 }
      WaitIntervalInSeconds: 300
    TerminationWaitInSeconds: 600
    MaximumExecutionTimeoutInSeconds: 3600
  AutoRollbackConfiguration:
    Alarms: [{ AlarmName: fraud-scorer-5xx }]
Guardrails:
  Alarms:
    - Name: errors
      MetricName: Invocation5XXErrors
      Statistic: Average
      ComparisonOperator: GreaterThanThreshold
      Threshold: 0.05
      PeriodInSeconds: 60
      EvaluationPeriods: 3
      DatapointsToAlarm: 2
"#;

#[test]
fn canary_is_one_small_step_then_everything() {
    let plan = plan(CANARY, 4).unwrap();
    assert_eq!(steps(&plan), vec![row("10%", 1, 300), row("100%", 4, 600)]);
    assert_eq!(plan.waits_secs, 900);
    assert_eq!(plan.timeout_secs, 3600);
    assert_eq!(plan.blue_green_config_name, "guardrails-d1-blue-green");
    assert_eq!(plan.green_config_name, "guardrails-d1-green");
    let watched: Vec<&str> = plan.watched_alarm_names().collect();
    assert_eq!(
        watched,
        vec![
            "fraud-scorer-5xx",
            "guardrails-d1-errors",
            "guardrails-d1-errors-final"
        ]
    );
    assert_eq!(
        plan.cutover_bake_secs, 600,
        "the final fleet bakes as long as the last step"
    );
    let during = |final_fleet| {
        plan.watched_alarms
            .iter()
            .filter(|a| a.watched(final_fleet))
            .map(|a| a.alarm_name.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        during(false),
        vec!["fraud-scorer-5xx", "guardrails-d1-errors"]
    );
    assert_eq!(
        during(true),
        vec!["fraud-scorer-5xx", "guardrails-d1-errors-final"]
    );
}

#[test]
fn linear_steps_are_equal_and_end_at_all_traffic() {
    let yaml = r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: LINEAR
      LinearStepSize: { Type: CAPACITY_PERCENT, Value: 30 }
      WaitIntervalInSeconds: 120
    TerminationWaitInSeconds: 300
"#;
    let plan = plan(yaml, 3).unwrap();
    assert_eq!(
        steps(&plan),
        vec![
            row("30%", 1, 120),
            row("60%", 2, 120),
            row("90%", 3, 120),
            row("100%", 3, 300)
        ]
    );
    assert_eq!(
        plan.timeout_secs,
        660 + PROVISIONING_ALLOWANCE_SECS,
        "default timeout"
    );
}

#[test]
fn all_at_once_is_one_step_with_the_final_bake() {
    let yaml = r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration: { Type: ALL_AT_ONCE, WaitIntervalInSeconds: 0 }
    TerminationWaitInSeconds: 900
"#;
    assert_eq!(steps(&plan(yaml, 2).unwrap()), vec![row("100%", 2, 900)]);
}

#[test]
fn no_update_policy_is_all_at_once_without_a_bake_and_warns() {
    let plan = plan("{}", 2).unwrap();
    assert_eq!(steps(&plan), vec![row("100%", 2, 0)]);
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.starts_with("no alarm is watched"))
    );
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.starts_with("the final bake is 0 s"))
    );
}

#[test]
fn explicit_traffic_steps_replace_the_policy_sizes() {
    let yaml = r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: CANARY
      CanarySize: { Type: CAPACITY_PERCENT, Value: 10 }
      WaitIntervalInSeconds: 60
    TerminationWaitInSeconds: 120
Guardrails:
  TrafficSteps: [1, 5, 25, 100]
"#;
    let plan = plan(yaml, 8).unwrap();
    assert_eq!(
        steps(&plan),
        vec![
            row("1%", 1, 60),
            row("5%", 1, 60),
            row("25%", 2, 60),
            row("100%", 8, 120)
        ]
    );
    assert_eq!(
        plan.steps_from,
        "Guardrails.TrafficSteps [1%, 5%, 25%, 100%]"
    );
}

#[test]
fn instance_sizes_become_shares_of_the_green_fleet() {
    let yaml = r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: CANARY
      CanarySize: { Type: INSTANCE_COUNT, Value: 1 }
      WaitIntervalInSeconds: 60
"#;
    assert_eq!(
        steps(&plan(yaml, 3).unwrap()),
        vec![row("33.33%", 1, 60), row("100%", 3, 0)]
    );
}

#[test]
fn an_instance_canary_above_half_the_fleet_is_refused_with_the_numbers() {
    let yaml = r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: CANARY
      CanarySize: { Type: INSTANCE_COUNT, Value: 1 }
      WaitIntervalInSeconds: 60
"#;
    let err = plan(yaml, 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot plan this deployment:\n  - DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.CanarySize.Value: \
         1 instance of a 1-instance fleet is 100%; SageMaker allows 0.01% to 50% for a canary"
    );
}

#[test]
fn a_percent_canary_on_one_instance_still_sends_only_its_share_of_requests() {
    let yaml = r#"
DeploymentConfig:
  BlueGreenUpdatePolicy:
    TrafficRoutingConfiguration:
      Type: CANARY
      CanarySize: { Type: CAPACITY_PERCENT, Value: 5 }
      WaitIntervalInSeconds: 60
"#;
    assert_eq!(
        steps(&plan(yaml, 1).unwrap()),
        vec![row("5%", 1, 60), row("100%", 1, 0)]
    );
}

#[test]
fn fleet_problems_are_all_reported() {
    let mut two = fleet(2);
    two.variants.push(FleetVariant {
        variant_name: "Shadow".to_owned(),
        model_name: String::new(),
        instance_type: "ml.m5.large".to_owned(),
        instance_count: 1,
    });
    let mut bad_green = green(0);
    bad_green.variant_name = "-bad".to_owned();
    bad_green.model_name = "fraud_scorer:v2".to_owned();
    bad_green.instance_type = "ml.m5.xlargee".to_owned();
    let err = Plan::new("no spaces please", &policy("{}"), &two, &bad_green).unwrap_err();
    let messages: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        vec![
            "deployment id: \"no spaces please\" must be 1 to 32 letters, digits or '-', starting with a letter or digit",
            "fleet: endpoint fraud-scorer has 2 production variants (AllTraffic, Shadow); Guardrails deploys to endpoints with exactly one",
            "green.model_name: \"fraud_scorer:v2\" is not a SageMaker model name (1 to 63 letters, digits or '-', starting and ending with a letter or digit)",
            "green.instance_type: \"ml.m5.xlargee\" is not an instance type SageMaker endpoints run on (ProductionVariantInstanceType, for example ml.m5.xlarge)",
            "green.instance_count: 0 instances cannot serve traffic; give at least 1",
            "green.variant_name: \"-bad\" is not a SageMaker variant name (1 to 63 letters, digits or '-')",
        ]
    );
}

/// The list the plan checks instance types against is SageMaker's API model's, as the SDK
/// this workspace builds with carries it (regenerate `instance_types.txt` when this fails).
#[cfg(feature = "aws")]
#[test]
fn instance_types_are_the_api_models() {
    let sdk: Vec<&str> = aws_sdk_sagemaker::types::ProductionVariantInstanceType::values().to_vec();
    let ours: Vec<&str> = INSTANCE_TYPES.lines().collect();
    assert_eq!(ours, sdk);
    assert!(is_instance_type("ml.g5.2xlarge") && !is_instance_type("ml.g5.2xlarge "));
}

#[test]
fn green_needs_a_variant_name_of_its_own() {
    let mut same = green(1);
    same.variant_name = "AllTraffic".to_owned();
    let variant = policy(r#"{ "Guardrails": { "Engine": "variant" } }"#);
    let err = Plan::new("d1", &variant, &fleet(1), &same).unwrap_err();
    assert!(
        err.problems[0].message.contains("is blue's variant name"),
        "{err}"
    );
}

#[test]
fn rolling_batches_replace_blue_instances() {
    let yaml = r#"
DeploymentConfig:
  RollingUpdatePolicy:
    MaximumBatchSize: { Type: INSTANCE_COUNT, Value: 2 }
    WaitIntervalInSeconds: 60
Guardrails: { Engine: native }
"#;
    let plan = plan(yaml, 5).unwrap();
    let batches: Vec<(u32, u32)> = plan
        .steps
        .iter()
        .map(|s| (s.green_instances, s.blue_instances))
        .collect();
    assert_eq!(batches, vec![(2, 3), (4, 1), (5, 0)]);
}

#[test]
fn a_tight_timeout_warns_about_provisioning_time() {
    assert_eq!(
        plan(CANARY, 4).unwrap().warnings,
        Vec::<String>::new(),
        "2700 s spare is enough"
    );
    let tight = CANARY.replace(
        "MaximumExecutionTimeoutInSeconds: 3600",
        "MaximumExecutionTimeoutInSeconds: 1200",
    );
    assert_eq!(
        plan(&tight, 4).unwrap().warnings,
        vec![
            "the timeout (1200 s) leaves 300 s beyond the bakes for provisioning green and \
              shifting; SageMaker usually takes 8 to 30 minutes to provision"
        ]
    );
}

#[test]
fn the_canary_plan_reads_well() {
    insta::assert_snapshot!(plan(CANARY, 4).unwrap().to_string());
}

#[test]
fn the_plan_round_trips_through_json() {
    let plan = plan(CANARY, 4).unwrap();
    let json = serde_json::to_string(&plan).unwrap();
    assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
}

#[test]
fn the_judge_needs_room_in_the_deadline_a_record_that_fits_and_under_native_a_pass() {
    let canary = |analysis: &str, timeout: &str| {
        format!(
            "BlueGreenUpdatePolicy:\n  TrafficRoutingConfiguration:\n    Type: CANARY\n    CanarySize: {{ Type: CAPACITY_PERCENT, Value: 10 }}\n    WaitIntervalInSeconds: 300\n  TerminationWaitInSeconds: 600\n{timeout}Guardrails:\n  Analysis: {analysis}\n"
        )
    };
    // The canary's first step is judged; extending it may take 600 s more, and the default
    // deadline has room for it.
    let judged = plan(&canary("{}", ""), 4).unwrap();
    assert!(judged.analysis.is_some());
    let without = plan(CANARY, 4).unwrap();
    assert_eq!(
        judged.timeout_secs,
        judged.waits_secs + PROVISIONING_ALLOWANCE_SECS + 600
    );
    assert!(without.analysis.is_none());
    assert!(format!("{judged}").contains("judged at step 1, green against blue per 60 s"));
    // 1 s periods over an 8-hour deadline would not fit in the record.
    let e = plan(
        &canary(
            "{ PeriodInSeconds: 1 }",
            "  MaximumExecutionTimeoutInSeconds: 28800\n",
        ),
        4,
    )
    .unwrap_err();
    assert_eq!(
        e.problems[0].to_string(),
        "Guardrails.Analysis.PeriodInSeconds: 1 s periods over a deadline of 28800 s and 1 \
         comparisons are 28800 periods of counts; the deployment record keeps at most 2000: use \
         a longer period"
    );
    // SageMaker's own rollout ends its bakes itself: an inconclusive judge can only pass.
    let native = format!("{}  Engine: native\n", canary("{}", ""));
    let e = plan(&native, 4).unwrap_err();
    assert!(
        e.problems
            .iter()
            .any(|p| p.path == "Guardrails.Analysis.WhenInconclusive"
                && p.message.contains("variant engine")),
        "{e}"
    );
    let passing = format!(
        "{}  Engine: native\n",
        canary("{ WhenInconclusive: Pass }", "")
    );
    let native = plan(&passing, 4).unwrap();
    assert!(
        format!("{native}").contains("judged while SageMaker bakes, the new fleet against the old per 60 s (a worse green sets alarm guardrails-d1-judge"),
        "{native}"
    );
}
