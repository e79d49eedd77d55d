//! Reads `Guardrails.Analysis`: what the judge compares between green and blue, the smallest
//! degradation worth acting on for each, the false-rollback rate allowed per deployment, the
//! green requests needed before any verdict, and what an inconclusive bake does.

use serde_json::Value;

use super::reader::{Obj, Problems, boolean, entries, join, number, one_of, show, string};
use super::{Analysis, ComparedMetric, Comparison, NAME_MAX_CHARS, WhenInconclusive};

/// At most this many comparisons (each takes a share of the false-rollback rate).
pub const MAX_COMPARISONS: usize = 5;
/// The false-rollback rate allowed: above 0 and at most 20% per deployment.
const MAX_FALSE_ROLLBACK_RATE: f64 = 0.2;
/// Latency percentiles the judge compares at: what CloudWatch's percentile statistics take
/// (`p0.0` to `p100`), from the median up.
const PERCENTILES: (f64, f64) = (50.0, 99.9);
/// How much worse green must be to matter: above 0 and at most 10 times blue (1,000%).
const MAX_DEGRADATION_PERCENT: f64 = 1_000.0;
/// As SageMaker bounds its own bakes.
const MAX_EXTEND_SECS: u32 = 3_600;
const MAX_MIN_GREEN_REQUESTS: u32 = 10_000_000;

fn in_range(
    value: &Value,
    path: &str,
    (low, high): (f64, f64),
    low_inclusive: bool,
    unit: &str,
    problems: &mut Problems,
) -> Option<f64> {
    let n = number(value, path, problems)?;
    let above = if low_inclusive { n >= low } else { n > low };
    if above && n <= high {
        Some(n)
    } else {
        let from = if low_inclusive { "from" } else { "more than" };
        problems.add(
            path,
            format!(
                "{} is out of range; allowed: {from} {low} to {high}{unit}",
                show(value)
            ),
        );
        None
    }
}

/// The periods GetMetricData takes: 1, 5, 10, 30 or a multiple of 60 seconds (API reference,
/// `MetricStat.Period`), here up to an hour.
fn period(value: &Value, path: &str, problems: &mut Problems) -> Option<u32> {
    let secs = super::reader::whole_number(value, path, 1, 3_600, "seconds", problems)?;
    if matches!(secs, 1 | 5 | 10 | 30) || secs % 60 == 0 {
        Some(secs)
    } else {
        problems.add(
            path,
            format!(
                "{secs} is not a GetMetricData period; allowed: 1, 5, 10, 30 or a multiple of 60 \
                 seconds"
            ),
        );
        None
    }
}

fn comparison(value: &Value, path: &str, problems: &mut Problems) -> Option<Comparison> {
    let obj = Obj::new(
        value,
        path,
        &[
            "Metric",
            "Include4XX",
            "Percentile",
            "Namespace",
            "MetricName",
            "MinimumDegradationPercent",
        ],
        problems,
    )?;
    let (kind_value, kind_path) = obj.require("Metric", problems)?;
    let kind = one_of(
        kind_value,
        &kind_path,
        &["ErrorRate", "Latency", "Custom"],
        problems,
    );
    let only = |field: &str, kind_name: &str, problems: &mut Problems| {
        if let Some((_, p)) = obj.get(field) {
            problems.add(&p, format!("only {kind_name} comparison takes {field}"));
        }
    };
    let metric = match kind? {
        0 => {
            only("Percentile", "a Latency", problems);
            only("Namespace", "a Custom", problems);
            only("MetricName", "a Custom", problems);
            let include_4xx = match obj.get("Include4XX") {
                None => Some(false),
                Some((v, p)) => boolean(v, &p, problems),
            };
            include_4xx.map(|include_4xx| ComparedMetric::ErrorRate { include_4xx })
        }
        1 => {
            only("Include4XX", "an ErrorRate", problems);
            only("Namespace", "a Custom", problems);
            only("MetricName", "a Custom", problems);
            let percentile = match obj.get("Percentile") {
                None => Some(99.0),
                Some((v, p)) => in_range(v, &p, PERCENTILES, true, "", problems),
            };
            percentile.map(|percentile| ComparedMetric::Latency { percentile })
        }
        _ => {
            only("Include4XX", "an ErrorRate", problems);
            only("Percentile", "a Latency", problems);
            let name = |field: &str, problems: &mut Problems| {
                let (v, p) = obj.require(field, problems)?;
                string(v, &p, 1, NAME_MAX_CHARS, problems)
            };
            let namespace = name("Namespace", problems);
            let metric_name = name("MetricName", problems);
            Some(ComparedMetric::Custom {
                namespace: namespace?,
                metric_name: metric_name?,
            })
        }
    };
    let degradation = match obj.get("MinimumDegradationPercent") {
        None => Some(50.0),
        Some((v, p)) => in_range(
            v,
            &p,
            (0.0, MAX_DEGRADATION_PERCENT),
            false,
            " percent",
            problems,
        ),
    };
    obj.finish(problems);
    Some(Comparison {
        metric: metric?,
        minimum_degradation_percent: degradation?,
    })
}

