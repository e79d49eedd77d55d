//! The judge end to end on the local stack, through the real functions and the command: GIVEN
//! a 50% canary whose green alarm fires only above 50% errors, and blue answering 2% of its
//! requests with a 5xx, WHEN a model with three times blue's error rate is deployed, THEN the
//! judge (from CloudWatch's per-variant counts of the noisy local traffic) rolls it back while
//! the alarm stays OK, and the record, the events and the page say so with the numbers; and a
//! model as good as blue passes its bake early on the judge's evidence.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{OPERATOR, guardrails};
use guardrails_local::stack::default_template;
use guardrails_local::traffic::Behaviour;
use guardrails_tests::flow::Flow;
use guardrails_tests::local::{endpoint_serving, model, set_behaviour};
use serde_json::Value;

const ENDPOINT: &str = "fraud";

/// A 50% canary baking `bake` s, green's alarm above `threshold` errors, and the judge on 1 s
/// periods. (The alarm reads a period while it fills: a first tick of some 25 green requests
/// is all it sees at first, so the thresholds stay far above the error rates.)
fn judged_policy(bake: u32, threshold: f64, analysis: &str) -> String {
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
      Threshold: {threshold}
      PeriodInSeconds: 10
      EvaluationPeriods: 1
      TreatMissingData: notBreaching
  Analysis:
    PeriodInSeconds: 1
    MinimumGreenRequests: 200
{analysis}"#
    )
}

fn behaves(flow: &Flow, model: &str, error_rate: f64) {
    set_behaviour(
        &flow.stack,
        model,
        Behaviour {
            error_rate,
            latency_ms: 20.0,
        },
    );
}

async fn deploy(
    flow: &Flow,
    dir: &std::path::Path,
    id: &str,
    model_name: &str,
    policy: &str,
) -> i32 {
    let path = dir.join(format!("{id}.yaml"));
    std::fs::write(&path, policy).unwrap();
    let args = [
        "deploy",
        "--endpoint",
        ENDPOINT,
        "--model",
        model_name,
        "--policy",
        path.to_str().unwrap(),
        "--deployment-id",
        id,
        "--wait",
        "--yes",
    ];
    let (code, out, err) = guardrails(flow, OPERATOR, &args);
    eprintln!("{out}{err}");
    code
}

