//! `guardrails report DEPLOYMENT --html FILE`: what a deployment did, read from the running
//! Guardrails (`show`: the plan and the audit trail) and from CloudWatch (each variant's
//! requests, 5xx errors and latency with GetMetricData; each watched alarm's state changes with
//! DescribeAlarmHistory), drawn by `chart` as one self-contained HTML page.

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    AlarmType, Dimension, HistoryItemType, Metric, MetricDataQuery, MetricStat, ScanBy,
};
use guardrails::events::{PhaseKind, StateChange};
use guardrails::policy::Engine;
use guardrails::status::Shown;
use serde_json::json;

use crate::remote::Remote;

/// Which panel a series is drawn in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    /// Green's share of requests, percent.
    Share,
    /// 5xx errors over requests, percent.
    Errors,
    /// p99 `ModelLatency`, milliseconds.
    Latency,
}

/// Blue (the fleet serving before) or green (the new model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Blue,
    Green,
}

/// One line of the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Stable id, in the page as `data-series`: `green-share`, `blue-error-rate`, ...
    pub id: String,
    pub label: String,
    pub panel: Panel,
    pub side: Side,
    /// Drawn as steps (a share in effect until the next change) rather than a line.
    pub steps: bool,
    /// (epoch ms, value), oldest first.
    pub points: Vec<(i64, f64)>,
}

/// A time one watched alarm was in ALARM.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub alarm: String,
    pub from: i64,
    pub to: i64,
}

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct Report {
    pub shown: Shown,
    /// The time drawn, epoch ms.
    pub from: i64,
    pub to: i64,
    /// The metrics' period.
    pub period_secs: i32,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
}

/// Periods GetMetricData takes for high-resolution data (1, 5, 10, 30, 60 s) and multiples of
/// 60 beyond (API reference, `MetricStat.Period`).
const PERIODS: [i32; 11] = [1, 5, 10, 30, 60, 120, 300, 600, 900, 1_800, 3_600];
/// About how many periods the chart shows at most.
const MOST_POINTS: i64 = 240;

/// The period for drawing `[from, to)` read at `now`: the shortest giving at most
/// `MOST_POINTS` points that CloudWatch still keeps at that age. Data points with a period of
/// less than 60 s are available for 3 hours, 60 s for 15 days, 300 s for 63 days, 3,600 s for
/// 455 days (API reference, GetMetricStatistics and `MetricStat.Period`).
pub fn period_for(from: i64, to: i64, now: i64) -> i32 {
    let span_secs = ((to - from) / 1_000).max(1);
    let age_secs = (now - from) / 1_000;
    let floor = match age_secs {
        a if a > 63 * 86_400 => 3_600,
        a if a > 15 * 86_400 => 300,
        a if a > 3 * 3_600 => 60,
        _ => 1,
    };
    PERIODS
        .into_iter()
        .find(|p| *p >= floor && span_secs / i64::from(*p) <= MOST_POINTS)
        .unwrap_or(3_600)
}

/// The window drawn: from a little before the start to a little after the end (or `now`).
pub fn window(shown: &Shown, now: i64) -> (i64, i64) {
    let start = shown.summary.started_at;
    let end = shown.summary.ended_at.unwrap_or(now).max(start + 1_000);
    let margin = ((end - start) / 20).max(5_000);
    (start - margin, end + margin)
}

/// Green's share after each transition, as the plan and the observations give it: the step's
/// share while it shifts, bakes or waits, all of it once blue is going, none while it
/// provisions or rolls back. Native deployments' shares are SageMaker's: what was observed.
pub fn planned_share(timeline: &[StateChange], end: i64) -> Vec<(i64, f64)> {
    let mut points: Vec<(i64, f64)> = Vec::new();
    for e in timeline {
        let share = match e.state {
            PhaseKind::Shifting
            | PhaseKind::Baking
            | PhaseKind::AwaitingApproval
            | PhaseKind::HeldInconclusive => e.planned_green_percent.or(e.observed_green_percent),
            PhaseKind::RemovingBlue | PhaseKind::BakingFinalFleet | PhaseKind::Succeeded => {
                Some(100.0)
            }
            PhaseKind::Provisioning
            | PhaseKind::RollingBack
            | PhaseKind::RolledBack
            | PhaseKind::Failed => Some(0.0),
            // Before green's first request, or after the final shift: as observed.
            PhaseKind::NativeDeploying | PhaseKind::Hooking => e.observed_green_percent,
        };
        if let Some(share) = share {
            points.push((e.time, share));
        }
    }
    if let Some(&(_, last)) = points.last() {
        points.push((end, last));
    }
    points
}

