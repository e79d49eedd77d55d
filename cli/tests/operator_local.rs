//! The operator's day through the `guardrails` command, against the local stack and the real
//! functions, signed as the local operator: `deploy --dry-run` shows the plan with its live
//! preflight, `deploy --wait` exits 0 on success and 2 on a rollback, `status` shows a canary
//! mid-bake, `abort` rolls it back, `history` and `show` read what happened, and `--output json`
//! parses back. Someone IAM lets through whom the template names in no list is refused.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

mod common;

use common::{OPERATOR, guardrails};
use guardrails_local::iam;
use guardrails_local::stack::default_template;
use guardrails_tests::flow::Flow;
use guardrails_tests::local::{endpoint_serving, model, set_model};
use serde_json::Value;

const ENDPOINT: &str = "fraud";

/// `guardrails deploy` of `model` to the endpoint under the policy at `policy`, as the operator.
fn deploy(
    flow: &Flow,
    model: &str,
    policy: &std::path::Path,
    flags: &[&str],
) -> (i32, String, String) {
    let policy = policy.to_str().unwrap();
    let mut args = vec![
        "deploy",
        "--endpoint",
        ENDPOINT,
        "--model",
        model,
        "--policy",
        policy,
    ];
    args.extend_from_slice(flags);
    guardrails(flow, OPERATOR, &args)
}

