//! The judge during a rollout: at every look while green and blue serve side by side, each
//! comparison of the policy's `Guardrails.Analysis` is tested on the per-period counts the
//! driver read (`judge`'s anytime-valid tests), and the answers make one judgement.
//!
//! - **Worse** is tested over every period since green first served, with the deployment's
//!   false-rollback rate split equally across the comparisons (Bonferroni: `alpha / k` each), so
//!   that a green identical to blue is rolled back with probability at most the configured rate
//!   however many looks and comparisons there are.
//! - **No worse** is tested over the periods of the current step's bake alone, and only once the
//!   step has served the minimum of green requests: a bake never passes on another step's
//!   evidence or on no data.
//!
//! A step where blue serves nothing (green at 100%) has nothing to compare; it is not judged.

use serde::{Deserialize, Serialize};

use super::{Deployment, Phase};
use crate::judge::{self, Period, Verdict};
use crate::policy::Analysis;
use crate::units::Timestamp;
use crate::units::count;

/// One period's counts, stamped with the period's start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at: Timestamp,
    #[serde(flatten)]
    pub counts: Period,
}

/// What one comparison found at one look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Compared {
    /// What is compared, in words: `5xx error rate`.
    pub metric: String,
    pub verdict: Verdict,
    /// This comparison's share of the false-rollback rate.
    pub alpha: f64,
    /// The e-values against "no worse" and against "worse by the minimum degradation"; either
    /// reaching `1 / alpha` decides.
    pub worse_evidence: f64,
    pub no_worse_evidence: f64,
    /// Since green first served.
    pub green_requests: f64,
    pub green_bad: f64,
    pub blue_requests: f64,
    pub blue_bad: f64,
    /// Green requests in the current step's bake, against the minimum the policy asks.
    pub step_green_requests: f64,
    pub minimum_green_requests: f64,
}

/// The judge's answer at one look: every comparison, and what they make together (any worse
/// is worse; no worse needs every comparison to say so).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Judgement {
    pub at: Timestamp,
    /// The step (0-based) whose bake the no-worse test is about.
    pub step: usize,
    pub verdict: Verdict,
    pub comparisons: Vec<Compared>,
}

/// The judgement of `series` (per comparison, in the analysis' order) at `now`, for `step`
/// whose bake began at `bake_from`.
pub fn judge(
    analysis: &Analysis,
    series: &[Vec<Sample>],
    step: usize,
    bake_from: Timestamp,
    now: Timestamp,
) -> Judgement {
    let k = analysis.compare.len().max(1);
    let alpha = analysis.false_rollback_rate / k as f64;
    let threshold = 1.0 / alpha;
    let minimum = f64::from(analysis.minimum_green_requests);
    let period_ms = i64::from(analysis.period_in_seconds) * 1_000;
    // The period the bake began in counts for it: its counts are the step's share or less.
    let bake_period = bake_from.epoch_ms().div_euclid(period_ms.max(1)) * period_ms;
    let empty = Vec::new();
    let comparisons: Vec<Compared> = analysis
        .compare
        .iter()
        .enumerate()
        .map(|(i, comparison)| {
            let samples = series.get(i).unwrap_or(&empty);
            let degradation = comparison.minimum_degradation_percent / 100.0;
            let all: Vec<Period> = samples.iter().map(|s| s.counts).collect();
            let bake: Vec<Period> = samples
                .iter()
                .filter(|s| s.at.epoch_ms() >= bake_period)
                .map(|s| s.counts)
                .collect();
            let whole = judge::evidence(&all, degradation);
            let this_bake = judge::evidence(&bake, degradation);
            let verdict = if whole.green_requests >= minimum && whole.worse >= threshold {
                Verdict::Worse
            } else if this_bake.green_requests >= minimum && this_bake.no_worse >= threshold {
                Verdict::NoWorse
            } else {
                Verdict::Inconclusive
            };
            Compared {
                metric: comparison.metric.words(),
                verdict,
                alpha,
                worse_evidence: whole.worse,
                no_worse_evidence: this_bake.no_worse,
                green_requests: whole.green_requests,
                green_bad: whole.green_bad,
                blue_requests: whole.blue_requests,
                blue_bad: whole.blue_bad,
                step_green_requests: this_bake.green_requests,
                minimum_green_requests: minimum,
            }
        })
        .collect();
    let verdict = if comparisons.iter().any(|c| c.verdict == Verdict::Worse) {
        Verdict::Worse
    } else if !comparisons.is_empty() && comparisons.iter().all(|c| c.verdict == Verdict::NoWorse) {
        Verdict::NoWorse
    } else {
        Verdict::Inconclusive
    };
    Judgement {
        at: now,
        step,
        verdict,
        comparisons,
    }
}

