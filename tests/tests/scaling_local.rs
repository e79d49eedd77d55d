//! Capacity and auto scaling kept, through the functions on the local stack (Application Auto
//! Scaling is moto's; the local SageMaker refuses what SageMaker refuses on a registered
//! variant and honours RetainAllVariantProperties). GIVEN an endpoint whose variant is a
//! scalable target with a policy, scaled by it to 4 instances while its config says 2, WHEN a
//! new model is deployed with the variant engine and then with the native engine, THEN each
//! ends on the new model under the same variant name with 4 instances and the same target and
//! policy, scaling suspended meanwhile and restored after; and WHEN a bad model is rolled back,
//! THEN blue is back at its 4 instances.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_sdk_applicationautoscaling::types::{
    MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ServiceNamespace,
    SuspendedState, TargetTrackingScalingPolicyConfiguration,
};
use aws_sdk_sagemaker::types::DesiredWeightAndCapacity;
use guardrails_local::stack::default_template;
use guardrails_local::wiring::post;
use guardrails_tests::flow::Flow;
use guardrails_tests::local::{Clients, endpoint_serving, wait_for};
use serde_json::{Value, json};

const ENDPOINT: &str = "fraud";
const RESOURCE: &str = "endpoint/fraud/variant/AllTraffic";

fn policy(engine: &str) -> Value {
    json!({
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": { "Type": "CANARY",
                "CanarySize": { "Type": "CAPACITY_PERCENT", "Value": 50 },
                "WaitIntervalInSeconds": 2 },
            "TerminationWaitInSeconds": 1, "MaximumExecutionTimeoutInSeconds": 600 },
        "Guardrails": { "Engine": engine, "PollIntervalInSeconds": 1,
            "Alarms": if engine == "variant" { json!([{ "Name": "errors",
                "MetricName": "Invocation5XXErrors", "Statistic": "Average",
                "ComparisonOperator": "GreaterThanThreshold", "Threshold": 0.05,
                "PeriodInSeconds": 10, "EvaluationPeriods": 1, "DatapointsToAlarm": 1,
                "TreatMissingData": "notBreaching" }]) } else { json!([]) } }
    })
}

/// `(variant, model of the serving config's variant, current instances)`.
async fn serving(c: &Clients) -> (String, String, i32) {
    let e = c
        .sagemaker
        .describe_endpoint()
        .endpoint_name(ENDPOINT)
        .send()
        .await
        .unwrap();
    let config = c
        .sagemaker
        .describe_endpoint_config()
        .endpoint_config_name(e.endpoint_config_name().unwrap())
        .send()
        .await
        .unwrap();
    let v = &e.production_variants()[0];
    (
        v.variant_name().unwrap().to_owned(),
        config.production_variants()[0]
            .model_name()
            .unwrap()
            .to_owned(),
        v.current_instance_count().unwrap(),
    )
}

/// The target's suspended state and its policies' names.
async fn scaling(c: &Clients) -> (Option<SuspendedState>, Vec<String>) {
    let targets = c
        .autoscaling
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Sagemaker)
        .resource_ids(RESOURCE)
        .send()
        .await
        .unwrap();
    let target = targets
        .scalable_targets()
        .first()
        .expect("the variant is still a scalable target");
    let policies = c
        .autoscaling
        .describe_scaling_policies()
        .service_namespace(ServiceNamespace::Sagemaker)
        .resource_id(RESOURCE)
        .send()
        .await
        .unwrap();
    (
        target.suspended_state().cloned(),
        policies
            .scaling_policies()
            .iter()
            .map(|p| p.policy_name().to_owned())
            .collect(),
    )
}

/// The variant scaled to `instances`, as Application Auto Scaling does it.
async fn scale_to(c: &Clients, instances: i32) {
    c.sagemaker
        .update_endpoint_weights_and_capacities()
        .endpoint_name(ENDPOINT)
        .desired_weights_and_capacities(
            DesiredWeightAndCapacity::builder()
                .variant_name("AllTraffic")
                .desired_instance_count(instances)
                .build(),
        )
        .send()
        .await
        .unwrap();
    wait_for(async || serving(c).await.2 == instances).await;
}

