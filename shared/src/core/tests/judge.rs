//! The judge in the rollout: GIVEN a canary whose policy asks for the judge and the counts the
//! driver read, WHEN deciding during the bake, THEN a worse green rolls back with its numbers,
//! a no-worse green passes (early if asked), and an inconclusive bake does what the policy
//! says: extend, hold for a person, roll back, or pass and say so.

use super::*;
use crate::judge::{Period, Verdict};

/// One-minute periods from T0; the canary's 10% step bakes from `at(0)` to `at(300)`.
fn minutes(n: i64, green: (f64, f64), blue: (f64, f64)) -> Vec<Sample> {
    (0..n)
        .map(|m| Sample {
            at: Timestamp::from_epoch_ms(T0.epoch_ms() + m * 60_000),
            counts: Period {
                green_requests: green.0,
                green_bad: green.1,
                blue_requests: blue.0,
                blue_bad: blue.1,
            },
        })
        .collect()
}

fn judged(analysis: &str) -> Deployment {
    let plan = plan_with(&format!("  Analysis:\n{analysis}"));
    let mut d = deployment_of(
        plan,
        Phase::Baking {
            step: 0,
            until: at(300),
        },
    );
    d.judged_since = Some(T0);
    d
}

fn look(samples: Vec<Sample>) -> Observation {
    let mut obs = on_blue_green(10.0, 1);
    obs.judged = Some(vec![samples]);
    obs
}

const DEFAULTS: &str = "    MinimumGreenRequests: 500\n";

#[test]
fn a_green_with_three_times_blues_errors_is_rolled_back_with_its_numbers() {
    // 1% errors on blue, 3% on green: under any alarm at 5%.
    let d = judged(DEFAULTS).decide(
        &look(minutes(4, (600.0, 18.0), (5_400.0, 54.0))),
        None,
        at(240),
    );
    let Phase::RollingBack { cause, .. } = &d.deployment.phase else {
        panic!("{:?}", d.deployment.phase);
    };
    let Cause::GreenWorse { step: 0, summary } = cause else {
        panic!("{cause:?}");
    };
    assert!(
        summary.starts_with(
            "5xx error rate: green 3.00% of 2,400 requests against blue 1.00% of 21,600; worse"
        ),
        "{summary}"
    );
    let judgement = d.deployment.judgement.as_ref().unwrap();
    assert_eq!(judgement.verdict, Verdict::Worse);
    // The counts are kept with the deployment, for a replay.
    assert_eq!(d.deployment.samples[0].len(), 4);
    assert_eq!(
        d.transitions[0].cause.to_string(),
        format!("the judge found green worse than blue at step 1: {summary}")
    );
}

#[test]
fn a_green_as_good_as_blue_passes_at_the_end_of_the_bake_or_early_if_asked() {
    let good = || minutes(4, (6_000.0, 60.0), (54_000.0, 540.0));
    // Before the bake's end it waits, even with the evidence in.
    let d = judged(DEFAULTS).decide(&look(good()), None, at(240));
    assert!(matches!(d.deployment.phase, Phase::Baking { .. }));
    assert_eq!(
        d.deployment.judgement.as_ref().unwrap().verdict,
        Verdict::NoWorse
    );
    let d = judged(DEFAULTS).decide(
        &look(minutes(5, (6_000.0, 60.0), (54_000.0, 540.0))),
        None,
        at(300),
    );
    assert_eq!(d.deployment.phase, Phase::Shifting { step: 1 });
    assert!(matches!(
        d.transitions[0].cause,
        Cause::JudgedNoWorse { step: 0, .. }
    ));
    // EndBakesEarly: as soon as the judge says no worse.
    let early = format!("{DEFAULTS}    EndBakesEarly: true\n");
    let d = judged(&early).decide(&look(good()), None, at(240));
    assert_eq!(d.deployment.phase, Phase::Shifting { step: 1 });
}

