//! Backtest: a past deployment replayed under another `Guardrails.Analysis`, to say what that
//! judge would have decided, and when. Pure and deterministic: the counts are the ones kept with
//! the deployment (the judge's `samples`, or, for a deployment the judge did not watch, the
//! blast radius' per-period 5xx counts), the steps and bakes are the deployment's own, as its
//! audit trail has them, and the looks are at every period's end and at every bake's end.
//!
//! The replay follows the deployment's timeline: where the other judge would have acted
//! differently (rolled back, ended a bake early, held it), it says so at that moment; a
//! rollback ends the replay, anything else goes on along what really happened next.

use serde::{Deserialize, Serialize};

use crate::core::{Judgement, Sample, judge};
use crate::events::{PhaseKind, StateChange};
use crate::judge::Verdict;
use crate::policy::{Analysis, ComparedMetric, WhenInconclusive};
use crate::status::Shown;
use crate::units::Timestamp;

/// What the replayed judge would have done at one look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Would {
    /// Found green worse: roll back.
    RollBack,
    /// Found green no worse during the bake, with `EndBakesEarly`: end the bake now.
    PassEarly,
    /// At the bake's end, no worse: pass it.
    Pass,
    /// At the bake's end, inconclusive: what `WhenInconclusive` says.
    RollBackInconclusive,
    PassWithoutVerdict,
    Extend,
    Hold,
}

/// One decision of the replayed judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replayed {
    pub at: Timestamp,
    /// Seconds since the deployment started.
    pub elapsed_secs: i64,
    /// 1-based.
    pub step: usize,
    pub would: Would,
    pub judgement: Judgement,
}

/// The whole replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replay {
    pub deployment_id: String,
    /// The analysis replayed.
    pub analysis: Analysis,
    /// How many looks the replay made.
    pub looks: usize,
    /// Every decision, in order; a rollback is the last.
    pub decisions: Vec<Replayed>,
    /// What the replayed judge would have done in the end, in words.
    pub would_have: String,
    /// What the deployment did, in words.
    pub it_did: String,
}

/// Why a deployment cannot be replayed under an analysis.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BacktestError(String);

/// The kept counts of `metric`, and their period.
fn kept<'a>(shown: &'a Shown, metric: &ComparedMetric) -> Option<(&'a [Sample], u32)> {
    if let Some(analysis) = &shown.plan.analysis
        && let Some(i) = analysis.compare.iter().position(|c| c.metric == *metric)
    {
        let samples = shown.samples.get(i)?;
        return Some((samples, analysis.period_in_seconds));
    }
    let blast = shown.blast_radius.as_ref()?;
    (*metric == ComparedMetric::ErrorRate { include_4xx: false } && !blast.samples.is_empty())
        .then_some((blast.samples.as_slice(), blast.period_secs))
}

/// `samples` summed into periods of `period_secs`, oldest first.
fn regrouped(samples: &[Sample], period_secs: u32) -> Vec<Sample> {
    let period_ms = i64::from(period_secs.max(1)) * 1_000;
    let mut out: Vec<Sample> = Vec::new();
    for s in samples {
        let at = Timestamp::from_epoch_ms(s.at.epoch_ms().div_euclid(period_ms) * period_ms);
        match out.last_mut() {
            Some(last) if last.at == at => {
                let c = &mut last.counts;
                c.green_requests += s.counts.green_requests;
                c.green_bad += s.counts.green_bad;
                c.blue_requests += s.counts.blue_requests;
                c.blue_bad += s.counts.blue_bad;
            }
            _ => out.push(Sample {
                at,
                counts: s.counts,
            }),
        }
    }
    out
}

