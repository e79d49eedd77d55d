//! Backtest: GIVEN a deployment recorded by the driver (with the counts its judge read, or with
//! only the blast radius' counts), WHEN it is replayed under another analysis, THEN the replay
//! says what that judge would have decided and when, the same way every time, and refuses what
//! the record cannot answer.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use guardrails::backtest::{Would, replay};
use guardrails::core::Sample;
use guardrails::events::PhaseKind;
use guardrails::judge::Period;
use guardrails::policy::{Analysis, ComparedMetric, Comparison, WhenInconclusive};
use guardrails::ports::Store;
use guardrails::status::Shown;
use guardrails_tests::harness::Harness;
use guardrails_tests::world::World;
use guardrails_tests::{T0, example_policy, sample_plan};

const ENDPOINT: &str = "fraud-scorer";

fn error_rate() -> ComparedMetric {
    ComparedMetric::ErrorRate { include_4xx: false }
}

/// Green answering 6% with a 5xx against blue's 1%, 100 and 900 requests a minute.
fn worse_green() -> Vec<Sample> {
    (0..120)
        .map(|m| Sample {
            at: T0.plus_secs(m * 60),
            counts: Period {
                green_requests: 100.0,
                green_bad: 6.0,
                blue_requests: 900.0,
                blue_bad: 9.0,
            },
        })
        .collect()
}

fn analysis(minimum_green_requests: u32, when_inconclusive: WhenInconclusive) -> Analysis {
    Analysis {
        compare: vec![Comparison {
            metric: error_rate(),
            minimum_degradation_percent: 50.0,
        }],
        minimum_green_requests,
        when_inconclusive,
        ..Analysis::default()
    }
}

/// Runs a canary on the in-memory world whose metrics say `samples`, judged by `judged`, and
/// returns it as `show` answers.
async fn recorded(judged: Option<Analysis>, samples: Vec<Sample>) -> Shown {
    let world = World::serving(T0, "fraud-scorer-v1", "AllTraffic", "fraud-scorer-v1", 4)
        .with_endpoint_alarm("fraud-scorer-5xx");
    let h = Harness::new(world);
    h.metrics.set(error_rate(), samples);
    let mut plan = sample_plan(&example_policy("canary.yaml"), 4);
    plan.analysis = judged;
    h.driver.start(plan).await.unwrap();
    h.run_to_end(ENDPOINT).await.unwrap();
    let stored = h.memory.history(ENDPOINT).pop().unwrap();
    let audit = h.store.audit(ENDPOINT, "d1").await.unwrap();
    let shown = Shown::of(&stored, &audit, None);
    // Through JSON, as the command reads it.
    serde_json::from_value(serde_json::to_value(&shown).unwrap()).unwrap()
}

#[tokio::test]
async fn a_deployment_that_passed_blind_would_have_been_rolled_back_by_a_judge_that_looks_sooner() {
    // Recorded under a judge that needs more green requests than the canary could serve, and
    // passes an inconclusive bake: it passed, without a verdict.
    let lenient = analysis(1_000_000, WhenInconclusive::Pass);
    let shown = recorded(Some(lenient), worse_green()).await;
    assert_eq!(shown.summary.state, PhaseKind::Succeeded);
    assert!(!shown.samples.is_empty(), "the judge's counts are kept");

    let strict = analysis(200, WhenInconclusive::Pass);
    let first = replay(&shown, &strict).unwrap();
    let last = first.decisions.last().expect("a decision");
    assert_eq!(last.would, Would::RollBack, "{}", first.render());
    assert_eq!(last.step, 1);
    // Within step 1's 5-minute bake, once green has served 200 requests at 100 a minute.
    let time_of = |state: PhaseKind| {
        let e = shown.timeline.iter().find(|e| e.state == state).unwrap();
        (e.time - shown.summary.started_at) / 1_000
    };
    let (shifted, baking) = (time_of(PhaseKind::Shifting), time_of(PhaseKind::Baking));
    assert!(last.elapsed_secs >= shifted + 60, "{}", first.render());
    assert!(last.elapsed_secs <= baking + 300, "{}", first.render());
    assert!(
        first.would_have.starts_with("rolled back at t+"),
        "{}",
        first.would_have
    );
    assert!(
        first.it_did.starts_with("SUCCEEDED at t+"),
        "{}",
        first.it_did
    );
    assert!(
        first
            .render()
            .contains("would roll back: green is worse: 5xx error rate: green 6.00%"),
        "{}",
        first.render()
    );
    // The replay is deterministic.
    assert_eq!(replay(&shown, &strict).unwrap(), first);

    // The same analysis as recorded decides what the deployment did: passed without a verdict.
    let again = replay(&shown, &analysis(1_000_000, WhenInconclusive::Pass)).unwrap();
    assert!(
        again
            .decisions
            .iter()
            .all(|d| d.would == Would::PassWithoutVerdict),
        "{}",
        again.render()
    );
    assert_eq!(again.would_have, "rolled back nothing");
    // An inconclusive bake under another policy holds instead.
    let holding = replay(
        &shown,
        &analysis(1_000_000, WhenInconclusive::HoldForApproval),
    )
    .unwrap();
    assert_eq!(
        holding.decisions.first().map(|d| d.would),
        Some(Would::Hold)
    );
}

#[tokio::test]
async fn a_deployment_no_judge_watched_is_replayed_on_its_blast_radius_counts() {
    let shown = recorded(None, worse_green()).await;
    assert!(shown.samples.is_empty());
    let kept = &shown.blast_radius.as_ref().unwrap().samples;
    assert!(
        !kept.is_empty(),
        "the end's counts are kept without a judge"
    );
    let replayed = replay(&shown, &analysis(200, WhenInconclusive::Extend)).unwrap();
    assert_eq!(
        replayed.decisions.last().map(|d| d.would),
        Some(Would::RollBack),
        "{}",
        replayed.render()
    );
}

#[tokio::test]
async fn what_the_record_cannot_answer_is_refused_with_what_it_kept() {
    let shown = recorded(
        Some(analysis(1_000_000, WhenInconclusive::Pass)),
        worse_green(),
    )
    .await;
    let latency = Analysis {
        compare: vec![Comparison {
            metric: ComparedMetric::Latency { percentile: 99.0 },
            minimum_degradation_percent: 50.0,
        }],
        ..Analysis::default()
    };
    let e = replay(&shown, &latency).unwrap_err().to_string();
    assert_eq!(
        e,
        "deployment d1 kept no counts of the share of requests slower than blue's p99: it kept \
         5xx error rate"
    );
    let finer = Analysis {
        period_in_seconds: 30,
        ..analysis(200, WhenInconclusive::Pass)
    };
    let e = replay(&shown, &finer).unwrap_err().to_string();
    assert!(
        e.starts_with("Guardrails.Analysis.PeriodInSeconds: deployment d1 kept its counts in 60 s"),
        "{e}"
    );
    // Coarser periods are sums of the kept ones.
    let coarser = Analysis {
        period_in_seconds: 120,
        ..analysis(200, WhenInconclusive::Pass)
    };
    assert!(replay(&shown, &coarser).is_ok());
}
