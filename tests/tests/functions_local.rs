//! Refusals and aborts through the functions on the local stack, wired as AWS wires them: a
//! request is an event on the bus, rules deliver it, each function runs with its own role, our
//! events and the pages are read where users read them. GIVEN an endpoint serving v1, WHEN a
//! deployment meets a refusal AWS will never take back (an invalid instance type, a permission
//! the template lacks, a quota) or a person aborts it, THEN it ends, one page names the API and
//! AWS's words, and the next deployment on the endpoint starts; a request the preflight can
//! judge (a misspelt model, a quota below the plan's peak) is refused before anything changes.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use guardrails_local::stack::default_template;
use guardrails_local::wiring::post;
use guardrails_tests::flow::Flow;
use guardrails_tests::local::{Clients, endpoint_serving};
use serde_json::{Value, json};

const ENDPOINT: &str = "fraud";

fn canary(bake_secs: u32) -> Value {
    json!({
        "DeploymentConfig": { "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY", "CanarySize": { "Type": "CAPACITY_PERCENT", "Value": 50 },
                "WaitIntervalInSeconds": bake_secs },
            "TerminationWaitInSeconds": 1, "MaximumExecutionTimeoutInSeconds": 600 } },
        "Guardrails": { "Engine": "variant", "PollIntervalInSeconds": 1 }
    })
}

async fn request(flow: &Flow, id: &str, model: &str, extra: Value) {
    let mut detail = json!({
        "endpointName": ENDPOINT, "modelName": model, "deploymentId": id,
        "policy": canary(1)
    });
    if let (Value::Object(d), Value::Object(e)) = (&mut detail, extra) {
        d.extend(e);
    }
    flow.deploy(&detail).await;
}

/// The endpoint serving v1 on 2 instances, models v2 and v3 ready.
async fn serving_v1(c: &Clients) {
    endpoint_serving(c, ENDPOINT, "fraud-v1", "fraud-model-v1", 2).await;
    for model in ["fraud-model-v2", "fraud-model-v3"] {
        c.sagemaker
            .create_model()
            .model_name(model)
            .execution_role_arn("arn:aws:iam::123456789012:role/local")
            .send()
            .await
            .unwrap();
    }
}

async fn serves(c: &Clients) -> String {
    c.sagemaker
        .describe_endpoint()
        .endpoint_name(ENDPOINT)
        .send()
        .await
        .unwrap()
        .endpoint_config_name()
        .unwrap()
        .to_owned()
}