fn shown(flow: &Flow, id: &str) -> Value {
    let (code, out, err) = guardrails(flow, OPERATOR, &["show", id, "--output", "json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_judge_rolls_back_what_no_alarm_catches_and_passes_a_good_green_early() {
    let flow = Flow::start(&default_template()).await;
    endpoint_serving(&flow.admin, ENDPOINT, "fraud-v1", "fraud-model-v1", 2).await;
    behaves(&flow, "fraud-model-v1", 0.02);
    let dir = tempfile::tempdir().unwrap();

    // Three times blue's errors, far under the alarm's threshold.
    model(&flow.admin, "fraud-model-v3").await;
    behaves(&flow, "fraud-model-v3", 0.06);
    let dry = dir.path().join("dry.yaml");
    std::fs::write(&dry, judged_policy(120, 0.5, "")).unwrap();
    let (code, plan, _) = guardrails(
        &flow,
        OPERATOR,
        &[
            "deploy",
            "--endpoint",
            ENDPOINT,
            "--model",
            "fraud-model-v3",
            "--policy",
            dry.to_str().unwrap(),
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{plan}");
    assert!(
        plan.contains("judged at step 1, green against blue per 1 s (a worse green rolls back):")
            && plan.contains("- 5xx error rate: 50% worse matters; false-rollback rate 0.01"),
        "the plan says what the judge compares: {plan}"
    );
    let code = deploy(
        &flow,
        dir.path(),
        "d-judged",
        "fraud-model-v3",
        &judged_policy(120, 0.5, ""),
    )
    .await;
    assert_eq!(code, 2, "rolled back");
    let d = shown(&flow, "d-judged");
    let cause = d["summary"]["cause"].as_str().unwrap();
    assert!(
        cause
            .starts_with("the judge found green worse than blue at step 1: 5xx error rate: green "),
        "{cause}"
    );
    assert!(cause.contains("against blue"), "{cause}");
    let timeline = d["timeline"].as_array().unwrap();
    // No alarm ever fired: the judge alone caught it.
    assert!(
        timeline.iter().all(|e| e["cause"]["cause"] != "AlarmFired"),
        "{timeline:#?}"
    );
    let rolling_back = timeline
        .iter()
        .find(|e| e["state"] == "ROLLING_BACK")
        .expect("the rollback");
    let judgement = &rolling_back["judgement"];
    assert_eq!(judgement["verdict"], "Worse", "{rolling_back:#}");
    let compared = &judgement["comparisons"][0];
    let (green, blue) = (
        compared["greenBad"].as_f64().unwrap() / compared["greenRequests"].as_f64().unwrap(),
        compared["blueBad"].as_f64().unwrap() / compared["blueRequests"].as_f64().unwrap(),
    );
    assert!(green > blue, "green {green} against blue {blue}");
    assert!(
        compared["worseEvidence"].as_f64().unwrap() >= 100.0,
        "{compared}"
    );
    // The blast radius, read from the local CloudWatch at the end: at least what the judge
    // counted by its decision, with the judge's look as the first bad signal.
    let blast = &d["blastRadius"];
    assert!(
        blast["greenRequests"].as_f64().unwrap() >= compared["greenRequests"].as_f64().unwrap(),
        "{blast:#}"
    );
    assert!(blast["greenFailed"].as_f64().unwrap() > 0.0, "{blast:#}");
    assert_eq!(
        blast["signal"]["what"], "the judge found green worse than blue",
        "{blast:#}"
    );
    assert_eq!(blast["signal"]["at"], judgement["at"], "{blast:#}");
    assert!(blast["secondsToBlue"].as_f64().unwrap() >= 0.0, "{blast:#}");
    let (code, text, _) = guardrails(&flow, OPERATOR, &["show", "d-judged"]);
    assert_eq!(code, 0);
    assert!(text.contains("  blast radius: green served "), "{text}");
    assert!(
        text.contains("since the judge found green worse than blue at "),
        "{text}"
    );

    // Backtest: replayed under the analysis it ran with, the judge rolls back again, the same
    // way every time; under one that allows one false rollback in a million, it would not have
    // by then.
    let same = dir.path().join("d-judged.yaml");
    let same = same.to_str().unwrap();
    let backtest = |policy: &str| {
        let args = [
            "backtest", "d-judged", "--policy", policy, "--output", "json",
        ];
        let (code, out, err) = guardrails(&flow, OPERATOR, &args);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let replayed = backtest(same);
    assert_eq!(backtest(same), replayed, "deterministic");
    let decisions = replayed["decisions"].as_array().unwrap();
    assert_eq!(
        decisions.last().map(|d| d["would"].clone()),
        Some(Value::from("ROLL_BACK")),
        "{replayed:#}"
    );
    let (code, text, _) = guardrails(&flow, OPERATOR, &["backtest", "d-judged", "--policy", same]);
    assert_eq!(code, 0);
    assert!(
        text.contains("would have: rolled back at t+")
            && text.contains("it did:     ROLLED_BACK at t+"),
        "{text}"
    );
    eprintln!("$ guardrails backtest d-judged --policy d-judged.yaml\n{text}");
    let lenient = dir.path().join("lenient.yaml");
    // A judge that says nothing before a million green requests: the canary served far fewer,
    // so it would not have rolled back, whatever this run's noise made of green's rate (a
    // one-in-a-million false-rollback rate alone is no such guarantee: a run where green looked
    // 6.6 times worse reached that evidence within 331 requests).
    let lenient_policy = judged_policy(120, 0.5, "")
        .replace("MinimumGreenRequests: 200", "MinimumGreenRequests: 1000000");
    std::fs::write(&lenient, lenient_policy).unwrap();
    let replayed = backtest(lenient.to_str().unwrap());
    assert!(
        replayed["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["would"] != "ROLL_BACK"),
        "{replayed:#}"
    );

    // As good as blue: the bake ends early on the evidence, long before its 120 s.
    model(&flow.admin, "fraud-model-v4").await;
    let early = judged_policy(
        120,
        0.9,
        "    FalseRollbackRate: 0.05\n    Compare: [{ Metric: ErrorRate, MinimumDegradationPercent: 100 }]\n    EndBakesEarly: true\n",
    );
    behaves(&flow, "fraud-model-v1", 0.1);
    behaves(&flow, "fraud-model-v4", 0.1);
    let code = deploy(&flow, dir.path(), "d-good", "fraud-model-v4", &early).await;
    assert_eq!(code, 0, "succeeded");
    let d = shown(&flow, "d-good");
    let passed = d["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["previousState"] == "BAKING" && e["state"] == "SHIFTING")
        .expect("the bake's end");
    let text = passed["causeText"].as_str().unwrap();
    assert!(
        text.starts_with("bake after step 1 passed; the judge found green no worse: "),
        "{text}"
    );
    let bake_ms = passed["time"].as_i64().unwrap()
        - d["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["state"] == "BAKING")
            .unwrap()["time"]
            .as_i64()
            .unwrap();
    assert!(bake_ms < 120_000, "ended early: {bake_ms} ms");
}
