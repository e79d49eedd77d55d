//! The blast radius of a deployment: how many requests green served and how many of them
//! failed, over the whole deployment and since the first bad signal, and how many seconds
//! passed from that signal to every request being back on blue.
//!
//! The first bad signal is the earliest sign that green is bad which Guardrails acted on: a
//! watched alarm going into ALARM (at CloudWatch's `StateTransitionedTimestamp`, not when
//! Guardrails looked), or the judge finding green worse (at that look). The counts are read
//! once, when the deployment ends, from CloudWatch's per-variant `Invocations` and
//! `Invocation5XXErrors` (per fleet, with `EndpointConfigName`, under the native engine); "since
//! the signal" counts from the start of the period it fell in, so it is an upper bound by at
//! most one period. Under the variant engine, once removing blue began the new model is all
//! that serves under blue's variant name (the final fleet), so those requests count as green's
//! until a rollback puts blue back.

use serde::{Deserialize, Serialize};

use super::{Deployment, Sample};
use crate::policy::Engine;
use crate::units::{Timestamp, count};

/// The most periods the end's read spans; a longer deployment is read in longer periods (the
/// record is one DynamoDB item, and the counts are kept with it when the judge kept none).
pub const MAX_BLAST_PERIODS: i64 = 1_000;

/// The first bad signal: when, and what it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signal {
    pub at: Timestamp,
    /// `alarm fraud-5xx went into ALARM`, `the judge found green worse than blue`.
    pub what: String,
}

/// What green served and what it cost, as the deployment's record keeps it once it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlastRadius {
    /// Green's requests and 5xx responses over the whole deployment.
    pub green_requests: f64,
    pub green_failed: f64,
    /// Blue's over the same periods, for its rate beside green's.
    pub blue_requests: f64,
    pub blue_failed: f64,
    /// The first bad signal, if there was one.
    pub signal: Option<Signal>,
    /// Green's requests and 5xx responses from the period the signal fell in.
    pub since_signal_requests: Option<f64>,
    pub since_signal_failed: Option<f64>,
    /// Seconds from the first bad signal (or, with none, from the rollback's decision) to the
    /// first look that saw every request back on blue.
    pub seconds_to_blue: Option<f64>,
    /// The periods the counts were read in.
    pub period_secs: u32,
    /// Why the counts could not be read, if they could not (the rest still stands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<String>,
    /// The per-period counts (green against blue, 5xx), kept when the judge kept none, so that
    /// a backtest can replay an analysis on a deployment that had none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<Sample>,
}

fn rate(bad: f64, requests: f64) -> String {
    if requests > 0.0 {
        format!("{:.2}%", bad / requests * 100.0)
    } else {
        "-".to_owned()
    }
}

impl BlastRadius {
    /// `green served 1,286 requests, 76 failed (5.91%; blue 1.89%)`.
    pub fn served(&self) -> String {
        if let Some(why) = &self.unread {
            return format!("not counted: {why}");
        }
        if self.green_requests <= 0.0 {
            return "green served no request CloudWatch counted".to_owned();
        }
        format!(
            "green served {} requests, {} failed ({}; blue {})",
            count(self.green_requests),
            count(self.green_failed),
            rate(self.green_failed, self.green_requests),
            rate(self.blue_failed, self.blue_requests),
        )
    }

    /// `since alarm fraud-5xx went into ALARM at 08:10:30Z: 120 requests, 9 failed; every request
    /// back on blue 14.2 s after it`; `None` without a signal or a rollback.
    pub fn since_signal(&self) -> Option<String> {
        let mut text = match (&self.signal, self.since_signal_requests) {
            (Some(signal), Some(requests)) => format!(
                "since {} at {}: {} requests, {} failed",
                signal.what,
                signal.at.utc(),
                count(requests),
                count(self.since_signal_failed.unwrap_or(0.0))
            ),
            (Some(signal), None) => format!("since {} at {}", signal.what, signal.at.utc()),
            (None, _) => String::new(),
        };
        if let Some(secs) = self.seconds_to_blue {
            let from = if self.signal.is_some() {
                "it"
            } else {
                "the rollback's decision"
            };
            if !text.is_empty() {
                text.push_str("; ");
            }
            text.push_str(&format!(
                "every request back on blue {secs:.1} s after {from}"
            ));
        }
        (!text.is_empty()).then_some(text)
    }
}

impl Deployment {
    /// Records the first bad signal; a later one changes nothing.
    pub(super) fn signal(&mut self, at: Timestamp, what: String) {
        let earliest = self.judged_since.unwrap_or(self.started_at);
        self.first_bad_signal.get_or_insert(Signal {
            at: at.max(earliest),
            what,
        });
    }

