//! The attacks of issue 12 through the real functions on the local stack: commands reach
//! Guardrails only through its function URL, signed; IAM decides who reaches it, the template's
//! `*Principals` who may do what, and every action is recorded under the signer's ARN. GIVEN an
//! endpoint serving v1, WHEN someone who may only put events, or an administrator the template
//! does not name, sends a command, THEN it is refused and nothing changes; WHEN the operator
//! does, THEN the record, the events and the page name the operator's ARN; a forged outcome
//! event neither pages nor takes the real page.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use guardrails::ports::Store;
use guardrails_local::iam;
use guardrails_local::stack::default_template;
use guardrails_tests::flow::Flow;
use guardrails_tests::local::{endpoint_serving, model};
use serde_json::{Value, json};

const ENDPOINT: &str = "fraud";
const MALLORY: (&str, &str) = (iam::INTRUDER_ACCESS_KEY, iam::INTRUDER_SECRET_KEY);
const ADMIN: (&str, &str) = (iam::ADMIN_ACCESS_KEY, iam::ADMIN_SECRET_KEY);

fn deploy(id: &str, bake_secs: u32) -> Value {
    json!({
        "command": "deploy", "endpointName": ENDPOINT, "modelName": "fraud-model-v2",
        "deploymentId": id,
        "policy": {
            "DeploymentConfig": { "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY", "CanarySize": { "Type": "CAPACITY_PERCENT", "Value": 50 },
                    "WaitIntervalInSeconds": bake_secs },
                "TerminationWaitInSeconds": 1, "MaximumExecutionTimeoutInSeconds": 3600 } },
            "Guardrails": { "Engine": "variant", "PollIntervalInSeconds": 1 }
        }
    })
}

async fn start() -> Flow {
    let flow = Flow::start(&default_template()).await;
    endpoint_serving(&flow.admin, ENDPOINT, "fraud-v1", "fraud-model-v1", 2).await;
    model(&flow.admin, "fraud-model-v2").await;
    flow
}

async fn put_event_as_mallory(flow: &Flow, detail_type: &str, detail: &Value) {
    let sdk = guardrails_local::stack::sdk_config(&flow.stack.emulator.url());
    let mallory = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&sdk)
            .credentials_provider(aws_sdk_eventbridge::config::Credentials::new(
                MALLORY.0, MALLORY.1, None, None, "test",
            ))
            .build(),
    );
    let entry = PutEventsRequestEntry::builder()
        .source("guardrails")
        .detail_type(detail_type)
        .detail(detail.to_string())
        .build();
    let out = mallory.put_events().entries(entry).send().await.unwrap();
    assert_eq!(out.failed_entry_count(), 0, "mallory may put events");
}

fn store(flow: &Flow) -> guardrails::aws::dynamodb::DynamoStore {
    guardrails::aws::dynamodb::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&flow.stack.sdk_config()),
        &flow.wired.table,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_signers_command_and_every_action_names_its_signer() {
    let flow = start().await;
    let table = store(&flow);
    // Someone who may only put events: the URL refuses them (IAM), as does every rule.
    for body in [
        deploy("d-mallory", 0),
        json!({ "command": "abort", "endpointName": ENDPOINT, "reason": "x" }),
        json!({ "command": "approve", "endpointName": ENDPOINT }),
    ] {
        let (status, answer) = flow.command_as(MALLORY, &body).await;
        assert_eq!(
            (status, answer.clone()),
            (403, json!({ "Message": "Forbidden" })),
            "{answer}"
        );
    }
    let mut forged = deploy("d-forged", 0);
    forged["requestedBy"] = json!("the-cto (really mallory)");
    put_event_as_mallory(&flow, "Guardrails Deployment Requested", &forged).await;
    // An administrator IAM lets through, whom the template does not name.
    let (status, answer) = flow.command_as(ADMIN, &deploy("d-admin", 0)).await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{} may not deploy", iam::ADMIN_ARN)),
        "{answer}"
    );
    // A sender's typed name is refused, not recorded.
    let (status, answer) = flow.command_as(iam_operator(), &forged).await;
    assert_eq!(status, 400, "{answer}");
    // Nothing started.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(table.load(ENDPOINT).await.unwrap().is_none());

    // The operator deploys; the start names the operator's ARN.
    let mut seen = Vec::new();
    let answer = flow.command(&deploy("d-ok", 600)).await;
    assert_eq!(answer["handled"], "reconciled", "{answer}");
    let started = flow
        .until(&mut seen, |e| {
            e["detail"]["deploymentId"] == "d-ok" && e["detail"]["cause"]["cause"] == "Started"
        })
        .await;
    assert_eq!(started["detail"]["cause"]["by"], iam::OPERATOR_ARN);
    let record = table.load(ENDPOINT).await.unwrap().unwrap();
    assert_eq!(
        record.deployment.plan.requested_by.as_deref(),
        Some(iam::OPERATOR_ARN)
    );
    // While it bakes: a forged outcome neither pages nor claims the page.
    let mut outcome = started["detail"].clone();
    outcome["outcome"] = json!("ROLLED_BACK");
    outcome["state"] = json!("ROLLED_BACK");
    outcome["causeText"] = json!("forged by mallory");
    put_event_as_mallory(&flow, "Guardrails Deployment State Change", &outcome).await;
    flow.until(&mut seen, |e| {
        e["detail"]["deploymentId"] == "d-ok" && e["detail"]["state"] == "BAKING"
    })
    .await;
    // The operator aborts with a reason in any script; the page says who and why.
    let reason = "José Müller: 田中太郎 says stop";
    let oversized = json!({ "command": "abort", "endpointName": ENDPOINT,
                            "reason": "é".repeat(1_025) });
    let (status, answer) = flow.command_as(iam_operator(), &oversized).await;
    assert_eq!(status, 400, "{answer}");
    flow.command(&json!({ "command": "abort", "endpointName": ENDPOINT, "reason": reason }))
        .await;
    let end = flow.outcome(&mut seen, "d-ok").await;
    assert_eq!(end["detail"]["outcome"], "ROLLED_BACK", "{end:#}");
    let pages = flow.pages().await;
    assert_eq!(pages.len(), 1, "one page, the real one: {pages:?}");
    assert!(
        pages[0]
            .1
            .contains(&format!("aborted by {}: {reason}", iam::OPERATOR_ARN)),
        "{}",
        pages[0].1
    );
    assert!(!pages[0].1.contains("forged"), "{}", pages[0].1);
    // Refusals were published naming who was refused.
    let refusals: Vec<&Value> = seen
        .iter()
        .filter(|e| e["detail-type"] == "Guardrails Deployment Refused")
        .collect();
    assert!(
        refusals
            .iter()
            .any(|r| r["detail"]["requestedBy"] == iam::ADMIN_ARN),
        "{refusals:?}"
    );
}

