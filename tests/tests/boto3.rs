//! The local stack through boto3 (`tests/boto3/test_local_stack.py`, in the project's venv):
//! a real client nobody here wrote gets the answers AWS gives, with nothing but the environment
//! `guardrails-local up` writes.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use guardrails_tests::{local, repo_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_gets_the_answers_aws_gives() {
    let stack = local::start().await;
    let python = guardrails_local::iam::template::python_path();
    let script = repo_root().join("tests/boto3/test_local_stack.py");
    let mut command = Command::new(&python);
    command.arg(&script).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    for (key, value) in stack.env() {
        command.env(key, value);
    }
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "boto3 against the local stack:\n{report}"
    );
    println!("{report}");
}
