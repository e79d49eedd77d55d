//! The emulator through the real SDK clients and its control API over HTTP: CloudWatch's
//! metric statistics, alarm filters and SetAlarmState with its event; SageMaker's refusal of
//! anything but DeleteEndpoint on a Failed endpoint; throttling classified for the driver.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, Metric, MetricDataQuery, MetricDatum, MetricStat, StateValue,
    StatisticSet,
};
use guardrails::aws::sagemaker::SageMakerEndpoints;
use guardrails::ports::{Endpoints, ErrorKind};
use guardrails_tests::local::{self, Clients, endpoint_serving, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// POSTs `body` to the emulator's control API and returns the status line.
async fn control(url: &str, path: &str, body: &str) -> String {
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.lines().next().unwrap_or_default().to_owned()
}

fn dims() -> Dimension {
    Dimension::builder()
        .name("Service")
        .value("scoring")
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_statistics_follow_cloudwatch() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    let now_secs = guardrails_local::now_ms() / 1_000;
    let at = DateTime::from_secs(now_secs - 30);
    c.cloudwatch
        .put_metric_data()
        .namespace("Test")
        .metric_data(
            MetricDatum::builder()
                .metric_name("Latency")
                .dimensions(dims())
                .timestamp(at)
                .set_values(Some((1..=10).map(f64::from).collect()))
                .build(),
        )
        .metric_data(
            MetricDatum::builder()
                .metric_name("Latency")
                .dimensions(dims())
                .timestamp(at)
                .statistic_values(
                    StatisticSet::builder()
                        .sample_count(2.0)
                        .sum(30.0)
                        .minimum(10.0)
                        .maximum(20.0)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let query = |id: &str, stat: &str| {
        MetricDataQuery::builder()
            .id(id)
            .metric_stat(
                MetricStat::builder()
                    .metric(
                        Metric::builder()
                            .namespace("Test")
                            .metric_name("Latency")
                            .dimensions(dims())
                            .build(),
                    )
                    .period(300)
                    .stat(stat)
                    .build(),
            )
            .build()
    };
    let out = c
        .cloudwatch
        .get_metric_data()
        .metric_data_queries(query("sum", "Sum"))
        .metric_data_queries(query("count", "SampleCount"))
        .metric_data_queries(query("max", "Maximum"))
        .metric_data_queries(query("avg", "Average"))
        .metric_data_queries(query("p90", "p90"))
        .start_time(DateTime::from_secs(now_secs - 600))
        .end_time(DateTime::from_secs(now_secs + 60))
        .send()
        .await
        .unwrap();
    let value = |id: &str| {
        let result = out
            .metric_data_results()
            .iter()
            .find(|r| r.id() == Some(id))
            .unwrap();
        assert_eq!(result.values().len(), 1, "{id}: one period with data");
        result.values()[0]
    };
    assert_eq!(value("sum"), 85.0);
    assert_eq!(value("count"), 12.0);
    assert_eq!(value("max"), 20.0);
    assert!((value("avg") - 85.0 / 12.0).abs() < 1e-9);
    assert_eq!(
        value("p90"),
        9.0,
        "percentiles come from the recorded values"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_filter_by_prefix_and_state_and_set_alarm_state_sends_an_event() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    for name in ["guardrails-d1-errors", "guardrails-d1-latency", "other"] {
        c.cloudwatch
            .put_metric_alarm()
            .alarm_name(name)
            .namespace("AWS/SageMaker")
            .metric_name("Invocation5XXErrors")
            .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
            .period(60)
            .evaluation_periods(1)
            .threshold(0.1)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .treat_missing_data("ignore")
            .send()
            .await
            .unwrap();
    }
    let prefixed = c
        .cloudwatch
        .describe_alarms()
        .alarm_name_prefix("guardrails-d1-")
        .send()
        .await
        .unwrap();
    assert_eq!(prefixed.metric_alarms().len(), 2);
    c.cloudwatch
        .set_alarm_state()
        .alarm_name("other")
        .state_value(StateValue::Alarm)
        .state_reason("testing the page")
        .send()
        .await
        .unwrap();
    let alarmed = c
        .cloudwatch
        .describe_alarms()
        .state_value(StateValue::Alarm)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = alarmed
        .metric_alarms()
        .iter()
        .filter_map(|a| a.alarm_name())
        .collect();
    assert_eq!(names, vec!["other"]);
    let events = stack.emulator.emulator.lock().unwrap().events.clone();
    let event = events
        .iter()
        .find(|e| e.detail_type == "CloudWatch Alarm State Change")
        .unwrap();
    assert_eq!(event.detail["alarmName"], "other");
    assert_eq!(event.detail["state"]["value"], "ALARM");
    assert_eq!(event.detail["previousState"]["value"], "INSUFFICIENT_DATA");
    let missing = c
        .cloudwatch
        .set_alarm_state()
        .alarm_name("nope")
        .state_value(StateValue::Ok)
        .state_reason("x")
        .send()
        .await;
    assert!(missing.is_err(), "unknown alarms are refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_api_injects_failures_throttling_and_model_behaviour() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    let url = stack.emulator.url();
    let endpoints = SageMakerEndpoints::new(c.sagemaker.clone());
    endpoint_serving(&c, "fraud", "fraud-v1", "fraud-model-v1", 1).await;

    assert!(
        control(
            &url,
            "/control/models/fraud-model-v1",
            r#"{"error_rate":0.25,"latency_ms":80}"#
        )
        .await
        .contains("204")
    );
    let behaviour = stack.emulator.emulator.lock().unwrap().behaviours["fraud-model-v1"];
    assert_eq!((behaviour.error_rate, behaviour.latency_ms), (0.25, 80.0));

    assert!(
        control(&url, "/control/throttle", r#"{"calls":10}"#)
            .await
            .contains("204")
    );
    let throttled = endpoints.describe("fraud").await.unwrap_err();
    assert_eq!(
        throttled.kind,
        ErrorKind::Throttled,
        "after the SDK's own retries: {throttled}"
    );
    assert!(
        control(&url, "/control/throttle", r#"{"calls":0}"#)
            .await
            .contains("204")
    );

    let body = r#"{"outcome":"fail","reason":"Insufficient capacity"}"#;
    assert!(
        control(&url, "/control/endpoints/fraud/next-update", body)
            .await
            .contains("204")
    );
    endpoints
        .update_endpoint("fraud", "fraud-v1", None, false)
        .await
        .unwrap();
    wait_for(async || {
        endpoints
            .describe("fraud")
            .await
            .unwrap()
            .is_some_and(|e| !e.status.is_busy())
    })
    .await;
    let failed = endpoints.describe("fraud").await.unwrap().unwrap();
    assert_eq!(
        failed.failure_reason.as_deref(),
        Some("Insufficient capacity")
    );
    let refused = endpoints
        .update_endpoint("fraud", "fraud-v1", None, false)
        .await
        .unwrap_err();
    assert!(refused.message.contains("only DeleteEndpoint"), "{refused}");
    c.sagemaker
        .delete_endpoint()
        .endpoint_name("fraud")
        .send()
        .await
        .unwrap();
    wait_for(async || endpoints.describe("fraud").await.unwrap().is_none()).await;

    let bad = control(
        &url,
        "/control/endpoints/fraud/next-update",
        r#"{"outcome":"explode"}"#,
    )
    .await;
    assert!(bad.contains("400"), "{bad}");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// Creates model `model` and config `config` serving it as `variant` on 2 instances.
async fn config_of(c: &Clients, config: &str, model: &str, variant: &str) {
    use aws_sdk_sagemaker::types::{ProductionVariant, ProductionVariantInstanceType};
    let _ = c
        .sagemaker
        .create_model()
        .model_name(model)
        .execution_role_arn("arn:aws:iam::123456789012:role/local")
        .send()
        .await;
    c.sagemaker
        .create_endpoint_config()
        .endpoint_config_name(config)
        .production_variants(
            ProductionVariant::builder()
                .variant_name(variant)
                .model_name(model)
                .instance_type(ProductionVariantInstanceType::MlM5Xlarge)
                .initial_instance_count(2)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

fn all_at_once() -> aws_sdk_sagemaker::types::DeploymentConfig {
    use aws_sdk_sagemaker::types::{
        BlueGreenUpdatePolicy, DeploymentConfig, TrafficRoutingConfig, TrafficRoutingConfigType,
    };
    DeploymentConfig::builder()
        .blue_green_update_policy(
            BlueGreenUpdatePolicy::builder()
                .traffic_routing_configuration(
                    TrafficRoutingConfig::builder()
                        .r#type(TrafficRoutingConfigType::AllAtOnce)
                        .wait_interval_in_seconds(0)
                        .build(),
                )
                .termination_wait_in_seconds(1)
                .maximum_execution_timeout_in_seconds(600)
                .build(),
        )
        .build()
}

async fn status_and_config(c: &Clients) -> (String, String) {
    let d = c
        .sagemaker
        .describe_endpoint()
        .endpoint_name("fraud")
        .send()
        .await
        .unwrap();
    (
        d.endpoint_status().unwrap().as_str().to_owned(),
        d.endpoint_config_name().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_config_is_remembered_and_reused_with_retain_deployment_config() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    endpoint_serving(&c, "fraud", "fraud-v1", "fraud-model-v1", 2).await;
    config_of(&c, "fraud-v2", "fraud-model-v2", "AllTraffic").await;
    config_of(&c, "fraud-v3", "fraud-model-v3", "AllTraffic").await;
    c.sagemaker
        .update_endpoint()
        .endpoint_name("fraud")
        .endpoint_config_name("fraud-v2")
        .deployment_config(all_at_once())
        .send()
        .await
        .unwrap();
    let during = c
        .sagemaker
        .describe_endpoint()
        .endpoint_name("fraud")
        .send()
        .await
        .unwrap();
    let pending = during
        .pending_deployment_summary()
        .expect("a pending deployment");
    assert_eq!(pending.endpoint_config_name(), Some("fraud-v2"));
    let status = pending.production_variants()[0].variant_status()[0].status();
    assert_eq!(status.map(|s| s.as_str()), Some("Creating"));
    wait_for(async || status_and_config(&c).await == ("InService".into(), "fraud-v2".into())).await;
    // RetainDeploymentConfig: the next update runs under the same guardrails.
    c.sagemaker
        .update_endpoint()
        .endpoint_name("fraud")
        .endpoint_config_name("fraud-v3")
        .retain_deployment_config(true)
        .send()
        .await
        .unwrap();
    let retained = c
        .sagemaker
        .describe_endpoint()
        .endpoint_name("fraud")
        .send()
        .await
        .unwrap();
    assert!(
        retained
            .pending_deployment_summary()
            .is_some_and(|p| { !p.production_variants()[0].variant_status().is_empty() })
    );
    assert_eq!(
        retained
            .last_deployment_config()
            .and_then(|d| d.blue_green_update_policy())
            .and_then(|b| b.termination_wait_in_seconds()),
        Some(1)
    );
    wait_for(async || status_and_config(&c).await == ("InService".into(), "fraud-v3".into())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_config_requires_the_same_variant_names() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    endpoint_serving(&c, "fraud", "fraud-v1", "fraud-model-v1", 2).await;
    config_of(&c, "fraud-v2", "fraud-model-v2", "v2").await;
    let refused = c
        .sagemaker
        .update_endpoint()
        .endpoint_name("fraud")
        .endpoint_config_name("fraud-v2")
        .deployment_config(all_at_once())
        .send()
        .await
        .unwrap_err();
    let message = format!("{:?}", refused.into_service_error());
    assert!(message.contains("must keep the variant names"), "{message}");
}