/// The config `endpoint` serves.
async fn serves(flow: &Flow, endpoint: &str) -> String {
    flow.admin
        .sagemaker
        .describe_endpoint()
        .endpoint_name(endpoint)
        .send()
        .await
        .unwrap()
        .endpoint_config_name()
        .unwrap_or_default()
        .to_owned()
}

fn iam_operator() -> (&'static str, &'static str) {
    (iam::OPERATOR_ACCESS_KEY, iam::OPERATOR_SECRET_KEY)
}

/// A 250 KB policy of nested YAML is refused before any parser runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_command_is_refused_before_it_is_parsed() {
    let flow = start().await;
    let nested = format!("{}1{}", "[".repeat(125_000), "]".repeat(125_000));
    let mut body = deploy("d-huge", 0);
    body["policy"] = Value::String(nested);
    let (status, answer) = flow.command_as(iam_operator(), &body).await;
    assert_eq!(status, 413, "{answer}");
    assert!(store(&flow).load(ENDPOINT).await.unwrap().is_none());
}

/// Names that cannot collide: a deployment id used on one endpoint is refused on another (the
/// configs and alarms are named after it), a config found under the name Guardrails would give
/// is not used unless it is that config, and a model found under a package's model name is not
/// used unless it holds that package.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_made_from_a_deployment_id_are_never_shared() {
    let flow = start().await;
    endpoint_serving(&flow.admin, "fraud-b", "fraud-b-v1", "fraud-b-model-v1", 2).await;
    let table = store(&flow);
    let mut seen = Vec::new();
    flow.command(&deploy("shared-id", 600)).await;
    flow.until(&mut seen, |e| {
        e["detail"]["deploymentId"] == "shared-id" && e["detail"]["state"] == "BAKING"
    })
    .await;
    // The same id on another endpoint: refused, naming the endpoint that has it.
    let mut other = deploy("shared-id", 600);
    other["endpointName"] = json!("fraud-b");
    let (status, answer) = flow.command_as(iam_operator(), &other).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("deployment id shared-id was already used on endpoint fraud"),
        "{answer}"
    );
    assert!(table.load("fraud-b").await.unwrap().is_none());
    assert_eq!(serves(&flow, "fraud-b").await, "fraud-b-v1");

    // Someone else's config under the name Guardrails would create for a new id.
    flow.admin
        .sagemaker
        .create_endpoint_config()
        .endpoint_config_name("guardrails-squatted-blue-green")
        .production_variants(
            aws_sdk_sagemaker::types::ProductionVariant::builder()
                .variant_name("AllTraffic")
                .model_name("fraud-model-v1")
                .instance_type(aws_sdk_sagemaker::types::ProductionVariantInstanceType::MlM5Large)
                .initial_instance_count(1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut squatted = deploy("squatted", 1);
    squatted["endpointName"] = json!("fraud-b");
    flow.command(&squatted).await;
    let end = flow.outcome(&mut seen, "squatted").await;
    assert_eq!(end["detail"]["outcome"], "FAILED", "{end:#}");
    assert!(
        end["detail"]["causeText"]
            .as_str()
            .unwrap()
            .contains("endpoint config guardrails-squatted-blue-green already exists and is not the one this deployment creates (ProductionVariants differs)"),
        "{end:#}"
    );
    assert_eq!(
        serves(&flow, "fraud-b").await,
        "fraud-b-v1",
        "never switched"
    );
}
