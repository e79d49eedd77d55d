//! CloudWatch metric alarms: what one is (on one metric and statistic, or on metric math), how
//! its recent periods decide its state (CloudWatch's m-out-of-n rule with `TreatMissingData`),
//! and the "CloudWatch Alarm State Change" event a change of state sends.

use serde_json::{Value, json};

use super::math::{Query, QuerySource};
use super::{MetricKey, Stat};
use crate::events::Outgoing;
use crate::{Ms, iso8601};

/// What an alarm watches.
#[derive(Debug, Clone)]
pub enum Source {
    Metric {
        key: MetricKey,
        stat: Stat,
    },
    /// Metric math (`Metrics`): the query with `ReturnData` is the alarm's value.
    Math {
        queries: Vec<Query>,
    },
}

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

#[derive(Debug, Clone)]
pub struct Alarm {
    pub name: String,
    pub source: Source,
    pub period_ms: i64,
    pub evaluation_periods: usize,
    pub datapoints_to_alarm: usize,
    pub threshold: f64,
    pub comparison: String,
    pub treat_missing: String,
    pub state: &'static str,
    pub reason: String,
    pub reason_data: String,
    pub updated: Ms,
    /// Every change of state, oldest first (DescribeAlarmHistory's `StateUpdate` items).
    pub history: Vec<StateUpdate>,
}

/// One change of an alarm's state.
#[derive(Debug, Clone, PartialEq)]
pub struct StateUpdate {
    pub at: Ms,
    pub from: &'static str,
    pub to: &'static str,
    pub from_reason: String,
    pub reason: String,
}

impl Alarm {
    pub(crate) fn arn(&self) -> String {
        format!("arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{}", self.name)
    }

    fn breaches(&self, value: f64) -> bool {
        match self.comparison.as_str() {
            "GreaterThanOrEqualToThreshold" => value >= self.threshold,
            "GreaterThanThreshold" => value > self.threshold,
            "LessThanThreshold" => value < self.threshold,
            "LessThanOrEqualToThreshold" => value <= self.threshold,
            _ => false,
        }
    }

    fn words(&self) -> &'static str {
        match self.comparison.as_str() {
            "GreaterThanOrEqualToThreshold" => "greater than or equal to",
            "GreaterThanThreshold" => "greater than",
            "LessThanThreshold" => "less than",
            _ => "less than or equal to",
        }
    }
}

/// The state the alarm's windows (newest first) call for, with CloudWatch's reason; `None` to
/// keep the current state (all data missing and `TreatMissingData: ignore`).
pub(crate) fn judge(
    alarm: &Alarm,
    windows: &[Option<f64>],
    now: Ms,
) -> Option<(&'static str, String, String)> {
    let missing_breaches = match alarm.treat_missing.as_str() {
        "breaching" => Some(true),
        "notBreaching" => Some(false),
        _ => None,
    };
    let verdicts: Vec<Option<bool>> = windows
        .iter()
        .map(|w| w.map(|v| alarm.breaches(v)).or(missing_breaches))
        .collect();
    let breaching = verdicts.iter().filter(|v| **v == Some(true)).count();
    let evaluated = verdicts.iter().filter(|v| v.is_some()).count();
    let values: Vec<String> = windows.iter().flatten().map(|v| format!("{v}")).collect();
    let mut data = json!({
        "version": "1.0",
        "queryDate": iso8601(now),
        "period": alarm.period_ms / 1_000,
        "recentDatapoints": windows.iter().flatten().collect::<Vec<_>>(),
        "threshold": alarm.threshold,
    });
    if let Source::Metric { stat, .. } = &alarm.source {
        data["statistic"] = json!(stat.name());
    }
    let data = data.to_string();
    let n = alarm.evaluation_periods;
    let m = alarm.datapoints_to_alarm;
    if breaching >= m {
        let reason = format!(
            "Threshold Crossed: {breaching} out of the last {n} datapoints [{}] {} {} the threshold ({}) (minimum {m} datapoint{} for OK -> ALARM transition).",
            values.join(", "),
            if breaching == 1 { "was" } else { "were" },
            alarm.words(),
            alarm.threshold,
            if m == 1 { "" } else { "s" },
        );
        return Some(("ALARM", reason, data));
    }
    if evaluated == 0 {
        if alarm.treat_missing == "ignore" {
            return None;
        }
        let reason = format!("Insufficient Data: {n} datapoints were unknown.");
        return Some(("INSUFFICIENT_DATA", reason, data));
    }
    let reason = format!(
        "Threshold Crossed: {} out of the last {n} datapoints [{}] {} not {} the threshold ({}) (minimum {m} datapoint{} for ALARM -> OK transition).",
        evaluated - breaching,
        values.join(", "),
        if evaluated - breaching == 1 {
            "was"
        } else {
            "were"
        },
        alarm.words(),
        alarm.threshold,
        if m == 1 { "" } else { "s" },
    );
    Some(("OK", reason, data))
}

/// Moves `alarm` to `state` and returns the event, if the state changed.
pub(crate) fn change_state(
    alarm: &mut Alarm,
    state: &'static str,
    reason: String,
    data: String,
    now: Ms,
) -> Option<Outgoing> {
    if alarm.state == state {
        return None;
    }
    let previous = json!({
        "value": alarm.state,
        "reason": alarm.reason,
        "reasonData": alarm.reason_data,
        "timestamp": iso8601(alarm.updated),
    });
    alarm.history.push(StateUpdate {
        at: now,
        from: alarm.state,
        to: state,
        from_reason: alarm.reason.clone(),
        reason: reason.clone(),
    });
    alarm.state = state;
    alarm.reason = reason;
    alarm.reason_data = data;
    alarm.updated = now;
    let metric_json = |key: &MetricKey| {
        let (namespace, metric, dims) = key;
        let dimensions: serde_json::Map<String, Value> =
            dims.iter().map(|(n, v)| (n.clone(), json!(v))).collect();
        json!({ "namespace": namespace, "name": metric, "dimensions": dimensions })
    };
    let metrics: Vec<Value> = match &alarm.source {
        Source::Metric { key, stat } => vec![json!({
            "id": "m1",
            "metricStat": {
                "metric": metric_json(key),
                "period": alarm.period_ms / 1_000,
                "stat": stat.name(),
            },
            "returnData": true,
        })],
        Source::Math { queries } => queries
            .iter()
            .map(|q| match &q.source {
                QuerySource::Metric { key, stat_name, period_ms, .. } => json!({
                    "id": q.id,
                    "metricStat": { "metric": metric_json(key), "period": period_ms / 1_000, "stat": stat_name },
                    "returnData": q.return_data,
                }),
                QuerySource::Expression { text, .. } => json!({
                    "id": q.id,
                    "expression": text,
                    "returnData": q.return_data,
                }),
            })
            .collect(),
    };
    let detail = json!({
        "alarmName": alarm.name,
        "state": {
            "value": state,
            "reason": alarm.reason,
            "reasonData": alarm.reason_data,
            "timestamp": iso8601(now),
        },
        "previousState": previous,
        "configuration": { "metrics": metrics },
    });
    Some(Outgoing::alarm_state(alarm.arn(), detail))
}