fn kind(e: &Value) -> &str {
    e["detail-type"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_model_and_an_invalid_instance_type_are_refused_up_front() {
    let flow = Flow::start(&default_template()).await;
    serving_v1(&flow.admin).await;
    let mut seen = Vec::new();

    // The preflight sees the model does not exist: the sender hears back, nothing changes.
    request(&flow, "d-misspelt", "fraud-model-v2x", json!({})).await;
    let refused = flow
        .until(&mut seen, |e| kind(e) == "Guardrails Deployment Refused")
        .await;
    let reason = refused["detail"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("model fraud-model-v2x does not exist"),
        "{reason}"
    );

    // An instance type SageMaker does not have (not one of the API model's
    // ProductionVariantInstanceType values): refused by the plan, before anything is created.
    request(
        &flow,
        "d-typo",
        "fraud-model-v2",
        json!({ "instanceType": "ml.m5.xlargee" }),
    )
    .await;
    let refused = flow
        .until(&mut seen, |e| {
            kind(e) == "Guardrails Deployment Refused" && e["detail"]["deploymentId"] == "d-typo"
        })
        .await;
    let reason = refused["detail"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("green.instance_type: \"ml.m5.xlargee\" is not an instance type"),
        "{reason}"
    );
    assert!(flow.pages().await.is_empty(), "a refusal is not paged");
    assert_eq!(serves(&flow.admin).await, "fraud-v1");

    // The endpoint is free: the next deployment starts and succeeds.
    request(&flow, "d-next", "fraud-model-v3", json!({})).await;
    let end = flow.outcome(&mut seen, "d-next").await;
    assert_eq!(end["detail"]["outcome"], "SUCCEEDED", "{end:#}");
}

/// infra/template.yaml without the grant of UpdateEndpoint on endpoint configs (as it was
/// before: every deployment's UpdateEndpoint is denied).
fn template_lacking_the_config_grant() -> PathBuf {
    let text = std::fs::read_to_string(default_template()).unwrap();
    let start = text
        .find("            - Sid: DeployConfigsToManagedEndpoints")
        .unwrap();
    let end = start + text[start..].find("            - Sid: OwnConfigs").unwrap();
    let lacking = format!("{}{}", &text[..start], &text[end..]);
    let dir = std::env::temp_dir().join(format!("guardrails-template-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("template.yaml");
    std::fs::write(&path, lacking).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_permission_ends_the_deployment_with_one_page_and_frees_the_endpoint() {
    let flow = Flow::start(&template_lacking_the_config_grant()).await;
    serving_v1(&flow.admin).await;
    let mut seen = Vec::new();
    request(&flow, "d-denied", "fraud-model-v2", json!({})).await;
    let end = flow.outcome(&mut seen, "d-denied").await;
    assert_eq!(end["detail"]["outcome"], "FAILED");
    assert_eq!(end["detail"]["cause"]["api"], "sagemaker:UpdateEndpoint");
    let pages = flow.pages().await;
    assert_eq!(pages.len(), 1, "{pages:?}");
    assert!(
        pages[0].1.contains("is not authorized to perform: sagemaker:UpdateEndpoint on resource: arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/guardrails-d-denied-blue-green"),
        "{}",
        pages[0].1
    );
    assert_eq!(serves(&flow.admin).await, "fraud-v1");
    // The next deployment starts (and meets the same missing grant).
    request(&flow, "d-again", "fraud-model-v3", json!({})).await;
    let started = flow
        .until(&mut seen, |e| {
            e["detail"]["deploymentId"] == "d-again" && e["detail"]["state"] == "PROVISIONING"
        })
        .await;
    assert_eq!(started["detail"]["cause"]["cause"], "Started");
    assert_eq!(
        flow.outcome(&mut seen, "d-again").await["detail"]["outcome"],
        "FAILED"
    );
}

async fn set_quota(flow: &Flow, instances: u32) {
    let body = json!({ "instance_type": "ml.m5.xlarge", "instances": instances }).to_string();
    let (status, text) = post(&flow.stack.emulator.url(), "/control/quotas", &body)
        .await
        .unwrap();
    assert_eq!(status, 204, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_too_small_is_refused_up_front_and_one_that_shrinks_mid_deployment_ends_it_with_a_page()
 {
    let flow = Flow::start(&default_template()).await;
    serving_v1(&flow.admin).await;
    let mut seen = Vec::new();
    // The canary's peak is 6 instances (2 + 2 + 2 while blue is removed); 2 run now.
    set_quota(&flow, 5).await;
    request(&flow, "d-small", "fraud-model-v2", json!({})).await;
    let refused = flow
        .until(&mut seen, |e| kind(e) == "Guardrails Deployment Refused")
        .await;
    let reason = refused["detail"]["reason"].as_str().unwrap();
    assert!(reason.contains("over the account's quota of 5"), "{reason}");

    // Enough now; then the quota is cut to what runs once green is provisioned (2 + 2 + 1):
    // green cannot grow for the last step, the rollback cannot provision blue's config again.
    set_quota(&flow, 50).await;
    let mut detail_policy = canary(8);
    detail_policy["Guardrails"]["PollIntervalInSeconds"] = json!(1);
    request(
        &flow,
        "d-cut",
        "fraud-model-v2",
        json!({ "policy": detail_policy }),
    )
    .await;
    flow.until(&mut seen, |e| {
        e["detail"]["deploymentId"] == "d-cut" && e["detail"]["state"] == "BAKING"
    })
    .await;
    set_quota(&flow, 0).await;
    let end = flow.outcome(&mut seen, "d-cut").await;
    assert_eq!(end["detail"]["outcome"], "FAILED", "{end:#}");
    let pages = flow.pages().await;
    assert_eq!(pages.len(), 1, "{pages:?}");
    let body = &pages[0].1;
    assert!(body.contains("ResourceLimitExceeded: The account-level service limit 'ml.m5.xlarge for endpoint usage' is 0 Instances"), "{body}");
    // What the page says to do works: with the quota back, the original config returns and the
    // next deployment starts.
    assert!(body.contains("every request is on blue"), "{body}");
    assert!(
        body.contains("UpdateEndpoint with EndpointConfigName fraud-v1"),
        "{body}"
    );
    set_quota(&flow, 50).await;
    flow.admin
        .sagemaker
        .update_endpoint()
        .endpoint_name(ENDPOINT)
        .endpoint_config_name("fraud-v1")
        .send()
        .await
        .unwrap();
    guardrails_tests::local::wait_for(async || serves(&flow.admin).await == "fraud-v1").await;
    request(&flow, "d-after", "fraud-model-v3", json!({})).await;
    assert_eq!(
        flow.outcome(&mut seen, "d-after").await["detail"]["outcome"],
        "SUCCEEDED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_ends_a_variant_bake_and_a_native_deployment() {
    let flow = Flow::start(&default_template()).await;
    serving_v1(&flow.admin).await;
    let mut seen = Vec::new();
    request(
        &flow,
        "d-bake",
        "fraud-model-v2",
        json!({ "policy": canary(30) }),
    )
    .await;
    flow.until(&mut seen, |e| {
        e["detail"]["deploymentId"] == "d-bake" && e["detail"]["state"] == "BAKING"
    })
    .await;
    let abort = json!({ "endpointName": ENDPOINT, "deploymentId": "d-bake", "command": "abort",
                        "reason": "customer complaints" });
    flow.command(&abort).await;
    let end = flow.outcome(&mut seen, "d-bake").await;
    assert_eq!(end["detail"]["outcome"], "ROLLED_BACK");
    assert_eq!(end["detail"]["cause"]["cause"], "RollbackComplete");
    assert_eq!(serves(&flow.admin).await, "fraud-v1");

    let native = json!({
        "DeploymentConfig": { "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": { "Type": "CANARY",
                "CanarySize": { "Type": "CAPACITY_PERCENT", "Value": 50 }, "WaitIntervalInSeconds": 20 },
            "TerminationWaitInSeconds": 1, "MaximumExecutionTimeoutInSeconds": 600 } },
        "Guardrails": { "Engine": "native", "PollIntervalInSeconds": 1 }
    });
    request(
        &flow,
        "d-native",
        "fraud-model-v3",
        json!({ "policy": native }),
    )
    .await;
    flow.until(&mut seen, |e| {
        e["detail"]["deploymentId"] == "d-native"
            && e["detail"]["causeText"]
                .as_str()
                .is_some_and(|t| t.contains("Baking"))
    })
    .await;
    let abort = json!({ "endpointName": ENDPOINT, "deploymentId": "d-native", "command": "abort",
                        "reason": "wrong model" });
    flow.command(&abort).await;
    let end = flow.outcome(&mut seen, "d-native").await;
    assert_eq!(end["detail"]["outcome"], "ROLLED_BACK", "{end:#}");
    assert_eq!(
        serves(&flow.admin).await,
        "fraud-v1",
        "the old config, again"
    );
}

/// GIVEN a canary that passed every step, WHEN the new model fails once it serves alone under
/// blue's variant name (the final fleet), THEN the final fleet's alarm rolls the endpoint back to
/// the original config and on-call is paged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_after_the_final_switch_rolls_back_to_the_original_config_and_pages() {
    let flow = Flow::start(&default_template()).await;
    serving_v1(&flow.admin).await;
    let policy = json!({
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY", "CanarySize": { "Type": "CAPACITY_PERCENT", "Value": 50 },
                "WaitIntervalInSeconds": 1 },
            "TerminationWaitInSeconds": 1, "MaximumExecutionTimeoutInSeconds": 600 },
        "Guardrails": {
            "PollIntervalInSeconds": 1,
            // Long enough that only the alarm can end it.
            "FinalFleetBakeInSeconds": 600,
            "Alarms": [{ "Name": "errors", "MetricName": "Invocation5XXErrors",
                         "Statistic": "Average", "ComparisonOperator": "GreaterThanThreshold",
                         "Threshold": 0.05, "PeriodInSeconds": 10, "EvaluationPeriods": 1,
                         "DatapointsToAlarm": 1, "TreatMissingData": "notBreaching" }]
        }
    });
    let mut seen = Vec::new();
    request(
        &flow,
        "d-late",
        "fraud-model-v2",
        json!({ "policy": policy }),
    )
    .await;
    flow.until(&mut seen, |e| {
        e["detail"]["deploymentId"] == "d-late" && e["detail"]["state"] == "BAKING_FINAL_FLEET"
    })
    .await;
    // The final config serves the new model under blue's variant name.
    let endpoint = flow
        .admin
        .sagemaker
        .describe_endpoint()
        .endpoint_name(ENDPOINT)
        .send()
        .await
        .unwrap();
    assert_eq!(
        endpoint.endpoint_config_name(),
        Some("guardrails-d-late-green")
    );
    assert_eq!(
        endpoint.production_variants()[0].variant_name(),
        Some("AllTraffic")
    );
    let (status, body) = post(
        &flow.stack.emulator.url(),
        "/control/models/fraud-model-v2",
        r#"{"error_rate":0.5}"#,
    )
    .await
    .unwrap();
    assert_eq!(status, 204, "{body}");
    let end = flow.outcome(&mut seen, "d-late").await;
    assert_eq!(end["detail"]["outcome"], "ROLLED_BACK", "{end:#}");
    let rollback = seen
        .iter()
        .find(|e| e["detail"]["deploymentId"] == "d-late" && e["detail"]["state"] == "ROLLING_BACK")
        .expect("the rollback was published");
    assert_eq!(rollback["detail"]["previousState"], "BAKING_FINAL_FLEET");
    assert_eq!(
        rollback["detail"]["cause"]["alarm_name"], "guardrails-d-late-errors-final",
        "{rollback:#}"
    );
    assert_eq!(serves(&flow.admin).await, "fraud-v1");
    let pages = flow.pages().await;
    assert_eq!(pages.len(), 1, "{pages:?}");
    assert!(pages[0].0.contains("ROLLED BACK"), "{}", pages[0].0);
}