pub(super) fn analysis(value: &Value, path: &str, problems: &mut Problems) -> Option<Analysis> {
    let obj = Obj::new(
        value,
        path,
        &[
            "Compare",
            "FalseRollbackRate",
            "MinimumGreenRequests",
            "WhenInconclusive",
            "ExtendUpToSeconds",
            "PeriodInSeconds",
            "EndBakesEarly",
        ],
        problems,
    )?;
    let defaults = Analysis::default();
    let compare = match obj.get("Compare") {
        None => Some(defaults.compare.clone()),
        Some((v, p)) => {
            let mut read = Vec::new();
            let mut complete = true;
            for (item, item_path) in entries(v, &p, 1, MAX_COMPARISONS, "comparisons", problems) {
                match comparison(item, &item_path, problems) {
                    Some(c) => {
                        if read.iter().any(|o: &Comparison| o.metric == c.metric) {
                            problems.add(
                                &join(&item_path, "Metric"),
                                "compares what another entry already compares",
                            );
                        }
                        read.push(c);
                    }
                    None => complete = false,
                }
            }
            complete.then_some(read)
        }
    };
    let rate = match obj.get("FalseRollbackRate") {
        None => Some(defaults.false_rollback_rate),
        Some((v, p)) => in_range(v, &p, (0.0, MAX_FALSE_ROLLBACK_RATE), false, "", problems),
    };
    let min_green = match obj.get("MinimumGreenRequests") {
        None => Some(defaults.minimum_green_requests),
        Some((v, p)) => {
            super::reader::whole_number(v, &p, 1, MAX_MIN_GREEN_REQUESTS, "requests", problems)
        }
    };
    let when = match obj.get("WhenInconclusive") {
        None => Some(defaults.when_inconclusive),
        Some((v, p)) => one_of(
            v,
            &p,
            &["Extend", "HoldForApproval", "RollBack", "Pass"],
            problems,
        )
        .map(|i| match i {
            0 => WhenInconclusive::Extend,
            1 => WhenInconclusive::HoldForApproval,
            2 => WhenInconclusive::RollBack,
            _ => WhenInconclusive::Pass,
        }),
    };
    let extend = match obj.get("ExtendUpToSeconds") {
        None => Some(defaults.extend_up_to_seconds),
        Some((v, p)) => super::reader::whole_number(v, &p, 0, MAX_EXTEND_SECS, "seconds", problems),
    };
    if when.is_some_and(|w| w != WhenInconclusive::Extend)
        && let Some((_, p)) = obj.get("ExtendUpToSeconds")
    {
        problems.add(&p, "only WhenInconclusive: Extend takes ExtendUpToSeconds");
    }
    let period = match obj.get("PeriodInSeconds") {
        None => Some(defaults.period_in_seconds),
        Some((v, p)) => period(v, &p, problems),
    };
    let early = match obj.get("EndBakesEarly") {
        None => Some(false),
        Some((v, p)) => boolean(v, &p, problems),
    };
    obj.finish(problems);
    Some(Analysis {
        period_in_seconds: period?,
        end_bakes_early: early?,
        compare: compare?,
        false_rollback_rate: rate?,
        minimum_green_requests: min_green?,
        when_inconclusive: when?,
        extend_up_to_seconds: extend?,
    })
}