    /// When green first could serve: the judge's start under the variant engine, the start
    /// under the native engine (SageMaker moves traffic on its own).
    fn served_since(&self) -> Option<Timestamp> {
        match self.plan.engine {
            Engine::Variant => self.judged_since,
            Engine::Native => Some(self.started_at),
        }
    }

    /// What to read for the blast radius at `now`: from the period green first served in to the
    /// end of the current one, and the period (the judge's when it is finer than a minute and
    /// the span fits, else a minute or more); `None` when green never served.
    pub fn blast_window(&self, now: Timestamp) -> Option<(Timestamp, Timestamp, u32)> {
        let since = self.served_since()?;
        let span = (now.epoch_ms() - since.epoch_ms()).max(1_000);
        let fine = self
            .plan
            .analysis
            .as_ref()
            .map_or(60, |a| a.period_in_seconds.clamp(1, 60));
        let period_ms = if span / (i64::from(fine) * 1_000) < MAX_BLAST_PERIODS {
            i64::from(fine) * 1_000
        } else {
            let minutes = (span / 60_000).div_euclid(MAX_BLAST_PERIODS) + 1;
            minutes * 60_000
        };
        let floor = since.epoch_ms().div_euclid(period_ms) * period_ms;
        let ceil = (now.epoch_ms() + period_ms - 1).div_euclid(period_ms) * period_ms;
        let period = u32::try_from(period_ms / 1_000).unwrap_or(u32::MAX);
        Some((
            Timestamp::from_epoch_ms(floor),
            Timestamp::from_epoch_ms(ceil.max(floor + period_ms)),
            period,
        ))
    }

    /// The counts with the new model's requests under blue's variant name counted as green's:
    /// from the period removing blue began in (green served every request at the last step, so
    /// blue's name served nothing before) until every request was back on blue, or the end.
    /// An upper bound by at most a period at each end, as "since the signal" is.
    fn new_model_under_blues_name(&self, mut samples: Vec<Sample>, period_ms: i64) -> Vec<Sample> {
        let Some(cutover) = self
            .cutover_at
            .filter(|_| self.plan.engine == Engine::Variant)
        else {
            return samples;
        };
        let from = cutover.epoch_ms().div_euclid(period_ms) * period_ms;
        let until = self
            .traffic_restored_at
            .filter(|restored| *restored >= cutover)
            .map_or(i64::MAX, Timestamp::epoch_ms);
        for s in samples
            .iter_mut()
            .filter(|s| s.at.epoch_ms() >= from && s.at.epoch_ms() < until)
        {
            s.counts.green_requests += s.counts.blue_requests;
            s.counts.green_bad += s.counts.blue_bad;
            s.counts.blue_requests = 0.0;
            s.counts.blue_bad = 0.0;
        }
        samples
    }

    /// The blast radius from what the end's read found (`Err`: why it could not be read), in
    /// `period_secs` periods; `None` read means green never served.
    pub fn blast_radius(
        &self,
        read: Option<Result<Vec<Sample>, String>>,
        period_secs: u32,
    ) -> BlastRadius {
        let signal = self.first_bad_signal.clone();
        let from = signal.as_ref().map(|s| s.at).or(self.rollback_started_at);
        let seconds_to_blue = match (from, self.traffic_restored_at) {
            (Some(from), Some(restored)) => {
                Some((restored.epoch_ms() - from.epoch_ms()).max(0) as f64 / 1_000.0)
            }
            _ => None,
        };
        let mut blast = BlastRadius {
            green_requests: 0.0,
            green_failed: 0.0,
            blue_requests: 0.0,
            blue_failed: 0.0,
            signal,
            since_signal_requests: None,
            since_signal_failed: None,
            seconds_to_blue,
            period_secs,
            unread: None,
            samples: Vec::new(),
        };
        let samples = match read {
            None => Vec::new(),
            Some(Ok(samples)) => samples,
            Some(Err(why)) => {
                blast.unread = Some(why);
                return blast;
            }
        };
        let period_ms = i64::from(period_secs) * 1_000;
        let samples = self.new_model_under_blues_name(samples, period_ms);
        for s in &samples {
            blast.green_requests += s.counts.green_requests;
            blast.green_failed += s.counts.green_bad;
            blast.blue_requests += s.counts.blue_requests;
            blast.blue_failed += s.counts.blue_bad;
        }
        if let Some(signal) = &blast.signal {
            let after = samples
                .iter()
                .filter(|s| s.at.epoch_ms() + period_ms > signal.at.epoch_ms());
            let (requests, failed) = after.fold((0.0, 0.0), |(n, b), s| {
                (n + s.counts.green_requests, b + s.counts.green_bad)
            });
            blast.since_signal_requests = Some(requests);
            blast.since_signal_failed = Some(failed);
        }
        if self.plan.analysis.is_none() {
            blast.samples = samples;
        }
        blast
    }
}