/// The times each alarm was in ALARM within `[from, to)`, from its state changes (oldest
/// first, `(epoch ms, new state)`) and the state it was in before them.
pub fn bands(alarm: &str, changes: &[(i64, String)], from: i64, to: i64) -> Vec<Band> {
    let mut out = Vec::new();
    let mut since: Option<i64> = None;
    for (at, state) in changes {
        match (state.as_str(), since) {
            ("ALARM", None) => since = Some((*at).max(from)),
            ("ALARM", Some(_)) => {}
            (_, Some(start)) => {
                if *at > from {
                    out.push(Band {
                        alarm: alarm.to_owned(),
                        from: start,
                        to: (*at).min(to),
                    });
                }
                since = None;
            }
            (_, None) => {}
        }
    }
    if let Some(start) = since.filter(|s| *s < to) {
        out.push(Band {
            alarm: alarm.to_owned(),
            from: start,
            to,
        });
    }
    out.retain(|b| b.to > from && b.from < to && b.to > b.from);
    out
}

/// The dimensions of one side's metrics: per variant, and per fleet (`EndpointConfigName`)
/// for the native engine, whose blue and green fleets share the variant's name (SageMaker,
/// "Monitor Amazon SageMaker with Amazon CloudWatch").
fn dimensions(shown: &Shown, side: Side) -> Vec<Dimension> {
    let plan = &shown.plan;
    let dim = |name: &str, value: &str| Dimension::builder().name(name).value(value).build();
    let (variant, config) = match side {
        Side::Blue => (&plan.blue.variant_name, &plan.blue_config_name),
        Side::Green => (&plan.green.variant_name, &plan.green_config_name),
    };
    let mut dims = vec![
        dim("EndpointName", &plan.endpoint_name),
        dim("VariantName", variant),
    ];
    if plan.engine == Engine::Native {
        dims.push(dim("EndpointConfigName", config));
    }
    dims
}

fn query(
    id: &str,
    shown: &Shown,
    side: Side,
    metric: &str,
    stat: &str,
    period: i32,
) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace("AWS/SageMaker")
                        .metric_name(metric)
                        .set_dimensions(Some(dimensions(shown, side)))
                        .build(),
                )
                .period(period)
                .stat(stat)
                .build(),
        )
        .return_data(true)
        .build()
}

fn epoch(ms: i64) -> DateTime {
    DateTime::from_millis(ms)
}

/// `(epoch ms, value)` by query id, oldest first, every page read.
async fn metric_data(
    cloudwatch: &Client,
    queries: Vec<MetricDataQuery>,
    from: i64,
    to: i64,
) -> Result<std::collections::BTreeMap<String, Vec<(i64, f64)>>, String> {
    let mut out: std::collections::BTreeMap<String, Vec<(i64, f64)>> = Default::default();
    let mut pages = cloudwatch
        .get_metric_data()
        .set_metric_data_queries(Some(queries))
        .start_time(epoch(from))
        .end_time(epoch(to))
        .scan_by(ScanBy::TimestampAscending)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| cloudwatch_error("GetMetricData", &e))?;
        for result in page.metric_data_results() {
            let points = out
                .entry(result.id().unwrap_or_default().to_owned())
                .or_default();
            for (at, value) in result.timestamps().iter().zip(result.values()) {
                if let Ok(ms) = at.to_millis() {
                    points.push((ms, *value));
                }
            }
        }
    }
    for points in out.values_mut() {
        points.sort_by_key(|p| p.0);
    }
    Ok(out)
}

fn cloudwatch_error<E, R>(operation: &str, e: &aws_sdk_cloudwatch::error::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let detail = aws_sdk_cloudwatch::error::DisplayErrorContext(e);
    let code = e.code().unwrap_or_default();
    if code.contains("AccessDenied") {
        format!(
            "CloudWatch refused {operation} ({code}): the report reads metrics and alarm history \
             as you; the stack's OperatorPolicy allows both. {detail}"
        )
    } else {
        format!("CloudWatch {operation} failed: {detail}")
    }
}