/// A policy file: a 50% canary baking `bake` seconds, green's error alarm watched.
fn policy(bake: u32) -> PathBuf {
    let text = common::canary_policy(bake);
    let dir = std::env::temp_dir().join(format!("guardrails-cli-{}-{bake}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_deploys_watches_aborts_and_reads_the_history_through_the_command() {
    let flow = Flow::start(&default_template()).await;
    endpoint_serving(&flow.admin, ENDPOINT, "fraud-v1", "fraud-model-v1", 2).await;
    for m in ["fraud-model-v2", "fraud-model-v3", "fraud-model-v4"] {
        model(&flow.admin, m).await;
    }
    let quick = policy(2);

    // The dry run: the plan and its preflight, nothing started.
    let (code, out, err) = deploy(&flow, "fraud-model-v2", &quick, &["--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Preflight, before any change:"), "{out}");
    assert!(out.contains("fraud-model-v2"), "{out}");

    // A good model: --wait follows it to SUCCEEDED and exits 0.
    let flags = ["--deployment-id", "d-good", "--wait", "--yes"];
    let (code, out, err) = deploy(&flow, "fraud-model-v2", &quick, &flags);
    assert_eq!(code, 0, "{out}{err}");
    println!("$ guardrails deploy ... --wait --yes\n{out}");
    assert!(out.contains("deployment d-good: SUCCEEDED"), "{out}");
    assert!(out.contains("BAKING"), "a timeline was followed: {out}");

    // A bad model: rolled back by its alarm, exit 2.
    set_model(&flow.stack, "fraud-model-v3", 0.5);
    let flags = ["--deployment-id", "d-bad", "--wait", "--yes"];
    let (code, out, err) = deploy(&flow, "fraud-model-v3", &policy(60), &flags);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("deployment d-bad: ROLLED_BACK"), "{out}");

    // A canary that bakes long: status mid-bake, then abort.
    let flags = ["--deployment-id", "d-long", "--yes"];
    let (code, out, err) = deploy(&flow, "fraud-model-v4", &policy(600), &flags);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("deployment d-long started on fraud"), "{out}");
    let mut status = Value::Null;
    for _ in 0..60 {
        let (code, out, err) = guardrails(&flow, OPERATOR, &["status", "--output", "json"]);
        assert_eq!(code, 0, "{err}");
        status = serde_json::from_str(&out).unwrap();
        if status["deployments"][0]["state"] == "BAKING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(status["deployments"][0]["state"], "BAKING", "{status:#}");
    let (code, table, _) = guardrails(&flow, OPERATOR, &["status", ENDPOINT]);
    assert_eq!(code, 0);
    println!("$ guardrails status fraud\n{table}");
    for cell in [
        "ENDPOINT",
        "d-long",
        "BAKING",
        "1/2",
        "50%",
        "guardrails-d-long-errors OK",
    ] {
        assert!(table.contains(cell), "{cell} in {table}");
    }

    // Someone IAM lets through, named in no list: refused.
    let admin = (iam::ADMIN_ACCESS_KEY, iam::ADMIN_SECRET_KEY);
    let (code, _, err) = guardrails(&flow, admin, &["abort", ENDPOINT, "--reason", "mine"]);
    assert_eq!(code, 1);
    assert!(err.contains("refused (403)"), "{err}");

    let (code, out, err) = guardrails(
        &flow,
        OPERATOR,
        &["abort", ENDPOINT, "--reason", "seen enough"],
    );
    assert_eq!(code, 0, "{err}");
    println!("$ guardrails abort fraud --reason \"seen enough\"\n{out}");
    assert!(
        out.contains("abort: deployment d-long on fraud is now"),
        "{out}"
    );
    let mut history = Value::Null;
    for _ in 0..60 {
        let (_, out, _) = guardrails(&flow, OPERATOR, &["history", ENDPOINT, "--output", "json"]);
        history = serde_json::from_str(&out).unwrap();
        if history["deployments"][0]["deploymentId"] == "d-long" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ids: Vec<&str> = history["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deploymentId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["d-long", "d-bad", "d-good"],
        "newest first: {history:#}"
    );
    let (code, table, _) = guardrails(&flow, OPERATOR, &["history", ENDPOINT]);
    assert_eq!(code, 0);
    println!("$ guardrails history fraud\n{table}");
    for cell in ["ROLLED_BACK", "SUCCEEDED", iam::OPERATOR_ARN] {
        assert!(table.contains(cell), "{cell} in {table}");
    }
    let (code, shown, _) = guardrails(&flow, OPERATOR, &["show", "d-long"]);
    assert_eq!(code, 0);
    println!("$ guardrails show d-long\n{shown}");
    assert!(
        shown.contains("deployment d-long on fraud: ROLLED_BACK"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("aborted by {}: seen enough", iam::OPERATOR_ARN)),
        "{shown}"
    );
    let (code, _, err) = guardrails(&flow, OPERATOR, &["show", "d-nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("refused (404): no deployment d-nope"), "{err}");

    // A deployment that waits for a person before its last shift: approve lets it finish.
    model(&flow.admin, "fraud-model-v5").await;
    let held = std::fs::read_to_string(policy(1)).unwrap().replace(
        "Guardrails:\n",
        "Guardrails:\n  ApproveBeforeFinalShift: true\n",
    );
    let held_path = policy(1).with_file_name("held.yaml");
    std::fs::write(&held_path, held).unwrap();
    let flags = ["--deployment-id", "d-held", "--yes"];
    let (code, out, err) = deploy(&flow, "fraud-model-v5", &held_path, &flags);
    assert_eq!(code, 0, "{out}{err}");
    let mut state = Value::Null;
    for _ in 0..60 {
        let (_, out, _) = guardrails(&flow, OPERATOR, &["status", ENDPOINT, "--output", "json"]);
        state = serde_json::from_str::<Value>(&out).unwrap()["deployments"][0]["state"].clone();
        if state == "AWAITING_APPROVAL" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(state, "AWAITING_APPROVAL");
    let (code, out, err) = guardrails(&flow, OPERATOR, &["approve", ENDPOINT]);
    assert_eq!(code, 0, "{err}");
    println!("$ guardrails approve fraud\n{out}");
    assert!(
        out.contains("approve: deployment d-held on fraud is now"),
        "{out}"
    );
    let mut shown = Value::Null;
    for _ in 0..60 {
        let (_, out, _) = guardrails(&flow, OPERATOR, &["show", "d-held", "--output", "json"]);
        shown = serde_json::from_str(&out).unwrap();
        if shown["summary"]["state"] == "SUCCEEDED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(shown["summary"]["state"], "SUCCEEDED", "{shown:#}");
    let (_, text, _) = guardrails(&flow, OPERATOR, &["show", "d-held"]);
    assert!(
        text.contains(&format!("approved by {}", iam::OPERATOR_ARN)),
        "{text}"
    );
}
