//! The read commands through the function URL on the local stack, with the real functions:
//! GIVEN a canary baking on an endpoint, WHEN the operator asks for `status`, THEN it shows the
//! step, green's share, the time left in the bake and each watched alarm's state; after an
//! abort, `history` lists the deployment with its outcome and who asked, and `show` its audit
//! trail as our events. Someone the template names in no list may not read.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use guardrails_local::iam;
use guardrails_local::stack::default_template;
use guardrails_tests::flow::Flow;
use guardrails_tests::local::{endpoint_serving, model};
use serde_json::{Value, json};

const ENDPOINT: &str = "fraud";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_history_and_show_read_what_the_table_holds() {
    let flow = Flow::start(&default_template()).await;
    endpoint_serving(&flow.admin, ENDPOINT, "fraud-v1", "fraud-model-v1", 2).await;
    model(&flow.admin, "fraud-model-v2").await;
    let deploy = json!({
        "command": "deploy", "endpointName": ENDPOINT, "modelName": "fraud-model-v2",
        "deploymentId": "d-read",
        "policy": {
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "CANARY", "CanarySize": { "Type": "CAPACITY_PERCENT", "Value": 50 },
                        "WaitIntervalInSeconds": 600 },
                    "TerminationWaitInSeconds": 1, "MaximumExecutionTimeoutInSeconds": 3600 },
                "AutoRollbackConfiguration": { "Alarms": [{ "AlarmName": "fraud-5xx" }] } },
            "Guardrails": { "Engine": "variant", "PollIntervalInSeconds": 1 }
        }
    });
    flow.admin
        .cloudwatch
        .put_metric_alarm()
        .alarm_name("fraud-5xx")
        .namespace("AWS/SageMaker")
        .metric_name("Invocation5XXErrors")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(10.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    flow.command(&deploy).await;
    let mut seen = Vec::new();
    flow.until(&mut seen, |e| {
        e["detail"]["deploymentId"] == "d-read" && e["detail"]["state"] == "BAKING"
    })
    .await;

    let status = flow.command(&json!({ "command": "status" })).await;
    assert_eq!(status["handled"], "status", "{status:#}");
    let d = &status["deployments"][0];
    assert_eq!(d["deploymentId"], "d-read", "{status:#}");
    assert_eq!(d["state"], "BAKING");
    assert_eq!(
        (d["step"].clone(), d["stepCount"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(d["greenPercent"], 50.0);
    let left = d["bakeSecondsLeft"].as_i64().unwrap();
    assert!((1..=600).contains(&left), "{d:#}");
    assert_eq!(d["requestedBy"], iam::OPERATOR_ARN);
    let alarms: Vec<&str> = d["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alarmName"].as_str().unwrap())
        .collect();
    assert!(alarms.contains(&"fraud-5xx"), "{d:#}");
    assert!(
        d["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| !a["state"].is_null()),
        "every watched alarm's state is read: {d:#}"
    );
    let one = flow
        .command(&json!({ "command": "status", "endpointName": ENDPOINT }))
        .await;
    assert_eq!(one["deployments"].as_array().unwrap().len(), 1);

    // Someone IAM lets through whom no list names may not read.
    let admin = (iam::ADMIN_ACCESS_KEY, iam::ADMIN_SECRET_KEY);
    let (code, answer) = flow
        .command_as(admin, &json!({ "command": "status" }))
        .await;
    assert_eq!(code, 403, "{answer}");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("may not read deployments"),
        "{answer}"
    );

    flow.command(&json!({ "command": "abort", "endpointName": ENDPOINT, "reason": "seen enough" }))
        .await;
    let end = flow.outcome(&mut seen, "d-read").await;
    assert_eq!(end["detail"]["outcome"], "ROLLED_BACK");

    let history = flow
        .command(&json!({ "command": "history", "endpointName": ENDPOINT }))
        .await;
    let past = &history["deployments"][0];
    assert_eq!(past["deploymentId"], "d-read", "{history:#}");
    assert_eq!(past["state"], "ROLLED_BACK");
    assert_eq!(past["requestedBy"], iam::OPERATOR_ARN);
    assert!(past["durationSecs"].as_i64().is_some(), "{past:#}");
    assert!(
        past["cause"].as_str().unwrap().contains("seen enough"),
        "{past:#}"
    );

    let shown = flow
        .command(&json!({ "command": "show", "deploymentId": "d-read" }))
        .await;
    assert_eq!(shown["handled"], "shown");
    assert!(shown["status"].is_null(), "ended: no live status");
    let timeline: Vec<(String, String)> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["state"].as_str().unwrap().to_owned(),
                e["causeText"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(timeline[0].0, "PROVISIONING", "{timeline:?}");
    assert!(timeline[0].1.contains(iam::OPERATOR_ARN), "{timeline:?}");
    assert_eq!(timeline.last().unwrap().0, "ROLLED_BACK", "{timeline:?}");
    assert_eq!(shown["plan"]["deployment_id"], "d-read");
    let (code, answer) = flow
        .command_as(
            (iam::OPERATOR_ACCESS_KEY, iam::OPERATOR_SECRET_KEY),
            &json!({ "command": "show", "deploymentId": "d-nope" }),
        )
        .await;
    assert_eq!(code, 404, "{answer}");
    let _: Value = answer;
}