/// Each comparison's counts, in `analysis`' periods.
fn series(shown: &Shown, analysis: &Analysis) -> Result<Vec<Vec<Sample>>, BacktestError> {
    let id = &shown.plan.deployment_id;
    let mut out = Vec::new();
    for comparison in &analysis.compare {
        let words = comparison.metric.words();
        let Some((samples, period)) = kept(shown, &comparison.metric) else {
            let had = shown.plan.analysis.as_ref().map_or_else(
                || "the 5xx error rate, counted at its end".to_owned(),
                |a| {
                    a.compare
                        .iter()
                        .map(|c| c.metric.words())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            );
            let had = if shown.plan.analysis.is_none() && shown.blast_radius.is_none() {
                "nothing (it ended before its counts were kept)".to_owned()
            } else {
                had
            };
            return Err(BacktestError(format!(
                "deployment {id} kept no counts of the {words}: it kept {had}"
            )));
        };
        if analysis.period_in_seconds < period || !analysis.period_in_seconds.is_multiple_of(period)
        {
            return Err(BacktestError(format!(
                "Guardrails.Analysis.PeriodInSeconds: deployment {id} kept its counts in {period} s \
                 periods; replay in {period} s or a multiple of it (not {} s)",
                analysis.period_in_seconds
            )));
        }
        out.push(regrouped(samples, analysis.period_in_seconds));
    }
    Ok(out)
}

/// Where the deployment was at `t`, as the judge sees it: the judged step, when its bake
/// began, and whether it is baking; `None` when nothing is judged then.
fn judged_at(timeline: &[StateChange], shown: &Shown, t: i64) -> Option<(usize, Timestamp, bool)> {
    let (i, last) = timeline.iter().enumerate().rfind(|(_, e)| e.time <= t)?;
    let step = last.step?.checked_sub(1)?;
    let shares_with_blue =
        |s: usize| (shown.plan.steps.get(s)).is_some_and(|s| s.green_share.basis_points() < 10_000);
    // The bake of `step` that began last, by `i`.
    let bake_from = |i: usize| {
        timeline[..=i]
            .iter()
            .rfind(|e| e.state == PhaseKind::Baking && e.step == last.step)
            .map(|e| Timestamp::from_epoch_ms(e.time))
    };
    match last.state {
        PhaseKind::Baking if shares_with_blue(step) => Some((step, bake_from(i)?, true)),
        PhaseKind::HeldInconclusive if shares_with_blue(step) => Some((step, bake_from(i)?, false)),
        // While shifting to a step, green serves the previous one's share.
        PhaseKind::Shifting | PhaseKind::AwaitingApproval => shares_with_blue(step.checked_sub(1)?)
            .then(|| (step, Timestamp::from_epoch_ms(t), false)),
        _ => None,
    }
}

/// The counts complete by `t`: periods that ended by then.
fn complete_by(series: &[Vec<Sample>], period_secs: u32, t: i64) -> Vec<Vec<Sample>> {
    let period_ms = i64::from(period_secs) * 1_000;
    series
        .iter()
        .map(|s| {
            s.iter()
                .filter(|x| x.at.epoch_ms() + period_ms <= t)
                .copied()
                .collect()
        })
        .collect()
}

/// `shown` replayed under `analysis`.
pub fn replay(shown: &Shown, analysis: &Analysis) -> Result<Replay, BacktestError> {
    let series = series(shown, analysis)?;
    let timeline = &shown.timeline;
    let started = shown.summary.started_at;
    let period_ms = i64::from(analysis.period_in_seconds) * 1_000;
    // Looks: at every period's end, and at every bake's end: as planned, or when the
    // deployment left the bake sooner (not for a rollback: then nothing more is judged).
    let mut looks: Vec<(i64, Option<usize>)> = series
        .iter()
        .flatten()
        .map(|s| (s.at.epoch_ms() + period_ms, None))
        .collect();
    for (i, e) in timeline.iter().enumerate() {
        if e.state != PhaseKind::Baking || e.previous_state == PhaseKind::Baking {
            continue;
        }
        let Some(left) = timeline[i + 1..]
            .iter()
            .find(|n| n.state != PhaseKind::Baking)
        else {
            continue;
        };
        let planned = e
            .step
            .and_then(|s| shown.plan.steps.get(s.checked_sub(1)?))
            .map_or(left.time, |s| e.time + i64::from(s.bake_secs) * 1_000);
        if left.state != PhaseKind::RollingBack || planned < left.time {
            looks.push((planned.min(left.time), e.step));
        }
    }
    looks.sort_unstable();
    looks.dedup();
    let mut decisions: Vec<Replayed> = Vec::new();
    // Steps whose bake passed, and steps extended (a verdict arriving then passes the bake).
    let mut passed: Vec<usize> = Vec::new();
    let mut extended: Vec<usize> = Vec::new();
    for &(t, bake_end) in &looks {
        // A bake's end is judged as the bake it ends; any other look as where the deployment was.
        let at = match bake_end {
            Some(step) => timeline
                .iter()
                .rfind(|e| e.time < t && e.state == PhaseKind::Baking && e.step == Some(step))
                .and_then(|e| {
                    let s = step.checked_sub(1)?;
                    let shares = shown.plan.steps.get(s)?.green_share.basis_points() < 10_000;
                    shares.then(|| (s, Timestamp::from_epoch_ms(e.time), true))
                }),
            None => judged_at(timeline, shown, t),
        };
        let Some((step, bake_from, baking)) = at else {
            continue;
        };
        let counts = complete_by(&series, analysis.period_in_seconds, t);
        let judgement = judge(
            analysis,
            &counts,
            step,
            bake_from,
            Timestamp::from_epoch_ms(t),
        );
        let at_end = bake_end.is_some();
        let would = match judgement.verdict {
            Verdict::Worse => Some(Would::RollBack),
            _ if passed.contains(&step) => None,
            Verdict::NoWorse if at_end || extended.contains(&step) => Some(Would::Pass),
            Verdict::NoWorse if baking && analysis.end_bakes_early => Some(Would::PassEarly),
            Verdict::Inconclusive if at_end => Some(match analysis.when_inconclusive {
                WhenInconclusive::Extend => Would::Extend,
                WhenInconclusive::HoldForApproval => Would::Hold,
                WhenInconclusive::RollBack => Would::RollBackInconclusive,
                WhenInconclusive::Pass => Would::PassWithoutVerdict,
            }),
            _ => None,
        };
        match would {
            Some(Would::Pass | Would::PassEarly | Would::PassWithoutVerdict) => passed.push(step),
            Some(Would::Extend) => extended.push(step),
            _ => {}
        }
        if let Some(would) = would {
            let ends = matches!(would, Would::RollBack | Would::RollBackInconclusive);
            decisions.push(Replayed {
                at: Timestamp::from_epoch_ms(t),
                elapsed_secs: (t - started) / 1_000,
                step: step + 1,
                would,
                judgement,
            });
            if ends {
                break;
            }
        }
    }
    let would_have = match decisions.last() {
        Some(d) if matches!(d.would, Would::RollBack | Would::RollBackInconclusive) => format!(
            "rolled back at t+{}s (step {}): {}",
            d.elapsed_secs,
            d.step,
            d.judgement.summary()
        ),
        _ if decisions.iter().any(|d| d.would == Would::Hold) => {
            "held a bake for approval, and rolled back nothing".to_owned()
        }
        _ if decisions.is_empty() => {
            "decided nothing: no look had a judged step with counts".to_owned()
        }
        _ => "rolled back nothing".to_owned(),
    };
    let it_did = match timeline.last() {
        Some(last) => format!(
            "{} at t+{}s: {}",
            crate::units::wire_name(&last.state).unwrap_or_default(),
            (last.time - started) / 1_000,
            shown.summary.cause
        ),
        None => "nothing recorded".to_owned(),
    };
    Ok(Replay {
        deployment_id: shown.plan.deployment_id.clone(),
        analysis: analysis.clone(),
        looks: looks.len(),
        decisions,
        would_have,
        it_did,
    })
}

impl Would {
    /// In words.
    pub fn words(self) -> &'static str {
        match self {
            Would::RollBack => "roll back: green is worse",
            Would::PassEarly => "end the bake early: green is no worse",
            Would::Pass => "pass the bake: green is no worse",
            Would::RollBackInconclusive => "roll back: the bake ended inconclusive",
            Would::PassWithoutVerdict => "pass the bake without a verdict",
            Would::Extend => "extend the bake: inconclusive",
            Would::Hold => "hold for approval: inconclusive",
        }
    }
}

impl Replay {
    /// The replay as a person reads it.
    pub fn render(&self) -> String {
        let mut out = format!(
            "backtest of {} under {} comparison(s), false-rollback rate {}, per {} s: {} looks\n",
            self.deployment_id,
            self.analysis.compare.len(),
            self.analysis.false_rollback_rate,
            self.analysis.period_in_seconds,
            self.looks
        );
        for d in &self.decisions {
            out.push_str(&format!(
                "t+{:>5}s  step {}  would {}: {}\n",
                d.elapsed_secs,
                d.step,
                d.would.words(),
                d.judgement.summary()
            ));
        }
        out.push_str(&format!("would have: {}\n", self.would_have));
        out.push_str(&format!("it did:     {}\n", self.it_did));
        out
    }
}
