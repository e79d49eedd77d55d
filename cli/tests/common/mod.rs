//! What the command's tests share: running `guardrails` against a flow on the local stack, and
//! opening a page in a real headless Chromium (Debian's, installed by `scripts/setup.sh`).

#![allow(dead_code, reason = "each test binary uses its part")]

use std::path::{Path, PathBuf};
use std::process::Command;

use guardrails_local::iam;
use guardrails_tests::flow::Flow;

pub const OPERATOR: (&str, &str) = (iam::OPERATOR_ACCESS_KEY, iam::OPERATOR_SECRET_KEY);

/// `guardrails <args>` signed with `key` against the flow's commands URL, with every AWS
/// client pointed at the local stack: the exit code, stdout and stderr.
pub fn guardrails(flow: &Flow, key: (&str, &str), args: &[&str]) -> (i32, String, String) {
    let url = guardrails_local::lambda::url_of(&flow.stack.emulator.url(), "start-deployment");
    let out = Command::new(env!("CARGO_BIN_EXE_guardrails"))
        .args(args)
        .env("GUARDRAILS_COMMANDS_URL", url)
        .env("AWS_ENDPOINT_URL", flow.stack.emulator.url())
        .env("AWS_ACCESS_KEY_ID", key.0)
        .env("AWS_SECRET_ACCESS_KEY", key.1)
        .env("AWS_REGION", iam::REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A policy: a 50% canary baking `bake` seconds, green's error alarm (5xx Average above 5%
/// over 10 s) watched.
pub fn canary_policy(bake: u32) -> String {
    format!(
        r#"BlueGreenUpdatePolicy:
  TrafficRoutingConfiguration:
    Type: CANARY
    CanarySize: {{ Type: CAPACITY_PERCENT, Value: 50 }}
    WaitIntervalInSeconds: {bake}
  TerminationWaitInSeconds: 1
  MaximumExecutionTimeoutInSeconds: 900
Guardrails:
  PollIntervalInSeconds: 1
  Alarms:
    - Name: errors
      MetricName: Invocation5XXErrors
      Statistic: Average
      ComparisonOperator: GreaterThanThreshold
      Threshold: 0.05
      PeriodInSeconds: 10
      EvaluationPeriods: 1
      DatapointsToAlarm: 1
      TreatMissingData: notBreaching
"#
    )
}

/// Debian's Chromium.
fn chromium() -> PathBuf {
    let path = PathBuf::from("/usr/bin/chromium");
    assert!(
        path.exists(),
        "{} is missing: scripts/setup.sh installs Debian's chromium package",
        path.display()
    );
    path
}

/// Chromium, headless, with a profile of its own and nothing that reaches off this machine.
fn headless(profile: &Path) -> Command {
    let mut c = Command::new(chromium());
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

fn file_url(page: &Path) -> String {
    format!("file://{}", page.canonicalize().unwrap().display())
}

/// The page's DOM once Chromium has loaded it.
pub fn dump_dom(page: &Path, profile: &Path) -> String {
    let out = headless(profile)
        .arg("--dump-dom")
        .arg(file_url(page))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium --dump-dom: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A screenshot of the page at `width` x `height` CSS pixels, written to `png`.
pub fn screenshot(page: &Path, profile: &Path, width: u32, height: u32, png: &Path) {
    let out = headless(profile)
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(file_url(page))
        .output()
        .unwrap();
    assert!(
        out.status.success() && png.exists(),
        "chromium --screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