#[test]
fn too_little_green_traffic_never_passes_blind() {
    // A 10% canary at night: 6 green requests a minute, none bad.
    let night = || minutes(5, (6.0, 0.0), (54.0, 0.0));
    let rollback = format!("{DEFAULTS}    WhenInconclusive: RollBack\n");
    let d = judged(&rollback).decide(&look(night()), None, at(300));
    let Phase::RollingBack {
        cause: Cause::Inconclusive { step: 0, summary },
        ..
    } = &d.deployment.phase
    else {
        panic!("{:?}", d.deployment.phase);
    };
    assert!(
        summary.ends_with("30 of the 500 green requests this step needs"),
        "{summary}"
    );

    let pass = format!("{DEFAULTS}    WhenInconclusive: Pass\n");
    let d = judged(&pass).decide(&look(night()), None, at(300));
    assert_eq!(d.deployment.phase, Phase::Shifting { step: 1 });
    assert!(
        d.transitions[0]
            .cause
            .to_string()
            .starts_with("bake after step 1 passed without a verdict (WhenInconclusive: Pass)"),
        "{}",
        d.transitions[0].cause
    );
}

#[test]
fn an_inconclusive_bake_is_extended_then_held_until_a_person_or_the_evidence_decides() {
    let analysis = format!("{DEFAULTS}    ExtendUpToSeconds: 120\n");
    let night = |n| minutes(n, (6.0, 0.0), (54.0, 0.0));
    // At the bake's end: extended, looking again within the extension.
    let d = judged(&analysis).decide(&look(night(5)), None, at(300));
    assert!(matches!(d.deployment.phase, Phase::Baking { .. }));
    assert_eq!(d.wake_at, Some(at(330)));
    // At the extension's end: held.
    let d = judged(&analysis).decide(&look(night(7)), None, at(420));
    assert_eq!(
        d.deployment.phase,
        Phase::HeldInconclusive {
            step: 0,
            bake_from: T0
        }
    );
    let held = d.deployment;
    // Still inconclusive: it waits.
    let d = held.decide(&look(night(8)), None, at(480));
    assert!(matches!(d.deployment.phase, Phase::HeldInconclusive { .. }));
    // A person approves: the rollout goes on, and the record says who.
    let approve = Command::Approve {
        by: "arn:aws:iam::123456789012:user/ana".to_owned(),
    };
    let d = held.decide(&look(night(8)), Some(&approve), at(480));
    assert_eq!(d.deployment.phase, Phase::Shifting { step: 1 });
    assert_eq!(
        d.transitions[0].cause,
        Cause::Approved {
            by: "arn:aws:iam::123456789012:user/ana".to_owned()
        }
    );
    // Or traffic comes and the judge decides.
    let mut busy = night(8);
    busy.extend(
        minutes(10, (6_000.0, 60.0), (54_000.0, 540.0))
            .into_iter()
            .map(|mut s| {
                s.at = s.at.plus_secs(480);
                s
            }),
    );
    let d = held.decide(&look(busy), None, at(1_080));
    assert_eq!(d.deployment.phase, Phase::Shifting { step: 1 });
    // An abort while held rolls back.
    let abort = Command::Abort {
        by: "ana".to_owned(),
        reason: "no traffic tonight".to_owned(),
    };
    let d = held.decide(&look(night(8)), Some(&abort), at(480));
    assert!(matches!(d.deployment.phase, Phase::RollingBack { .. }));
}

#[test]
fn a_step_at_full_share_is_not_judged_and_counts_not_read_are_no_verdict() {
    let d = judged(DEFAULTS);
    assert!(d.judges_step(0));
    // The canary's second step is 100%: blue serves nothing to compare with.
    assert!(!d.judges_step(1));
    // Without counts (not read at this look) the bake's end cannot pass on the judge.
    let rollback = format!("{DEFAULTS}    WhenInconclusive: RollBack\n");
    let d = judged(&rollback).decide(&on_blue_green(10.0, 1), None, at(300));
    let Phase::RollingBack {
        cause: Cause::Inconclusive { summary, .. },
        ..
    } = &d.deployment.phase
    else {
        panic!("{:?}", d.deployment.phase);
    };
    assert_eq!(summary, "no counts were read");
    // The driver reads from the period green first served in up to the current one.
    let d = judged(DEFAULTS);
    assert_eq!(
        d.judging_window(at(250)),
        Some((
            Timestamp::from_epoch_ms(T0.epoch_ms() / 60_000 * 60_000),
            Timestamp::from_epoch_ms(at(250).epoch_ms() / 60_000 * 60_000),
            60
        ))
    );
    let off = deployment(Phase::Baking {
        step: 0,
        until: at(300),
    });
    assert_eq!(off.judging_window(at(250)), None);
}
