//! `guardrails failed-events` against the local stack, through the real functions: GIVEN the
//! deployments table is gone, WHEN SageMaker's events reach endpoint-events, THEN each fails
//! every retry and its invocation record lands in the failed-events queue, as Lambda's
//! on-failure destination puts it; the operator lists them, and once the table is back,
//! redrives them: the function takes each, and the queue is empty. Someone the template does
//! not give the failed-events policy can neither read nor redrive them.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use guardrails_local::iam;
use guardrails_local::stack::default_template;
use guardrails_tests::flow::Flow;
use guardrails_tests::local::endpoint_serving;
use serde_json::Value;

/// `guardrails failed-events <args>` signed with `key`; exit success, stdout and stderr.
fn guardrails(flow: &Flow, key: (&str, &str), args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_guardrails"))
        .arg("failed-events")
        .args(args)
        .env("AWS_ENDPOINT_URL", flow.stack.emulator.url())
        .env("AWS_ACCESS_KEY_ID", key.0)
        .env("AWS_SECRET_ACCESS_KEY", key.1)
        .env("AWS_REGION", iam::REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(
            "GUARDRAILS_FAILED_EVENTS_QUEUE_URL",
            &flow.wired.failed_events_queue_url,
        )
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const OPERATOR: (&str, &str) = (iam::OPERATOR_ACCESS_KEY, iam::OPERATOR_SECRET_KEY);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_events_are_listed_and_redriven_once_the_cause_is_fixed() {
    let flow = Flow::start(&default_template()).await;
    let table = guardrails::aws::dynamodb::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&flow.stack.sdk_config()),
        &flow.wired.table,
    );
    flow.admin
        .dynamodb
        .delete_table()
        .table_name(&flow.wired.table)
        .send()
        .await
        .unwrap();
    // Creating an endpoint sends SageMaker's state changes, which endpoint-events cannot read
    // the table for.
    endpoint_serving(&flow.admin, "fraud", "fraud-v1", "fraud-model-v1", 1).await;
    let mut listed = Value::Null;
    for _ in 0..120 {
        let (ok, out, err) = guardrails(&flow, OPERATOR, &["--json"]);
        assert!(ok, "{err}");
        listed = serde_json::from_str(&out).unwrap();
        if !listed["events"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        !listed["events"].as_array().unwrap().is_empty(),
        "nothing landed: {listed:#}"
    );
    // Every state change of the new endpoint fails: wait until the last has landed.
    let mut events = listed["events"].as_array().unwrap().clone();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (ok, out, err) = guardrails(&flow, OPERATOR, &["--json"]);
        assert!(ok, "{err}");
        let now: Value = serde_json::from_str(&out).unwrap();
        let now = now["events"].as_array().unwrap().clone();
        if now.len() == events.len() {
            break;
        }
        events = now;
    }
    for e in &events {
        assert_eq!(
            e["function"],
            "arn:aws:lambda:us-east-1:123456789012:function:guardrails-endpoint-events:$LATEST"
        );
        assert_eq!(e["kind"], "lambda");
        let why = e["why"].as_str().unwrap();
        assert!(why.starts_with("RetriesExhausted after 3 tries: "), "{why}");
        assert!(why.contains("dynamodb:GetItem"), "{why}");
        assert_eq!(e["event"]["source"], "aws.sagemaker");
    }
    let (ok, text, err) = guardrails(&flow, OPERATOR, &[]);
    assert!(ok, "{err}");
    assert!(
        text.contains(
            "guardrails-endpoint-events  SageMaker Endpoint State Change  RetriesExhausted"
        ),
        "{text}"
    );

    // Mallory may put events, not read or redrive failed ones.
    let mallory = (iam::INTRUDER_ACCESS_KEY, iam::INTRUDER_SECRET_KEY);
    let (ok, _, err) = guardrails(&flow, mallory, &["--redrive"]);
    assert!(!ok);
    assert!(err.contains("AccessDenied"), "{err}");

    // Still failing: redriven, failed again, left in the queue.
    let (ok, _, err) = guardrails(&flow, OPERATOR, &["--redrive"]);
    assert!(!ok, "the table is still gone: {err}");
    assert!(err.contains("still failing"), "{err}");
    assert!(
        err.contains(&format!("0 redriven, {} still failing", events.len())),
        "{err}"
    );

    // The table is back: every event is taken, and the queue is empty.
    table.create_table().await.unwrap();
    let (ok, out, err) = guardrails(&flow, OPERATOR, &["--redrive", "--json"]);
    assert!(ok, "{out}{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    let redriven = answer["redriven"].as_array().unwrap();
    assert_eq!(redriven.len(), events.len(), "{answer:#}");
    assert!(redriven.iter().all(|r| r["redriven"] == true), "{answer:#}");
    let (ok, out, err) = guardrails(&flow, OPERATOR, &[]);
    assert!(ok, "{err}");
    assert_eq!(out, "no failed events\n");
}
