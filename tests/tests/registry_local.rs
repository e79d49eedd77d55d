//! The model registry trigger through the real functions on the local stack, with IAM: a
//! pipeline registers a version in a model package group, the group's target is in Parameter
//! Store, and only the approval of a completed version deploys it. SageMaker's events for other
//! changes (metadata, a new version) do not, nor does an approval of a version the endpoint
//! already serves.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_sdk_sagemaker::types::{
    InferenceSpecification, ModelApprovalStatus, ModelPackageContainerDefinition,
    ProductionVariantInstanceType,
};
use aws_sdk_ssm::types::ParameterType;
use guardrails_local::stack::default_template;
use guardrails_tests::flow::Flow;
use guardrails_tests::local::{self, Clients};
use serde_json::{Value, json};

const ENDPOINT: &str = "fraud";
const GROUP: &str = "fraud-models";

fn kind(e: &Value) -> &str {
    e["detail-type"].as_str().unwrap_or_default()
}

async fn register(c: &Clients) -> String {
    let spec = InferenceSpecification::builder()
        .containers(
            ModelPackageContainerDefinition::builder()
                .image("123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud:2")
                .build(),
        )
        .supported_realtime_inference_instance_types(ProductionVariantInstanceType::MlM5Xlarge)
        .supported_content_types("text/csv")
        .supported_response_mime_types("text/csv")
        .build();
    c.sagemaker
        .create_model_package()
        .model_package_group_name(GROUP)
        .model_approval_status(ModelApprovalStatus::PendingManualApproval)
        .inference_specification(spec)
        .send()
        .await
        .unwrap()
        .model_package_arn()
        .unwrap()
        .to_owned()
}

async fn approve(c: &Clients, arn: &str, note: &str) {
    c.sagemaker
        .update_model_package()
        .model_package_arn(arn)
        .model_approval_status(ModelApprovalStatus::Approved)
        .approval_description(note)
        .send()
        .await
        .unwrap();
}

/// A request start-deployment refuses at once: once its refusal is published, every event
/// queued for the function before it has been handled (the router delivers in order).
async fn sentinel(flow: &Flow, seen: &mut Vec<Value>, name: &str) {
    let detail = json!({ "endpointName": name, "modelName": "m", "policy": {} });
    flow.deploy(&detail).await;
    flow.until(seen, |e| {
        kind(e) == "Guardrails Deployment Refused" && e["detail"]["endpointName"] == name
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_approval_of_a_new_version_deploys_it() {
    let flow = Flow::start(&default_template()).await;
    let admin = &flow.admin;
    local::endpoint_serving(admin, ENDPOINT, "fraud-v1", "fraud-model-v1", 1).await;
    admin
        .sagemaker
        .create_model_package_group()
        .model_package_group_name(GROUP)
        .send()
        .await
        .unwrap();
    let target = json!({
        "endpointName": ENDPOINT,
        "instanceCount": 1,
        "policy": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": { "Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0 },
                "TerminationWaitInSeconds": 1, "MaximumExecutionTimeoutInSeconds": 600 },
            "Guardrails": { "Engine": "variant", "PollIntervalInSeconds": 1 }
        }
    });
    admin
        .ssm
        .put_parameter()
        .name(format!("/guardrails/package-targets/{GROUP}"))
        .r#type(ParameterType::String)
        .value(target.to_string())
        .send()
        .await
        .unwrap();
    let mut seen = Vec::new();

    // A new version, pending approval, and an update of its metadata: no deployment.
    let v1 = register(admin).await;
    admin
        .sagemaker
        .update_model_package()
        .model_package_arn(&v1)
        .customer_metadata_properties("team", "fraud")
        .send()
        .await
        .unwrap();
    sentinel(&flow, &mut seen, "sentinel-1").await;
    assert!(
        !seen
            .iter()
            .any(|e| kind(e) == "Guardrails Deployment State Change"),
        "{seen:#?}"
    );

    // The approval deploys it, under the version's own deployment id.
    approve(admin, &v1, "passed offline evaluation").await;
    let started = flow
        .until(&mut seen, |e| {
            kind(e) == "Guardrails Deployment State Change"
        })
        .await;
    let id = started["detail"]["deploymentId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(id.starts_with("p-1-"), "{id}");
    assert_eq!(started["detail"]["modelName"], "fraud-models-1");
    let end = flow.outcome(&mut seen, &id).await;
    assert_eq!(end["detail"]["outcome"], "SUCCEEDED", "{end:#}");

    // Approved again (a new description): the endpoint serves that version; nothing happens.
    approve(admin, &v1, "approved again").await;
    sentinel(&flow, &mut seen, "sentinel-2").await;
    let after_end = seen
        .iter()
        .skip_while(|e| {
            e["detail"]["outcome"].is_null() || e["detail"]["deploymentId"] != id.as_str()
        })
        .skip(1)
        .filter(|e| kind(e) == "Guardrails Deployment State Change")
        .count();
    assert_eq!(after_end, 0, "{seen:#?}");
    let active = flow
        .admin
        .dynamodb
        .get_item()
        .table_name(&flow.wired.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("ENDPOINT#{ENDPOINT}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("ACTIVE".to_owned()),
        )
        .send()
        .await
        .unwrap();
    assert!(active.item().is_none());

    // Someone created a model under the name version 2's model would get, from another image:
    // the approval of version 2 is refused, and the endpoint keeps serving version 1.
    let v2 = register(admin).await;
    admin
        .sagemaker
        .create_model()
        .model_name("fraud-models-2")
        .execution_role_arn("arn:aws:iam::123456789012:role/local")
        .primary_container(
            aws_sdk_sagemaker::types::ContainerDefinition::builder()
                .image("123456789012.dkr.ecr.us-east-1.amazonaws.com/not-fraud:1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    approve(admin, &v2, "passed offline evaluation").await;
    let refused = flow
        .until(&mut seen, |e| {
            kind(e) == "Guardrails Deployment Refused" && e["detail"]["endpointName"] == ENDPOINT
        })
        .await;
    assert!(
        refused["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!(
                "model fraud-models-2 already exists and does not hold model package {v2}"
            )),
        "{refused:#}"
    );
}