/// Each alarm's state changes up to `to` (oldest first), read back to a day before `from` so
/// that the state at `from` is known.
async fn alarm_changes(
    cloudwatch: &Client,
    alarm: &str,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, String)>, String> {
    let mut changes = Vec::new();
    let mut pages = cloudwatch
        .describe_alarm_history()
        .alarm_name(alarm)
        .alarm_types(AlarmType::MetricAlarm)
        .alarm_types(AlarmType::CompositeAlarm)
        .history_item_type(HistoryItemType::StateUpdate)
        .start_date(epoch(from - 86_400_000))
        .end_date(epoch(to))
        .scan_by(ScanBy::TimestampAscending)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| cloudwatch_error("DescribeAlarmHistory", &e))?;
        for item in page.alarm_history_items() {
            let (Some(at), Some(data)) = (item.timestamp(), item.history_data()) else {
                continue;
            };
            // HistoryData of a StateUpdate: {"oldState": {...}, "newState": {"stateValue": ...}}.
            let state = serde_json::from_str::<serde_json::Value>(data)
                .ok()
                .and_then(|d| d["newState"]["stateValue"].as_str().map(str::to_owned));
            if let (Ok(ms), Some(state)) = (at.to_millis(), state) {
                changes.push((ms, state));
            }
        }
    }
    changes.sort_by_key(|c| c.0);
    Ok(changes)
}

/// `a / b * scale` bucket by bucket, where both have data and `b` is not zero.
fn ratio(a: &[(i64, f64)], b: &[(i64, f64)], scale: f64) -> Vec<(i64, f64)> {
    let denominators: std::collections::BTreeMap<i64, f64> = b.iter().copied().collect();
    a.iter()
        .filter_map(|(at, x)| {
            let d = *denominators.get(at)?;
            (d > 0.0).then(|| (*at, x / d * scale))
        })
        .collect()
}

/// The series of the chart from the metric data (by query id) and the timeline.
pub fn series(
    shown: &Shown,
    data: &std::collections::BTreeMap<String, Vec<(i64, f64)>>,
    period_secs: i32,
    to: i64,
) -> Vec<Series> {
    let get = |id: &str| data.get(id).cloned().unwrap_or_default();
    // A period's datapoint is stamped at its start; it is drawn at its middle.
    let mid = |points: Vec<(i64, f64)>| -> Vec<(i64, f64)> {
        let half = i64::from(period_secs) * 500;
        points.into_iter().map(|(at, v)| (at + half, v)).collect()
    };
    let total: Vec<(i64, f64)> = {
        let blue: std::collections::BTreeMap<i64, f64> = get("inv_blue").into_iter().collect();
        let mut all = blue.clone();
        for (at, v) in get("inv_green") {
            *all.entry(at).or_default() += v;
        }
        all.into_iter().collect()
    };
    let make = |id: &str, label: String, panel, side, points| Series {
        id: id.to_owned(),
        label,
        panel,
        side,
        steps: false,
        points,
    };
    let blue = &shown.plan.blue.variant_name;
    let green = &shown.plan.green.variant_name;
    let mut measured_share = ratio(&get("inv_green"), &total, 100.0);
    // Periods when only blue served: green had none of the requests.
    for (at, _) in &total {
        if !measured_share.iter().any(|(t, _)| t == at) {
            measured_share.push((*at, 0.0));
        }
    }
    measured_share.sort_by_key(|p| p.0);
    vec![
        Series {
            id: "green-share".to_owned(),
            label: "green's share, planned".to_owned(),
            panel: Panel::Share,
            side: Side::Green,
            steps: true,
            points: planned_share(&shown.timeline, to),
        },
        make(
            "green-share-measured",
            "green's share, measured".to_owned(),
            Panel::Share,
            Side::Green,
            mid(measured_share),
        ),
        make(
            "blue-error-rate",
            format!("blue ({blue}) 5xx %"),
            Panel::Errors,
            Side::Blue,
            mid(ratio(&get("err_blue"), &get("inv_blue"), 100.0)),
        ),
        make(
            "green-error-rate",
            format!("green ({green}) 5xx %"),
            Panel::Errors,
            Side::Green,
            mid(ratio(&get("err_green"), &get("inv_green"), 100.0)),
        ),
        make(
            "blue-latency-p99",
            format!("blue ({blue}) p99 ms"),
            Panel::Latency,
            Side::Blue,
            // ModelLatency is in microseconds.
            mid(get("lat_blue")
                .into_iter()
                .map(|(t, v)| (t, v / 1_000.0))
                .collect()),
        ),
        make(
            "green-latency-p99",
            format!("green ({green}) p99 ms"),
            Panel::Latency,
            Side::Green,
            mid(get("lat_green")
                .into_iter()
                .map(|(t, v)| (t, v / 1_000.0))
                .collect()),
        ),
    ]
}