fn percent(bad: f64, requests: f64) -> String {
    if requests > 0.0 {
        let p = bad / requests * 100.0;
        if p >= 10.0 {
            format!("{p:.1}%")
        } else {
            format!("{p:.2}%")
        }
    } else {
        "-".to_owned()
    }
}

fn evidence(e: f64) -> String {
    if e >= 1e6 {
        format!("{e:.1e}")
    } else if e >= 10.0 {
        format!("{e:.0}")
    } else {
        format!("{e:.2}")
    }
}

impl Compared {
    /// `5xx error rate: green 1.60% of 12,340 requests against blue 0.50% of 24,680; worse
    /// (evidence 142, 1/alpha = 100)`.
    pub fn summary(&self) -> String {
        let (what, e) = match self.verdict {
            Verdict::Worse => ("worse", self.worse_evidence),
            Verdict::NoWorse => ("no worse", self.no_worse_evidence),
            Verdict::Inconclusive => ("inconclusive", self.worse_evidence),
        };
        let mut text = format!(
            "{}: green {} of {} requests against blue {} of {}; {what} (evidence {}, decides at {})",
            self.metric,
            percent(self.green_bad, self.green_requests),
            count(self.green_requests),
            percent(self.blue_bad, self.blue_requests),
            count(self.blue_requests),
            evidence(e),
            evidence(1.0 / self.alpha),
        );
        if self.verdict == Verdict::Inconclusive
            && self.step_green_requests < self.minimum_green_requests
        {
            text.push_str(&format!(
                ", {} of the {} green requests this step needs",
                count(self.step_green_requests),
                count(self.minimum_green_requests)
            ));
        }
        text
    }
}

