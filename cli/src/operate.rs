//! The operator's subcommands: `deploy`, `status`, `history`, `show`, `approve`, `abort`, each a
//! command to the running Guardrails (`remote`), and how their answers are shown: tables and
//! timelines for people, the answer's JSON with `--output json` for scripts.

use std::io::IsTerminal;
use std::time::{Duration, UNIX_EPOCH};

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use serde_json::{Value, json};

use crate::remote::Remote;

/// How `deploy --wait` ends: 0 succeeded, 2 rolled back, 3 failed (1 is any refusal or error).
pub const EXIT_ROLLED_BACK: u8 = 2;
pub const EXIT_FAILED: u8 = 3;
/// How often `--wait` and `--watch` read the deployment again.
const POLL: Duration = Duration::from_secs(2);

/// What a subcommand prints, and its exit status.
pub struct Output {
    pub text: String,
    pub code: u8,
}

impl Output {
    fn ok(text: String) -> Output {
        Output { text, code: 0 }
    }
}

fn text(v: &Value, field: &str) -> String {
    match &v[field] {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// `2026-12-02T14:05:11Z` for epoch milliseconds.
pub fn utc(epoch_ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(epoch_ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

/// `1h02m`, `4m05s`, `12s`.
pub fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    match (secs / 3_600, secs % 3_600 / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    t
}

/// The `status` answer as a table: one row per active deployment.
pub fn render_status(answer: &Value) -> String {
    let deployments = answer["deployments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if deployments.is_empty() {
        return "no active deployments\n".to_owned();
    }
    let mut t = table(&[
        "ENDPOINT",
        "DEPLOYMENT",
        "ENGINE",
        "STATE",
        "STEP",
        "GREEN",
        "BAKE LEFT",
        "ALARMS",
    ]);
    for d in &deployments {
        let step = match (d["step"].as_u64(), d["stepCount"].as_u64()) {
            (Some(s), Some(n)) => format!("{s}/{n}"),
            (None, Some(n)) => format!("-/{n}"),
            _ => "-".to_owned(),
        };
        let alarms: Vec<String> = d["alarms"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|a| {
                // CloudWatch's words for the states.
                let state = match a["state"].as_str() {
                    Some("Ok") => "OK",
                    Some("Alarm") => "ALARM",
                    Some("InsufficientData") => "INSUFFICIENT_DATA",
                    _ => "UNKNOWN",
                };
                format!("{} {state}", text(a, "alarmName"))
            })
            .collect();
        t.add_row(vec![
            text(d, "endpointName"),
            text(d, "deploymentId"),
            text(d, "engine"),
            text(d, "state"),
            step,
            format!("{}%", d["greenPercent"].as_f64().unwrap_or(0.0)),
            d["bakeSecondsLeft"]
                .as_i64()
                .map_or_else(|| "-".to_owned(), duration),
            if alarms.is_empty() {
                "-".to_owned()
            } else {
                alarms.join("\n")
            },
        ]);
    }
    // The judge's verdict so far, under the table: it is a sentence, not a cell.
    let verdicts: String = deployments
        .iter()
        .filter_map(|d| {
            let verdict = d["verdict"].as_str()?;
            Some(format!("{} judge: {verdict}\n", text(d, "endpointName")))
        })
        .collect();
    format!("{t}\n{verdicts}")
}

/// The `history` answer as a table, newest first.
pub fn render_history(answer: &Value) -> String {
    let deployments = answer["deployments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if deployments.is_empty() {
        return format!("{}: no past deployments\n", text(answer, "endpoint"));
    }
    let mut t = table(&[
        "DEPLOYMENT",
        "MODEL",
        "ENGINE",
        "OUTCOME",
        "STARTED",
        "DURATION",
        "REQUESTED BY",
    ]);
    for d in &deployments {
        t.add_row(vec![
            text(d, "deploymentId"),
            text(d, "modelName"),
            text(d, "engine"),
            text(d, "state"),
            d["startedAt"].as_i64().map_or_else(|| "-".to_owned(), utc),
            d["durationSecs"]
                .as_i64()
                .map_or_else(|| "-".to_owned(), duration),
            text(d, "requestedBy"),
        ]);
    }
    format!("{t}\n")
}

/// One line of a timeline: an entry of `show`'s `timeline` (our state-change event).
pub fn timeline_line(e: &Value) -> String {
    let elapsed = e["elapsedMs"].as_i64().unwrap_or(0) / 1_000;
    let green = e["observedGreenPercent"]
        .as_f64()
        .or_else(|| e["plannedGreenPercent"].as_f64())
        .map_or_else(|| "   -".to_owned(), |p| format!("{p:>3.0}%"));
    format!(
        "t+{:>6}  {:<19} green {green}  {}\n",
        duration(elapsed),
        text(e, "state"),
        text(e, "causeText")
    )
}

/// The `show` answer: the summary, then the audit trail as a timeline.
pub fn render_show(answer: &Value) -> String {
    let s = &answer["summary"];
    let mut out = format!(
        "deployment {} on {}: {} ({} engine), model {}\n",
        text(s, "deploymentId"),
        text(s, "endpointName"),
        text(s, "state"),
        text(s, "engine"),
        text(s, "modelName"),
    );
    out.push_str(&format!("  requested by {}\n", text(s, "requestedBy")));
    if let Some(started) = s["startedAt"].as_i64() {
        out.push_str(&format!("  started {}", utc(started)));
        match s["durationSecs"].as_i64() {
            Some(d) => out.push_str(&format!(", took {}\n", duration(d))),
            None => out.push('\n'),
        }
    }
    if s["endedAt"].is_i64() {
        out.push_str(&format!("  why it ended: {}\n", text(s, "cause")));
    }
    if let Ok(blast) =
        serde_json::from_value::<guardrails::core::BlastRadius>(answer["blastRadius"].clone())
    {
        out.push_str(&format!("  blast radius: {}\n", blast.served()));
        if let Some(since) = blast.since_signal() {
            out.push_str(&format!("    {since}\n"));
        }
    }
    out.push('\n');
    for e in answer["timeline"].as_array().cloned().unwrap_or_default() {
        out.push_str(&timeline_line(&e));
    }
    out
}

fn is_final(state: &str) -> bool {
    matches!(state, "SUCCEEDED" | "ROLLED_BACK" | "FAILED")
}

fn exit_of(state: &str) -> u8 {
    match state {
        "SUCCEEDED" => 0,
        "ROLLED_BACK" => EXIT_ROLLED_BACK,
        _ => EXIT_FAILED,
    }
}

/// What `deploy` sends besides the policy.
pub struct DeployArgs {
    pub endpoint: String,
    pub model: Option<String>,
    pub package: Option<String>,
    pub policy_text: String,
    pub instance_type: Option<String>,
    pub instance_count: Option<u32>,
    pub deployment_id: Option<String>,
    pub dry_run: bool,
    pub yes: bool,
    pub wait: bool,
    pub json: bool,
}

fn deploy_body(a: &DeployArgs, dry_run: bool) -> Value {
    let mut body = json!({
        "command": "deploy",
        "endpointName": a.endpoint,
        "policy": a.policy_text,
        "dryRun": dry_run,
    });
    for (field, value) in [
        ("modelName", a.model.clone().map(Value::from)),
        ("modelPackageArn", a.package.clone().map(Value::from)),
        ("instanceType", a.instance_type.clone().map(Value::from)),
        ("instanceCount", a.instance_count.map(Value::from)),
        ("deploymentId", a.deployment_id.clone().map(Value::from)),
    ] {
        if let Some(v) = value {
            body[field] = v;
        }
    }
    body
}

/// `deploy`: the plan with the live preflight checks, a question (unless `--yes` or not a
/// terminal), the start, and with `--wait` the deployment followed to its end.
pub async fn deploy(remote: &Remote, a: &DeployArgs) -> Result<Output, String> {
    let planned = remote.ok(&deploy_body(a, true)).await?;
    let plan_text = text(&planned, "text");
    if a.dry_run {
        return Ok(Output::ok(if a.json {
            format!("{planned:#}\n")
        } else {
            plan_text
        }));
    }
    if !a.json {
        print!("{plan_text}");
    }
    if !a.yes && std::io::stdin().is_terminal() {
        eprint!("Start this deployment? [y/N] ");
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the answer: {e}"))?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(Output {
                text: "not started\n".to_owned(),
                code: 1,
            });
        }
    }
    let started = remote.ok(&deploy_body(a, false)).await?;
    let id = started["deployments"][0]["deploymentId"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("the deployment did not start: {started}"))?;
    if !a.wait {
        return Ok(Output::ok(if a.json {
            format!("{started:#}\n")
        } else {
            format!("deployment {id} started on {}\n", a.endpoint)
        }));
    }
    if !a.json {
        println!("deployment {id} started on {}; following it", a.endpoint);
    }
    follow(remote, &id, a.json).await
}

/// Reads `show` until the deployment ends, printing each new entry of its timeline.
async fn follow(remote: &Remote, id: &str, json: bool) -> Result<Output, String> {
    let mut printed = 0;
    loop {
        let shown = remote
            .ok(&json!({ "command": "show", "deploymentId": id }))
            .await?;
        let timeline = shown["timeline"].as_array().cloned().unwrap_or_default();
        if !json {
            for e in timeline.iter().skip(printed) {
                print!("{}", timeline_line(e));
            }
        }
        printed = timeline.len();
        let state = text(&shown["summary"], "state");
        if is_final(&state) {
            let code = exit_of(&state);
            let text = if json {
                format!("{shown:#}\n")
            } else {
                format!(
                    "deployment {id}: {state}: {}\n",
                    text(&shown["summary"], "cause")
                )
            };
            return Ok(Output { text, code });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `status`: every active deployment (or the endpoint's); `--watch` redraws it in place until
/// none is left.
pub async fn status(
    remote: &Remote,
    endpoint: Option<&str>,
    watch: bool,
    json: bool,
) -> Result<Output, String> {
    let mut body = json!({ "command": "status" });
    if let Some(e) = endpoint {
        body["endpointName"] = json!(e);
    }
    if !watch {
        let answer = remote.ok(&body).await?;
        return Ok(Output::ok(if json {
            format!("{answer:#}\n")
        } else {
            render_status(&answer)
        }));
    }
    let terminal = std::io::stdout().is_terminal();
    let mut lines = 0u16;
    loop {
        let answer = remote.ok(&body).await?;
        let shown = if json {
            format!("{answer}\n")
        } else {
            render_status(&answer)
        };
        if terminal && lines > 0 {
            use crossterm::{cursor, execute, terminal};
            let _ = execute!(
                std::io::stdout(),
                cursor::MoveUp(lines),
                terminal::Clear(terminal::ClearType::FromCursorDown)
            );
        }
        print!("{shown}");
        lines = u16::try_from(shown.lines().count()).unwrap_or(u16::MAX);
        if answer["deployments"]
            .as_array()
            .is_none_or(|d| d.is_empty())
        {
            return Ok(Output::ok(String::new()));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `history`.
pub async fn history(
    remote: &Remote,
    endpoint: &str,
    limit: Option<usize>,
    json: bool,
) -> Result<Output, String> {
    let mut body = json!({ "command": "history", "endpointName": endpoint });
    if let Some(l) = limit {
        body["limit"] = json!(l);
    }
    let answer = remote.ok(&body).await?;
    Ok(Output::ok(if json {
        format!("{answer:#}\n")
    } else {
        render_history(&answer)
    }))
}

/// `show`.
pub async fn show(remote: &Remote, id: &str, json: bool) -> Result<Output, String> {
    let answer = remote
        .ok(&json!({ "command": "show", "deploymentId": id }))
        .await?;
    Ok(Output::ok(if json {
        format!("{answer:#}\n")
    } else {
        render_show(&answer)
    }))
}

/// `backtest`: the deployment as `show` answers, replayed under `policy`'s analysis (the
/// defaults when it names none, as a deployment under it would be judged).
pub async fn backtest(
    remote: &Remote,
    id: &str,
    policy: &guardrails::policy::Policy,
    json: bool,
) -> Result<Output, String> {
    let answer = remote
        .ok(&json!({ "command": "show", "deploymentId": id }))
        .await?;
    let shown: guardrails::status::Shown = serde_json::from_value(answer)
        .map_err(|e| format!("show {id}: an answer this command cannot read: {e}"))?;
    let analysis = policy.guardrails.analysis.clone().unwrap_or_default();
    let replay = guardrails::backtest::replay(&shown, &analysis).map_err(|e| e.to_string())?;
    Ok(Output::ok(if json {
        format!("{:#}\n", json!(replay))
    } else {
        replay.render()
    }))
}

/// `approve` and `abort`: the endpoint's active deployment (or the one named).
pub async fn person(
    remote: &Remote,
    verb: &str,
    endpoint: &str,
    deployment_id: Option<&str>,
    reason: Option<&str>,
) -> Result<Output, String> {
    let mut body = json!({ "command": verb, "endpointName": endpoint });
    if let Some(id) = deployment_id {
        body["deploymentId"] = json!(id);
    }
    if let Some(r) = reason {
        body["reason"] = json!(r);
    }
    let answer = remote.ok(&body).await?;
    let d = &answer["deployments"][0];
    Ok(Output::ok(format!(
        "{verb}: deployment {} on {endpoint} is now {}\n",
        text(d, "deploymentId"),
        text(d, "phase")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_read_as_people_write_them() {
        assert_eq!(duration(12), "12s");
        assert_eq!(duration(245), "4m05s");
        assert_eq!(duration(3_720), "1h02m");
        assert_eq!(utc(1_796_223_741_979), "2026-12-02T15:02:21Z");
    }

    /// `status` of a canary mid-bake, as the function answers it (the answer's shape is the
    /// one `cli/tests/operator_local.rs` reads from the real function).
    #[test]
    fn a_canary_mid_bake_shows_its_step_share_bake_and_alarms() {
        let answer = json!({ "handled": "status", "deployments": [{
            "deploymentId": "d-6a7e8febb491", "endpointName": "fraud-scorer",
            "modelName": "fraud-scorer-v2", "engine": "variant", "state": "BAKING",
            "step": 1, "stepCount": 2, "greenPercent": 10.0,
            "bakeEndsAt": 1_796_223_741_979_i64, "bakeSecondsLeft": 245,
            "startedAt": 1_796_223_000_000_i64, "deadline": 1_796_226_600_000_i64,
            "requestedBy": "arn:aws:sts::123456789012:assumed-role/ml-release/alice",
            "approvedBy": null,
            "alarms": [
                { "alarmName": "fraud-scorer-5xx", "state": "Ok" },
                { "alarmName": "guardrails-d-6a7e8febb491-green-errors", "state": "InsufficientData" },
                { "alarmName": "guardrails-d-6a7e8febb491-green-errors-final", "state": null }
            ],
            "lastChange": "green serves 10% (step 1)", "at": 1_796_223_496_979_i64
        }]});
        insta::assert_snapshot!(render_status(&answer));
    }

    #[test]
    fn a_judged_canary_says_the_judges_verdict_so_far_under_the_table() {
        let answer = json!({ "handled": "status", "deployments": [{
            "deploymentId": "d-1", "endpointName": "fraud-scorer", "engine": "variant",
            "state": "BAKING", "step": 1, "stepCount": 2, "greenPercent": 10.0,
            "bakeSecondsLeft": 245, "alarms": [],
            "verdict": "no verdict yet at step 1: 5xx error rate: green 0.52% of 4,210 requests \
                        against blue 0.49% of 37,890; inconclusive (evidence 0.31, decides at 100)"
        }]});
        let shown = render_status(&answer);
        assert!(
            shown.ends_with(
                "\nfraud-scorer judge: no verdict yet at step 1: 5xx error rate: green 0.52% of \
                 4,210 requests against blue 0.49% of 37,890; inconclusive (evidence 0.31, \
                 decides at 100)\n"
            ),
            "{shown}"
        );
    }

    #[test]
    fn a_status_without_deployments_says_so() {
        assert_eq!(
            render_status(&json!({ "deployments": [] })),
            "no active deployments\n"
        );
    }
}
