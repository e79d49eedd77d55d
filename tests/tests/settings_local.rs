//! The user's settings survive deployments, through the functions on the local stack: GIVEN an
//! asynchronous endpoint whose config captures data for Model Monitor and encrypts its volumes
//! with a KMS key, WHEN a new model is deployed with the variant engine and then another with
//! the native engine, THEN the config serving at the end of each has the same data capture, KMS
//! key and asynchronous inference settings (`guardrails::aws::endpoint_config`).

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_sdk_sagemaker::operation::describe_endpoint_config::DescribeEndpointConfigOutput;
use aws_sdk_sagemaker::types::{
    AsyncInferenceConfig, AsyncInferenceOutputConfig, CaptureMode, CaptureOption,
    DataCaptureConfig, ProductionVariant, ProductionVariantInstanceType,
};
use guardrails_local::stack::default_template;
use guardrails_tests::flow::Flow;
use guardrails_tests::local::{Clients, endpoint_on};
use serde_json::json;

const ENDPOINT: &str = "fraud";
const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

async fn serving(c: &Clients) -> DescribeEndpointConfigOutput {
    let endpoint = c
        .sagemaker
        .describe_endpoint()
        .endpoint_name(ENDPOINT)
        .send()
        .await
        .unwrap();
    c.sagemaker
        .describe_endpoint_config()
        .endpoint_config_name(endpoint.endpoint_config_name().unwrap())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_capture_a_kms_key_and_async_inference_survive_both_engines() {
    let flow = Flow::start(&default_template()).await;
    let c = &flow.admin;
    for model in ["fraud-model-v1", "fraud-model-v2", "fraud-model-v3"] {
        c.sagemaker
            .create_model()
            .model_name(model)
            .execution_role_arn("arn:aws:iam::123456789012:role/local")
            .send()
            .await
            .unwrap();
    }
    let capture = DataCaptureConfig::builder()
        .enable_capture(true)
        .initial_sampling_percentage(100)
        .destination_s3_uri("s3://model-monitor/fraud")
        .capture_options(
            CaptureOption::builder()
                .capture_mode(CaptureMode::Input)
                .build(),
        )
        .capture_options(
            CaptureOption::builder()
                .capture_mode(CaptureMode::Output)
                .build(),
        )
        .build();
    let asynchronous = AsyncInferenceConfig::builder()
        .output_config(
            AsyncInferenceOutputConfig::builder()
                .s3_output_path("s3://fraud/async-out")
                .build(),
        )
        .build();
    c.sagemaker
        .create_endpoint_config()
        .endpoint_config_name("fraud-v1")
        .production_variants(
            ProductionVariant::builder()
                .variant_name("AllTraffic")
                .model_name("fraud-model-v1")
                .instance_type(ProductionVariantInstanceType::MlM5Xlarge)
                .initial_instance_count(2)
                .initial_variant_weight(1.0)
                .build(),
        )
        .data_capture_config(capture.clone())
        .kms_key_id(KEY)
        .async_inference_config(asynchronous.clone())
        .send()
        .await
        .unwrap();
    endpoint_on(c, ENDPOINT, "fraud-v1").await;
    let mut seen = Vec::new();
    for (id, model, engine) in [
        ("d-variant", "fraud-model-v2", "variant"),
        ("d-native", "fraud-model-v3", "native"),
    ] {
        let policy = json!({
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": { "Type": "CANARY",
                    "CanarySize": { "Type": "CAPACITY_PERCENT", "Value": 50 },
                    "WaitIntervalInSeconds": 1 },
                "TerminationWaitInSeconds": 1, "MaximumExecutionTimeoutInSeconds": 600 },
            "Guardrails": { "Engine": engine, "PollIntervalInSeconds": 1 }
        });
        let request = json!({ "endpointName": ENDPOINT, "modelName": model, "deploymentId": id,
                              "policy": policy });
        flow.deploy(&request).await;
        let end = flow.outcome(&mut seen, id).await;
        assert_eq!(end["detail"]["outcome"], "SUCCEEDED", "{end:#}");
        let config = serving(c).await;
        assert_eq!(config.production_variants()[0].model_name(), Some(model));
        assert_eq!(
            config.production_variants()[0].variant_name(),
            Some("AllTraffic"),
            "{engine}: the variant name is kept"
        );
        assert_eq!(
            config.data_capture_config(),
            Some(&capture),
            "{engine}: data capture"
        );
        assert_eq!(config.kms_key_id(), Some(KEY), "{engine}: the KMS key");
        assert_eq!(
            config.async_inference_config(),
            Some(&asynchronous),
            "{engine}: asynchronous inference"
        );
    }
}