fn suspended(state: Option<&SuspendedState>) -> bool {
    state.is_some_and(|s| {
        s.dynamic_scaling_in_suspended() == Some(true)
            && s.dynamic_scaling_out_suspended() == Some(true)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaled_endpoint_keeps_its_name_capacity_and_scaling_with_both_engines_and_in_a_rollback()
{
    let flow = Flow::start(&default_template()).await;
    let c = &flow.admin;
    endpoint_serving(c, ENDPOINT, "fraud-v1", "fraud-model-v1", 2).await;
    for model in ["fraud-model-v2", "fraud-model-v3", "fraud-model-v4"] {
        c.sagemaker
            .create_model()
            .model_name(model)
            .execution_role_arn("arn:aws:iam::123456789012:role/local")
            .send()
            .await
            .unwrap();
    }
    c.autoscaling
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Sagemaker)
        .resource_id(RESOURCE)
        .scalable_dimension(ScalableDimension::SageMakerVariantDesiredInstanceCount)
        .min_capacity(2)
        .max_capacity(10)
        .send()
        .await
        .unwrap();
    c.autoscaling
        .put_scaling_policy()
        .policy_name("invocations-per-instance")
        .service_namespace(ServiceNamespace::Sagemaker)
        .resource_id(RESOURCE)
        .scalable_dimension(ScalableDimension::SageMakerVariantDesiredInstanceCount)
        .policy_type(PolicyType::TargetTrackingScaling)
        .target_tracking_scaling_policy_configuration(
            TargetTrackingScalingPolicyConfiguration::builder()
                .target_value(70.0)
                .predefined_metric_specification(
                    PredefinedMetricSpecification::builder()
                        .predefined_metric_type(MetricType::SageMakerVariantInvocationsPerInstance)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // The scaling policy grew the fleet to 4 (as Application Auto Scaling does it).
    scale_to(c, 4).await;

    // SageMaker's rule, on the local stack too: a registered variant cannot be removed.
    c.sagemaker
        .create_endpoint_config()
        .endpoint_config_name("fraud-renamed")
        .production_variants(
            aws_sdk_sagemaker::types::ProductionVariant::builder()
                .variant_name("Renamed")
                .model_name("fraud-model-v2")
                .instance_type(aws_sdk_sagemaker::types::ProductionVariantInstanceType::MlM5Xlarge)
                .initial_instance_count(2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let refused = c
        .sagemaker
        .update_endpoint()
        .endpoint_name(ENDPOINT)
        .endpoint_config_name("fraud-renamed")
        .send()
        .await
        .unwrap_err();
    let message = format!("{:?}", refused.into_service_error());
    assert!(
        message.contains("registered with Application Auto Scaling"),
        "{message}"
    );

    let mut seen = Vec::new();
    for (id, model, engine) in [
        ("d-variant", "fraud-model-v2", "variant"),
        ("d-native", "fraud-model-v3", "native"),
    ] {
        let request = json!({ "endpointName": ENDPOINT, "modelName": model, "deploymentId": id,
                              "policy": policy(engine) });
        flow.deploy(&request).await;
        flow.until(&mut seen, |e| {
            e["detail"]["deploymentId"] == id
                && matches!(
                    e["detail"]["state"].as_str(),
                    Some("BAKING" | "NATIVE_DEPLOYING")
                )
        })
        .await;
        let (during, _) = scaling(c).await;
        assert!(
            suspended(during.as_ref()),
            "{engine}: scaling suspended: {during:?}"
        );
        let end = flow.outcome(&mut seen, id).await;
        assert_eq!(end["detail"]["outcome"], "SUCCEEDED", "{end:#}");
        assert_eq!(
            serving(c).await,
            ("AllTraffic".to_owned(), model.to_owned(), 4),
            "{engine}: the new model, the same name, the same capacity"
        );
        let (after, policies) = scaling(c).await;
        assert!(
            !suspended(after.as_ref()),
            "{engine}: scaling restored: {after:?}"
        );
        assert_eq!(
            policies,
            ["invocations-per-instance"],
            "{engine}: the same policy"
        );
    }

    // A bad model rolls back: blue is back at its 4 instances, not its config's count.
    let (status, body) = post(
        &flow.stack.emulator.url(),
        "/control/models/fraud-model-v4",
        r#"{"error_rate":0.5}"#,
    )
    .await
    .unwrap();
    assert_eq!(status, 204, "{body}");
    // Scaled out again, to 6, beyond what the serving config says (4).
    scale_to(c, 6).await;
    let before = serving(c).await;
    let request = json!({ "endpointName": ENDPOINT, "modelName": "fraud-model-v4",
                          "deploymentId": "d-bad",
                          "policy": policy("variant") });
    flow.deploy(&request).await;
    let end = flow.outcome(&mut seen, "d-bad").await;
    assert_eq!(end["detail"]["outcome"], "ROLLED_BACK", "{end:#}");
    assert_eq!(serving(c).await, before, "blue at its full capacity");
    let (after, _) = scaling(c).await;
    assert!(
        !suspended(after.as_ref()),
        "scaling restored after the rollback: {after:?}"
    );
}