/// Reads deployment `id` from the running Guardrails and its metrics and alarm history from
/// CloudWatch, at `now` (epoch ms).
pub async fn read(
    remote: &Remote,
    cloudwatch: &Client,
    id: &str,
    period: Option<i32>,
    now: i64,
) -> Result<Report, String> {
    let answer = remote
        .ok(&json!({ "command": "show", "deploymentId": id }))
        .await?;
    let shown: Shown = serde_json::from_value(answer)
        .map_err(|e| format!("Guardrails' answer to show is not a deployment: {e}"))?;
    let (from, to) = window(&shown, now);
    let period_secs = period.unwrap_or_else(|| period_for(from, to, now));
    let mut queries = Vec::new();
    for (side, name) in [(Side::Blue, "blue"), (Side::Green, "green")] {
        queries.push(query(
            &format!("inv_{name}"),
            &shown,
            side,
            "Invocations",
            "Sum",
            period_secs,
        ));
        queries.push(query(
            &format!("err_{name}"),
            &shown,
            side,
            "Invocation5XXErrors",
            "Sum",
            period_secs,
        ));
        queries.push(query(
            &format!("lat_{name}"),
            &shown,
            side,
            "ModelLatency",
            "p99",
            period_secs,
        ));
    }
    let data = metric_data(cloudwatch, queries, from, to).await?;
    // An alarm is watched until the deployment ends (Guardrails deletes the ones it made).
    let watched_until = shown.summary.ended_at.unwrap_or(to);
    let mut bands_all = Vec::new();
    for alarm in shown.plan.watched_alarm_names() {
        let changes = alarm_changes(cloudwatch, alarm, from, to).await?;
        bands_all.extend(bands(alarm, &changes, from, watched_until));
    }
    Ok(Report {
        series: series(&shown, &data, period_secs, to),
        shown,
        from,
        to,
        period_secs,
        bands: bands_all,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_keeps_the_chart_readable_and_within_what_cloudwatch_keeps() {
        let now = 10_000_000_000;
        // A 40 s local deployment: every second.
        assert_eq!(period_for(now - 40_000, now, now), 1);
        // An hour: 30 s buckets (120 points).
        assert_eq!(period_for(now - 3_600_000, now, now), 30);
        // The same hour read a day later: CloudWatch keeps only minutes by then.
        assert_eq!(period_for(now - 3_600_000, now, now + 86_400_000), 60);
        // A day: 10 minutes.
        assert_eq!(period_for(now - 86_400_000, now, now), 600);
    }

    #[test]
    fn alarm_bands_follow_the_state_changes_within_the_window() {
        let changes = [
            (0, "ALARM".to_owned()),
            (50, "OK".to_owned()),
            (120, "INSUFFICIENT_DATA".to_owned()),
            (150, "ALARM".to_owned()),
            (160, "ALARM".to_owned()),
            (180, "OK".to_owned()),
            (250, "ALARM".to_owned()),
        ];
        let got: Vec<(i64, i64)> = bands("a", &changes, 20, 300)
            .iter()
            .map(|b| (b.from, b.to))
            .collect();
        // In ALARM before the window: the band starts with it; still in ALARM at its end.
        assert_eq!(got, [(20, 50), (150, 180), (250, 300)]);
        assert!(bands("a", &changes[..2], 60, 300).is_empty());
    }
}