impl Judgement {
    /// Every comparison's summary, joined.
    pub fn summary(&self) -> String {
        if self.comparisons.is_empty() {
            return "nothing compared".to_owned();
        }
        self.comparisons
            .iter()
            .map(Compared::summary)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Deployment {
    /// Whether the judge compares during `step`: the policy asks for it and blue still serves.
    pub fn judges_step(&self, step: usize) -> bool {
        self.plan.analysis.is_some()
            && self
                .plan
                .steps
                .get(step)
                .is_some_and(|s| s.green_share.basis_points() < 10_000)
    }

    /// The step the judge looks at in this phase and when its bake began, while green may serve
    /// beside blue; `None` when nothing is judged now.
    fn judged_step(&self, now: Timestamp) -> Option<(usize, Timestamp)> {
        let (step, bake_from) = match &self.phase {
            Phase::Shifting { step } | Phase::AwaitingApproval { step } => (*step, now),
            Phase::Baking { step, until } => {
                let bake = self.plan.steps.get(*step).map_or(0, |s| s.bake_secs);
                (*step, until.minus_secs(bake))
            }
            Phase::HeldInconclusive { step, bake_from } => (*step, *bake_from),
            // SageMaker moves traffic on its own: the judge compares the fleets from the first
            // look that saw the new one serve, as one step.
            Phase::NativeDeploying {
                traffic_moved: true,
                ..
            } => (0, self.judged_since?),
            _ => return None,
        };
        // While shifting to a step, green serves the previous one's share.
        let serving = match self.phase {
            Phase::Shifting { .. } | Phase::AwaitingApproval { .. } => step.checked_sub(1)?,
            _ => step,
        };
        self.judges_step(serving).then_some((step, bake_from))
    }

    /// The complete periods to read for the judge at `now` (from the period green first served
    /// in, up to the start of the current period), with the period; `None` when nothing is
    /// judged now.
    pub fn judging_window(&self, now: Timestamp) -> Option<(Timestamp, Timestamp, u32)> {
        let analysis = self.plan.analysis.as_ref()?;
        let since = self.judged_since?;
        self.judged_step(now)?;
        let period_ms = i64::from(analysis.period_in_seconds.max(1)) * 1_000;
        let floor =
            |t: Timestamp| Timestamp::from_epoch_ms(t.epoch_ms().div_euclid(period_ms) * period_ms);
        let (from, to) = (floor(since), floor(now));
        (to > from).then_some((from, to, analysis.period_in_seconds))
    }

    /// The judge's look at what the driver read: the judgement is kept with the counts it was
    /// made on; its verdict, step and summary are returned.
    pub(super) fn look(
        &mut self,
        obs: &super::Observation,
        now: Timestamp,
    ) -> Option<(Verdict, usize, String)> {
        let series = obs.judged.as_ref()?;
        let judgement = self.judgement(series, now)?;
        series.clone_into(&mut self.samples);
        let found = (judgement.verdict, judgement.step, judgement.summary());
        self.judgement = Some(judgement);
        Some(found)
    }

    /// The judgement of what the driver read, when the judge looks now.
    pub(super) fn judgement(&self, series: &[Vec<Sample>], now: Timestamp) -> Option<Judgement> {
        let analysis = self.plan.analysis.as_ref()?;
        let (step, bake_from) = self.judged_step(now)?;
        Some(judge(analysis, series, step, bake_from, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{ComparedMetric, Comparison};

    fn sample(at_secs: i64, green: (f64, f64), blue: (f64, f64)) -> Sample {
        Sample {
            at: Timestamp::from_epoch_ms(at_secs * 1_000),
            counts: Period {
                green_requests: green.0,
                green_bad: green.1,
                blue_requests: blue.0,
                blue_bad: blue.1,
            },
        }
    }

    fn analysis(compare: usize) -> Analysis {
        let metrics = [
            ComparedMetric::ErrorRate { include_4xx: false },
            ComparedMetric::Latency { percentile: 99.0 },
        ];
        Analysis {
            compare: metrics
                .into_iter()
                .take(compare)
                .map(|metric| Comparison {
                    metric,
                    minimum_degradation_percent: 50.0,
                })
                .collect(),
            minimum_green_requests: 500,
            ..Analysis::default()
        }
    }

    #[test]
    fn three_times_blues_errors_is_worse_and_says_its_numbers() {
        // A 10% canary: green 3% errors, blue 1%, ten minutes.
        let series: Vec<Sample> = (0..10)
            .map(|m| sample(m * 60, (600.0, 18.0), (5_400.0, 54.0)))
            .collect();
        let at = Timestamp::from_epoch_ms(600_000);
        let j = judge(&analysis(1), &[series], 0, Timestamp::from_epoch_ms(0), at);
        assert_eq!(j.verdict, Verdict::Worse);
        let summary = j.summary();
        assert!(
            summary.starts_with(
                "5xx error rate: green 3.00% of 6,000 requests against blue 1.00% of 54,000; worse"
            ),
            "{summary}"
        );
        assert!(summary.contains("decides at 100)"), "{summary}");
    }

    #[test]
    fn each_comparison_gets_its_share_of_the_false_rollback_rate() {
        let j = judge(
            &analysis(2),
            &[Vec::new(), Vec::new()],
            0,
            Timestamp::from_epoch_ms(0),
            Timestamp::from_epoch_ms(0),
        );
        assert_eq!(j.comparisons.len(), 2);
        assert!(
            j.comparisons
                .iter()
                .all(|c| (c.alpha - 0.005).abs() < 1e-12)
        );
        assert_eq!(j.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn no_worse_counts_only_this_steps_bake_and_needs_its_minimum() {
        // Plenty of clean traffic before the bake; the bake itself has 300 green requests.
        let mut series: Vec<Sample> = (0..20)
            .map(|m| sample(m * 60, (6_000.0, 60.0), (6_000.0, 60.0)))
            .collect();
        series.push(sample(1_200, (300.0, 0.0), (300.0, 0.0)));
        let bake_from = Timestamp::from_epoch_ms(1_200_000 + 10_000);
        let now = Timestamp::from_epoch_ms(1_300_000);
        let j = judge(&analysis(1), &[series.clone()], 1, bake_from, now);
        assert_eq!(j.verdict, Verdict::Inconclusive);
        assert_eq!(j.comparisons[0].step_green_requests, 300.0);
        assert!(
            j.summary()
                .ends_with("300 of the 500 green requests this step needs"),
            "{}",
            j.summary()
        );
        // The same data, all within the bake: no worse.
        let j = judge(&analysis(1), &[series], 0, Timestamp::from_epoch_ms(0), now);
        assert_eq!(j.verdict, Verdict::NoWorse, "{}", j.summary());
    }
}
