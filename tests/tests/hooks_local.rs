//! Hooks through the functions on the local stack: GIVEN an endpoint serving v1 and a policy
//! naming the sample hook (`functions/hook-green-ready`, deployed as the template deploys it),
//! WHEN a canary runs, THEN Guardrails invokes it through Lambda's Invoke API as its own role
//! allows (`guardrails-hook-*` only), before green's first request and after the final bake,
//! the hook reads the endpoint as its role allows, and its answers move the rollout on; a hook
//! Lambda does not have ends the deployment rolled back, with a page in Lambda's words.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use guardrails_local::stack::default_template;
use guardrails_tests::flow::Flow;
use guardrails_tests::local::{Clients, endpoint_serving, model};
use serde_json::{Value, json};

const ENDPOINT: &str = "fraud";

fn hooked(function: &str) -> Value {
    json!({
        "DeploymentConfig": { "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY", "CanarySize": { "Type": "CAPACITY_PERCENT", "Value": 50 },
                "WaitIntervalInSeconds": 1 },
            "TerminationWaitInSeconds": 1, "MaximumExecutionTimeoutInSeconds": 600 } },
        "Guardrails": {
            "Engine": "variant", "PollIntervalInSeconds": 1,
            "Hooks": {
                "PreTraffic": { "FunctionName": function, "TimeoutInSeconds": 60 },
                "PostTraffic": { "FunctionName": function, "TimeoutInSeconds": 60 }
            }
        }
    })
}

async fn serving_v1(c: &Clients) {
    endpoint_serving(c, ENDPOINT, "fraud-v1", "fraud-model-v1", 2).await;
    model(c, "fraud-model-v2").await;
}

/// The hook causes of deployment `id`'s transitions, once each: events are delivered at least
/// once (two invocations that both performed one outbox both publish it), and a consumer drops
/// the duplicates by `eventId`.
fn hook_causes<'a>(seen: &'a [Value], id: &str) -> Vec<&'a Value> {
    let mut ids = std::collections::BTreeSet::new();
    seen.iter()
        .filter(|e| e["detail"]["deploymentId"] == id)
        .filter(|e| ids.insert(e["detail"]["eventId"].to_string()))
        .map(|e| &e["detail"]["cause"])
        .filter(|c| c["cause"].as_str().is_some_and(|c| c.starts_with("Hook")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_hook_is_asked_before_traffic_and_after_the_final_bake() {
    let flow = Flow::start(&default_template()).await;
    serving_v1(&flow.admin).await;
    let mut seen = Vec::new();
    let detail = json!({
        "endpointName": ENDPOINT, "modelName": "fraud-model-v2", "deploymentId": "d-hooked",
        "policy": hooked("guardrails-hook-green-ready")
    });
    flow.deploy(&detail).await;
    let end = flow.outcome(&mut seen, "d-hooked").await;
    assert_eq!(end["detail"]["outcome"], "SUCCEEDED", "{end:#}");
    let hooks = hook_causes(&seen, "d-hooked");
    assert_eq!(hooks.len(), 2, "{hooks:#?}");
    assert_eq!(hooks[0]["cause"], "HookPassed");
    assert_eq!(hooks[0]["hook"], "PreTraffic");
    let pre = hooks[0]["reason"].as_str().unwrap();
    assert!(pre.contains("serves 0.0% of requests"), "{pre}");
    assert_eq!(hooks[1]["hook"], "PostTraffic");
    let post = hooks[1]["reason"].as_str().unwrap();
    assert!(post.contains("serves 100.0% of requests"), "{post}");
    // Every call was authorized as the template says, the hook's own included.
    let log = guardrails_tests::local::iam_log(&flow.stack);
    let invoked = log.iter().any(|(principal, action, resource, allowed)| {
        *allowed
            && action == "lambda:InvokeFunction"
            && resource.ends_with(":function:guardrails-hook-green-ready")
            && !principal.contains("hook-green-ready")
    });
    assert!(invoked, "{log:#?}");
    let read = log.iter().any(|(principal, action, _, allowed)| {
        *allowed
            && action == "sagemaker:DescribeEndpoint"
            && principal.ends_with("/hook-green-ready")
    });
    assert!(read, "the hook reads the endpoint as its own role");
    let denied: Vec<_> = log.iter().filter(|(_, _, _, allowed)| !allowed).collect();
    assert!(denied.is_empty(), "{denied:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_lambda_does_not_have_rolls_back_and_pages_in_lambdas_words() {
    let flow = Flow::start(&default_template()).await;
    serving_v1(&flow.admin).await;
    let mut seen = Vec::new();
    let detail = json!({
        "endpointName": ENDPOINT, "modelName": "fraud-model-v2", "deploymentId": "d-nohook",
        "policy": hooked("guardrails-hook-missing")
    });
    flow.deploy(&detail).await;
    let end = flow.outcome(&mut seen, "d-nohook").await;
    assert_eq!(end["detail"]["outcome"], "ROLLED_BACK", "{end:#}");
    let refused = seen
        .iter()
        .find(|e| {
            e["detail"]["deploymentId"] == "d-nohook" && e["detail"]["state"] == "ROLLING_BACK"
        })
        .unwrap();
    let cause = &refused["detail"]["cause"];
    assert_eq!(cause["cause"], "Refused", "{cause:#}");
    assert_eq!(cause["api"], "lambda:InvokeFunction", "{cause:#}");
    let message = cause["message"].as_str().unwrap();
    assert!(
        message.contains("ResourceNotFoundException")
            && message.contains("function:guardrails-hook-missing"),
        "{message}"
    );
    let pages = flow.pages().await;
    assert_eq!(pages.len(), 1, "{pages:?}");
    assert!(
        pages[0].1.contains("lambda:InvokeFunction"),
        "{}",
        pages[0].1
    );
    // Green never served: no weight moved before the hook said yes.
    let shifted = seen
        .iter()
        .any(|e| e["detail"]["deploymentId"] == "d-nohook" && e["detail"]["state"] == "BAKING");
    assert!(!shifted);
}
