//! Alarms as CloudWatch has them, on the local stack through the real SDK: composite alarms
//! (their rule, their state-change events, DescribeAlarms returning them only when asked),
//! metric-math alarms evaluated from the data, and Guardrails rolling back on a composite alarm
//! named in a policy.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudwatch::types::{
    AlarmType, ComparisonOperator, Dimension, Metric, MetricDataQuery, MetricStat,
};
use guardrails::core::{Cause, Phase};
use guardrails::memory::MemoryBus;
use guardrails_local::fixtures::{ErrorAlarm, put_error_alarm};
use guardrails_tests::local::{self, Clients, OnStack, endpoint_serving, wait_for};
use guardrails_tests::{example_policy, sample_plan};

async fn state(c: &Clients, name: &str, kind: AlarmType) -> Option<String> {
    let out = c
        .cloudwatch
        .describe_alarms()
        .alarm_names(name)
        .alarm_types(kind)
        .send()
        .await
        .unwrap();
    out.metric_alarms()
        .iter()
        .map(|a| a.state_value().map(|s| s.as_str().to_owned()))
        .chain(
            out.composite_alarms()
                .iter()
                .map(|a| a.state_value().map(|s| s.as_str().to_owned())),
        )
        .next()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composite_alarm_follows_its_rule_and_is_described_only_when_asked_for() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    // No data: "errors" treats missing data as breaching (ALARM), "latency" as not (OK), so
    // their states hold whatever the ticks do.
    for (name, missing) in [("errors", "breaching"), ("latency", "notBreaching")] {
        c.cloudwatch
            .put_metric_alarm()
            .alarm_name(name)
            .namespace("AWS/SageMaker")
            .metric_name("Invocation5XXErrors")
            .dimensions(
                Dimension::builder()
                    .name("EndpointName")
                    .value("fraud")
                    .build(),
            )
            .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
            .period(10)
            .evaluation_periods(1)
            .threshold(0.05)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .treat_missing_data(missing)
            .send()
            .await
            .unwrap();
    }
    c.cloudwatch
        .put_composite_alarm()
        .alarm_name("fraud-bad")
        .alarm_rule(
            r#"ALARM("errors") OR ALARM(arn:aws:cloudwatch:us-east-1:123456789012:alarm:latency)"#,
        )
        .send()
        .await
        .unwrap();
    wait_for(async || {
        state(&c, "fraud-bad", AlarmType::CompositeAlarm)
            .await
            .as_deref()
            == Some("ALARM")
    })
    .await;
    // DescribeAlarms without AlarmTypes: metric alarms only, "even if composite alarms exist".
    let plain = c.cloudwatch.describe_alarms().send().await.unwrap();
    assert_eq!(plain.metric_alarms().len(), 2);
    assert!(plain.composite_alarms().is_empty());
    let both = c
        .cloudwatch
        .describe_alarms()
        .alarm_types(AlarmType::CompositeAlarm)
        .send()
        .await
        .unwrap();
    assert_eq!(
        both.composite_alarms()[0].alarm_rule().unwrap(),
        r#"ALARM("errors") OR ALARM(arn:aws:cloudwatch:us-east-1:123456789012:alarm:latency)"#
    );
    // Its change went to EventBridge like any alarm's, with the rule.
    let events = stack.emulator.emulator.lock().unwrap().events.clone();
    let change = events
        .iter()
        .find(|e| e.detail["alarmName"] == "fraud-bad" && e.detail["state"]["value"] == "ALARM")
        .unwrap();
    assert_eq!(change.detail["state"]["value"], "ALARM");
    assert!(change.detail["configuration"]["alarmRule"].is_string());
    let rule_error = c
        .cloudwatch
        .put_composite_alarm()
        .alarm_name("broken")
        .alarm_rule("ALARM(errors) XOR ALARM(latency)")
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{rule_error:?}").contains("not a valid rule"),
        "{rule_error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_math_alarm_is_accepted_and_evaluated_from_the_data() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    endpoint_serving(&c, "fraud", "fraud-v1", "fraud-model-v1", 1).await;
    local::set_model(&stack, "fraud-model-v1", 0.3);
    let metric = |id: &str, name: &str| {
        MetricDataQuery::builder()
            .id(id)
            .metric_stat(
                MetricStat::builder()
                    .metric(
                        Metric::builder()
                            .namespace("AWS/SageMaker")
                            .metric_name(name)
                            .dimensions(
                                Dimension::builder()
                                    .name("EndpointName")
                                    .value("fraud")
                                    .build(),
                            )
                            .dimensions(
                                Dimension::builder()
                                    .name("VariantName")
                                    .value("AllTraffic")
                                    .build(),
                            )
                            .build(),
                    )
                    .period(10)
                    .stat("Sum")
                    .build(),
            )
            .return_data(false)
            .build()
    };
    c.cloudwatch
        .put_metric_alarm()
        .alarm_name("error-percent")
        .metrics(metric("errors", "Invocation5XXErrors"))
        .metrics(metric("requests", "Invocations"))
        .metrics(
            MetricDataQuery::builder()
                .id("percent")
                .expression("100 * errors / requests")
                .label("error %")
                .return_data(true)
                .build(),
        )
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    wait_for(async || {
        state(&c, "error-percent", AlarmType::MetricAlarm)
            .await
            .as_deref()
            == Some("ALARM")
    })
    .await;
    let described = c
        .cloudwatch
        .describe_alarms()
        .alarm_names("error-percent")
        .send()
        .await
        .unwrap();
    let alarm = &described.metric_alarms()[0];
    assert!(
        alarm.metric_name().is_none(),
        "a math alarm names no single metric"
    );
    assert_eq!(alarm.metrics().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardrails_rolls_back_on_a_composite_alarm_the_policy_names() {
    let on = OnStack::start("fraud-scorer").await;
    local::set_model(&on.stack, "fraud-model-v2", 0.5);
    // The endpoint's error alarm, and a composite over it the policy watches.
    let alarm = ErrorAlarm {
        name: "fraud-scorer-errors",
        endpoint: "fraud-scorer",
        variant: "v2",
        period_secs: 10,
        threshold: 0.05,
        or_equal: false,
    };
    put_error_alarm(&on.clients.cloudwatch, &alarm)
        .await
        .unwrap();
    on.clients
        .cloudwatch
        .put_composite_alarm()
        .alarm_name("fraud-scorer-5xx")
        .alarm_rule(r#"ALARM("fraud-scorer-errors")"#)
        .send()
        .await
        .unwrap();
    let policy = example_policy("canary.yaml");
    let mut plan = sample_plan(&policy, 2);
    plan.endpoint_name = "fraud-scorer".to_owned();
    plan.blue_config_name = "fraud-v1".to_owned();
    plan.green.model_name = "fraud-model-v2".to_owned();
    plan.poll_secs = 1;
    for step in &mut plan.steps {
        step.bake_secs = step.bake_secs.min(60);
    }
    let driver = on.driver(Arc::new(MemoryBus::default()));
    driver.start(plan).await.unwrap();
    let end = on.run_to_end(&driver, Duration::from_secs(120)).await;
    assert!(
        matches!(&end, Phase::RolledBack { cause: Cause::AlarmFired { alarm_name, .. } } if alarm_name == "fraud-scorer-5xx"),
        "{end:?}"
    );
}
