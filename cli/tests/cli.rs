//! The `guardrails` command as a user runs it: the dry run of every example policy, and clear
//! refusals with a non-zero exit code.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn repo_file(path: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    root.join("..").join(path).display().to_string()
}

fn guardrails(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guardrails"))
        .args(args)
        .output()
        .expect("the guardrails binary runs")
}

fn plan(policy: &str, extra: &[&str]) -> Output {
    let policy = repo_file(&format!("examples/policies/{policy}"));
    let mut args = vec![
        "plan",
        "--policy",
        &policy,
        "--endpoint",
        "fraud-scorer",
        "--config",
        "fraud-scorer-v1",
        "--instance-type",
        "ml.m5.xlarge",
        "--instances",
        "4",
        "--model",
        "fraud-scorer-v2",
    ];
    args.extend_from_slice(extra);
    guardrails(&args)
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn every_example_policy_plans_and_reads_well() {
    for policy in [
        "canary.yaml",
        "linear.json",
        "all-at-once.yaml",
        "steps-with-approval.yaml",
        "native-rolling.yaml",
        "native-canary.yaml",
    ] {
        insta::assert_snapshot!(policy, stdout(&plan(policy, &[])));
    }
}

#[test]
fn the_plan_prints_as_json_for_machines() {
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&plan("canary.yaml", &["--json"]))).expect("valid JSON");
    assert_eq!(json["steps"][0]["green_share"], 1000);
    assert_eq!(json["green"]["variant_name"], "fraud-scorer-v2");
    assert_eq!(
        json["blue_green_config_name"],
        "guardrails-dry-run-blue-green"
    );
}

#[test]
fn an_invalid_policy_is_refused_with_every_problem_and_exit_code_1() {
    let dir = std::env::temp_dir().join(format!("guardrails-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "DeploymentConfig:\n  BlueGreenUpdatePolicy:\n    TrafficRoutingConfiguration: \
         {Type: CANARY, CanarySize: {Type: CAPACITY_PERCENT, Value: 80}}\n",
    )
    .expect("write policy");
    let output = guardrails(&["validate", &bad.display().to_string()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid policy (2 problems)"), "{stderr}");
    assert!(
        stderr.contains("CanarySize.Value: 80% exceeds the 50% SageMaker allows for a canary"),
        "{stderr}"
    );
    assert!(
        stderr.contains("WaitIntervalInSeconds: is required"),
        "{stderr}"
    );
}

#[test]
fn the_broken_example_policy_shows_every_kind_of_problem() {
    let output = guardrails(&["validate", &repo_file("examples/broken-policy.yaml")]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let problems = stderr
        .split_once(": invalid policy")
        .map(|(_, rest)| rest.to_owned());
    insta::assert_snapshot!(problems.unwrap_or_default());
}

#[test]
fn a_valid_policy_validates() {
    let output = guardrails(&["validate", &repo_file("examples/policies/linear.json")]);
    assert!(stdout(&output).ends_with("linear.json: valid\n"));
}

#[test]
fn a_fleet_the_policy_cannot_serve_is_refused() {
    let output = plan("canary.yaml", &["--green-variant", "AllTraffic"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is blue's variant name"));
}
