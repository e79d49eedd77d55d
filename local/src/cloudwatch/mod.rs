//! CloudWatch metrics and alarms, evaluated from the data the way CloudWatch does: each alarm
//! looks at its last `EvaluationPeriods` periods, a period with no data is treated as its
//! `TreatMissingData` says, `DatapointsToAlarm` breaching periods put it in ALARM, and it starts
//! in INSUFFICIENT_DATA. Every state change is queued as a "CloudWatch Alarm State Change" event.

pub mod iam;
pub mod wire;

use std::collections::BTreeMap;

use ciborium::Value as Cbor;
use serde_json::Value;

use crate::alarms::{Alarm, change_state, judge};
use crate::cbor::{double, int, list, map, text, timestamp};
use crate::events::Outgoing;
use crate::{ApiError, Ms};

/// How long datapoints are kept: three hours is more than any test or demo needs.
const RETENTION_MS: i64 = 3 * 3_600_000;
/// The most samples kept per datapoint for percentiles.
const MAX_SAMPLES: usize = 1_000;

/// Namespace, metric name and sorted dimensions.
pub type MetricKey = (String, String, Vec<(String, String)>);

/// What was recorded for a metric at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    pub at: Ms,
    pub count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub samples: Vec<f64>,
}

impl Datapoint {
    pub fn values(at: Ms, values: &[f64]) -> Datapoint {
        let mut samples = values.to_vec();
        samples.truncate(MAX_SAMPLES);
        Datapoint {
            at,
            count: values.len() as f64,
            sum: values.iter().sum(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            samples,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Stat {
    Average,
    Sum,
    SampleCount,
    Minimum,
    Maximum,
    Percentile(f64),
}

impl Stat {
    fn parse(name: &str) -> Option<Stat> {
        Some(match name {
            "Average" => Stat::Average,
            "Sum" => Stat::Sum,
            "SampleCount" => Stat::SampleCount,
            "Minimum" => Stat::Minimum,
            "Maximum" => Stat::Maximum,
            p => Stat::Percentile(p.strip_prefix('p')?.parse().ok()?),
        })
    }

    pub(crate) fn name(&self) -> String {
        match self {
            Stat::Average => "Average".to_owned(),
            Stat::Sum => "Sum".to_owned(),
            Stat::SampleCount => "SampleCount".to_owned(),
            Stat::Minimum => "Minimum".to_owned(),
            Stat::Maximum => "Maximum".to_owned(),
            Stat::Percentile(p) => format!("p{p}"),
        }
    }

    /// The statistic over `points`; `None` when there is no data.
    pub fn of(&self, points: &[&Datapoint]) -> Option<f64> {
        let count: f64 = points.iter().map(|p| p.count).sum();
        if points.is_empty() || count <= 0.0 {
            return None;
        }
        let sum: f64 = points.iter().map(|p| p.sum).sum();
        Some(match self {
            Stat::Average => sum / count,
            Stat::Sum => sum,
            Stat::SampleCount => count,
            Stat::Minimum => points.iter().map(|p| p.min).fold(f64::INFINITY, f64::min),
            Stat::Maximum => points
                .iter()
                .map(|p| p.max)
                .fold(f64::NEG_INFINITY, f64::max),
            Stat::Percentile(p) => {
                let mut all: Vec<f64> = points
                    .iter()
                    .flat_map(|d| d.samples.iter().copied())
                    .collect();
                if all.is_empty() {
                    return points.iter().map(|d| d.max).reduce(f64::max);
                }
                all.sort_by(f64::total_cmp);
                let rank = ((p / 100.0) * all.len() as f64).ceil() as usize;
                all[rank.clamp(1, all.len()) - 1]
            }
        })
    }
}

#[derive(Debug, Default)]
pub struct CloudWatch {
    pub metrics: BTreeMap<MetricKey, Vec<Datapoint>>,
    pub alarms: BTreeMap<String, Alarm>,
}

fn dimensions(value: Option<&Value>) -> Vec<(String, String)> {
    let mut dims: Vec<(String, String)> = value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| {
            let name = d.get("Name")?.as_str()?;
            let value = d.get("Value")?.as_str()?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect();
    dims.sort();
    dims
}

fn required<'a>(input: &'a Value, field: &str) -> Result<&'a Value, ApiError> {
    input.get(field).ok_or_else(|| {
        ApiError::new(
            "MissingParameter",
            format!("The parameter {field} is required."),
        )
    })
}

fn required_str<'a>(input: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    required(input, field)?
        .as_str()
        .ok_or_else(|| ApiError::new("InvalidParameterValue", format!("{field} must be a string")))
}

/// Epoch seconds (a decoded CBOR timestamp) to milliseconds.
fn ms_of(value: Option<&Value>) -> Option<Ms> {
    value
        .and_then(Value::as_f64)
        .map(|s| (s * 1_000.0).round() as Ms)
}

impl CloudWatch {
    pub fn call(
        &mut self,
        operation: &str,
        input: &Value,
        now: Ms,
        events: &mut Vec<Outgoing>,
    ) -> Result<Cbor, ApiError> {
        match operation {
            "PutMetricData" => self.put_metric_data(input, now),
            "GetMetricData" => self.get_metric_data(input),
            "PutMetricAlarm" => self.put_metric_alarm(input, now),
            "DescribeAlarms" => Ok(self.describe_alarms(input)),
            "DescribeAlarmHistory" => Ok(self.describe_alarm_history(input)),
            "DeleteAlarms" => {
                for name in required(input, "AlarmNames")?
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    if let Some(name) = name.as_str() {
                        self.alarms.remove(name);
                    }
                }
                Ok(map(vec![]))
            }
            "SetAlarmState" => self.set_alarm_state(input, now, events),
            other => Err(ApiError::new(
                "UnknownOperationException",
                format!("the local CloudWatch does not implement {other}"),
            )),
        }
    }

    /// Records one datapoint.
    pub fn record(&mut self, key: MetricKey, point: Datapoint) {
        let series = self.metrics.entry(key).or_default();
        series.push(point);
        let oldest = series.last().map_or(0, |p| p.at) - RETENTION_MS;
        series.retain(|p| p.at >= oldest);
    }

    fn put_metric_data(&mut self, input: &Value, now: Ms) -> Result<Cbor, ApiError> {
        let namespace = required_str(input, "Namespace")?.to_owned();
        for datum in required(input, "MetricData")?
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = required_str(datum, "MetricName")?.to_owned();
            let key = (namespace.clone(), name, dimensions(datum.get("Dimensions")));
            let at = ms_of(datum.get("Timestamp")).unwrap_or(now);
            let point = if let Some(v) = datum.get("Value").and_then(Value::as_f64) {
                Datapoint::values(at, &[v])
            } else if let Some(stats) = datum.get("StatisticValues") {
                let get = |f: &str| stats.get(f).and_then(Value::as_f64).unwrap_or(0.0);
                Datapoint {
                    at,
                    count: get("SampleCount"),
                    sum: get("Sum"),
                    min: get("Minimum"),
                    max: get("Maximum"),
                    samples: Vec::new(),
                }
            } else {
                let values: Vec<f64> = datum
                    .get("Values")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_f64)
                    .collect();
                if values.is_empty() {
                    return Err(ApiError::new(
                        "InvalidParameterCombination",
                        "each MetricDatum needs Value, Values or StatisticValues",
                    ));
                }
                Datapoint::values(at, &values)
            };
            self.record(key, point);
        }
        Ok(map(vec![]))
    }

    fn points_between(&self, key: &MetricKey, from: Ms, to: Ms) -> Vec<&Datapoint> {
        self.metrics
            .get(key)
            .map(|series| {
                series
                    .iter()
                    .filter(|p| p.at >= from && p.at < to)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn get_metric_data(&self, input: &Value) -> Result<Cbor, ApiError> {
        let start = ms_of(input.get("StartTime")).ok_or_else(|| {
            ApiError::new("MissingParameter", "The parameter StartTime is required.")
        })?;
        let end = ms_of(input.get("EndTime")).ok_or_else(|| {
            ApiError::new("MissingParameter", "The parameter EndTime is required.")
        })?;
        let mut results = Vec::new();
        for query in required(input, "MetricDataQueries")?
            .as_array()
            .into_iter()
            .flatten()
        {
            let id = required_str(query, "Id")?;
            let stat_query = required(query, "MetricStat")?;
            let metric = required(stat_query, "Metric")?;
            let key = (
                required_str(metric, "Namespace")?.to_owned(),
                required_str(metric, "MetricName")?.to_owned(),
                dimensions(metric.get("Dimensions")),
            );
            let period_ms = stat_query
                .get("Period")
                .and_then(Value::as_i64)
                .unwrap_or(60)
                * 1_000;
            let stat_name = required_str(stat_query, "Stat")?;
            let stat = Stat::parse(stat_name).ok_or_else(|| {
                ApiError::new(
                    "InvalidParameterValue",
                    format!("unknown statistic {stat_name}"),
                )
            })?;
            let mut timestamps = Vec::new();
            let mut values = Vec::new();
            // Newest first, as CloudWatch returns by default (TimestampDescending).
            let mut bucket = start + (end - start).div_euclid(period_ms.max(1)) * period_ms;
            while bucket >= start {
                if let Some(v) = stat.of(&self.points_between(&key, bucket, bucket + period_ms)) {
                    timestamps.push(timestamp(bucket));
                    values.push(double(v));
                }
                bucket -= period_ms.max(1);
            }
            results.push(map(vec![
                ("Id", text(id)),
                ("Label", text(key.1.clone())),
                ("Timestamps", list(timestamps)),
                ("Values", list(values)),
                ("StatusCode", text("Complete")),
            ]));
        }
        Ok(map(vec![("MetricDataResults", list(results))]))
    }

    fn put_metric_alarm(&mut self, input: &Value, now: Ms) -> Result<Cbor, ApiError> {
        let name = required_str(input, "AlarmName")?.to_owned();
        let key = (
            required_str(input, "Namespace")?.to_owned(),
            required_str(input, "MetricName")?.to_owned(),
            dimensions(input.get("Dimensions")),
        );
        let stat_name = input
            .get("Statistic")
            .or_else(|| input.get("ExtendedStatistic"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiError::new(
                    "MissingParameter",
                    "Statistic or ExtendedStatistic is required.",
                )
            })?;
        let stat = Stat::parse(stat_name).ok_or_else(|| {
            ApiError::new(
                "InvalidParameterValue",
                format!("unknown statistic {stat_name}"),
            )
        })?;
        let period = required(input, "Period")?.as_i64().unwrap_or(60);
        let evaluation_periods = required(input, "EvaluationPeriods")?
            .as_u64()
            .unwrap_or(1)
            .max(1) as usize;
        let datapoints = input
            .get("DatapointsToAlarm")
            .and_then(Value::as_u64)
            .map_or(evaluation_periods, |d| d as usize);
        let previous = self
            .alarms
            .get(&name)
            .map(|a| (a.state, a.reason.clone(), a.updated, a.history.clone()));
        let (state, reason, updated, history) = previous.unwrap_or((
            "INSUFFICIENT_DATA",
            "Unchecked: Initial alarm creation".to_owned(),
            now,
            Vec::new(),
        ));
        let alarm = Alarm {
            name: name.clone(),
            key,
            stat,
            period_ms: period * 1_000,
            evaluation_periods,
            datapoints_to_alarm: datapoints.clamp(1, evaluation_periods),
            threshold: required(input, "Threshold")?.as_f64().unwrap_or(0.0),
            comparison: required_str(input, "ComparisonOperator")?.to_owned(),
            treat_missing: input
                .get("TreatMissingData")
                .and_then(Value::as_str)
                .unwrap_or("missing")
                .to_owned(),
            state,
            reason,
            reason_data: String::new(),
            updated,
            history,
        };
        self.alarms.insert(name, alarm);
        Ok(map(vec![]))
    }

    /// `StateUpdate` items, newest first, of one alarm (`AlarmName`) or all, between `StartDate`
    /// and `EndDate` when given; other item types have no history here.
    fn describe_alarm_history(&self, input: &Value) -> Cbor {
        let name = input.get("AlarmName").and_then(Value::as_str);
        let kind = input.get("HistoryItemType").and_then(Value::as_str);
        let start = ms_of(input.get("StartDate")).unwrap_or(Ms::MIN);
        let end = ms_of(input.get("EndDate")).unwrap_or(Ms::MAX);
        let mut items: Vec<(Ms, Cbor)> = Vec::new();
        if kind.is_none_or(|k| k == "StateUpdate") {
            for alarm in self
                .alarms
                .values()
                .filter(|a| name.is_none_or(|n| a.name == n))
            {
                for u in alarm
                    .history
                    .iter()
                    .filter(|u| u.at >= start && u.at <= end)
                {
                    let data = serde_json::json!({
                        "version": "1.0",
                        "oldState": { "stateValue": u.from, "stateReason": u.from_reason },
                        "newState": { "stateValue": u.to, "stateReason": u.reason },
                    });
                    let item = map(vec![
                        ("AlarmName", text(&alarm.name)),
                        ("AlarmType", text("MetricAlarm")),
                        ("Timestamp", timestamp(u.at)),
                        ("HistoryItemType", text("StateUpdate")),
                        (
                            "HistorySummary",
                            text(format!("Alarm updated from {} to {}", u.from, u.to)),
                        ),
                        ("HistoryData", text(data.to_string())),
                    ]);
                    items.push((u.at, item));
                }
            }
        }
        items.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        map(vec![(
            "AlarmHistoryItems",
            list(items.into_iter().map(|(_, item)| item).collect()),
        )])
    }

    fn describe_alarms(&self, input: &Value) -> Cbor {
        let names: Option<Vec<&str>> = input
            .get("AlarmNames")
            .and_then(Value::as_array)
            .map(|n| n.iter().filter_map(Value::as_str).collect());
        let prefix = input.get("AlarmNamePrefix").and_then(Value::as_str);
        let state = input.get("StateValue").and_then(Value::as_str);
        let alarms: Vec<Cbor> = self
            .alarms
            .values()
            .filter(|a| names.as_ref().is_none_or(|n| n.contains(&a.name.as_str())))
            .filter(|a| prefix.is_none_or(|p| a.name.starts_with(p)))
            .filter(|a| state.is_none_or(|s| a.state == s))
            .take(100)
            .map(|a| {
                let (namespace, metric, dims) = &a.key;
                let stat = match a.stat {
                    Stat::Percentile(_) => ("ExtendedStatistic", text(a.stat.name())),
                    _ => ("Statistic", text(a.stat.name())),
                };
                map(vec![
                    ("AlarmName", text(&a.name)),
                    ("AlarmArn", text(a.arn())),
                    ("StateValue", text(a.state)),
                    ("StateReason", text(&a.reason)),
                    ("StateReasonData", text(&a.reason_data)),
                    ("StateUpdatedTimestamp", timestamp(a.updated)),
                    ("Namespace", text(namespace)),
                    ("MetricName", text(metric)),
                    (
                        "Dimensions",
                        list(
                            dims.iter()
                                .map(|(n, v)| map(vec![("Name", text(n)), ("Value", text(v))]))
                                .collect(),
                        ),
                    ),
                    stat,
                    ("Period", int(a.period_ms / 1_000)),
                    ("EvaluationPeriods", int(a.evaluation_periods as i64)),
                    ("DatapointsToAlarm", int(a.datapoints_to_alarm as i64)),
                    ("Threshold", double(a.threshold)),
                    ("ComparisonOperator", text(&a.comparison)),
                    ("TreatMissingData", text(&a.treat_missing)),
                ])
            })
            .collect();
        map(vec![("MetricAlarms", list(alarms))])
    }

    fn set_alarm_state(
        &mut self,
        input: &Value,
        now: Ms,
        events: &mut Vec<Outgoing>,
    ) -> Result<Cbor, ApiError> {
        let name = required_str(input, "AlarmName")?;
        let state = match required_str(input, "StateValue")? {
            "OK" => "OK",
            "ALARM" => "ALARM",
            "INSUFFICIENT_DATA" => "INSUFFICIENT_DATA",
            other => {
                return Err(ApiError::new(
                    "InvalidParameterValue",
                    format!("unknown state {other}"),
                ));
            }
        };
        let reason = required_str(input, "StateReason")?.to_owned();
        let data = input
            .get("StateReasonData")
            .and_then(Value::as_str)
            .unwrap_or("{}")
            .to_owned();
        let alarm = self
            .alarms
            .get_mut(name)
            .ok_or_else(|| ApiError::new("ResourceNotFound", format!("Alarm {name} not found")))?;
        if let Some(event) = change_state(alarm, state, reason, data, now) {
            events.push(event);
        }
        Ok(map(vec![]))
    }

    /// Evaluates every alarm at `now`.
    pub fn evaluate(&mut self, now: Ms, events: &mut Vec<Outgoing>) {
        let names: Vec<String> = self.alarms.keys().cloned().collect();
        for name in names {
            let Some(alarm) = self.alarms.get(&name) else {
                continue;
            };
            let windows: Vec<Option<f64>> = (0..alarm.evaluation_periods)
                .map(|k| {
                    let to = now - k as i64 * alarm.period_ms;
                    alarm
                        .stat
                        .of(&self.points_between(&alarm.key, to - alarm.period_ms, to))
                })
                .collect();
            let Some((state, reason, data)) = judge(alarm, &windows, now) else {
                continue;
            };
            if let Some(alarm) = self.alarms.get_mut(&name)
                && let Some(event) = change_state(alarm, state, reason, data, now)
            {
                events.push(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const T: Ms = 1_790_000_000_000;

    fn errors_key() -> MetricKey {
        (
            "AWS/SageMaker".to_owned(),
            "Invocation5XXErrors".to_owned(),
            vec![("EndpointName".to_owned(), "e".to_owned())],
        )
    }

    fn alarm(cw: &mut CloudWatch, treat_missing: &str) {
        let input = json!({
            "AlarmName": "errors", "Namespace": "AWS/SageMaker", "MetricName": "Invocation5XXErrors",
            "Dimensions": [{"Name": "EndpointName", "Value": "e"}],
            "Statistic": "Average", "Period": 10, "EvaluationPeriods": 3, "DatapointsToAlarm": 2,
            "Threshold": 0.05, "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": treat_missing,
        });
        cw.call("PutMetricAlarm", &input, T, &mut Vec::new())
            .unwrap();
    }

    /// One datapoint per second from `from` to `to` seconds with this error fraction.
    fn traffic(cw: &mut CloudWatch, from: i64, to: i64, error_fraction: f64) {
        for s in from..to {
            let errors = (error_fraction * 100.0).round() as usize;
            let values: Vec<f64> = (0..100)
                .map(|i| if i < errors { 1.0 } else { 0.0 })
                .collect();
            cw.record(errors_key(), Datapoint::values(T + s * 1_000, &values));
        }
    }

    fn state(cw: &CloudWatch) -> &'static str {
        cw.alarms["errors"].state
    }

    #[test]
    fn a_new_alarm_starts_with_insufficient_data() {
        let mut cw = CloudWatch::default();
        alarm(&mut cw, "missing");
        assert_eq!(state(&cw), "INSUFFICIENT_DATA");
        let mut events = Vec::new();
        cw.evaluate(T + 5_000, &mut events);
        assert_eq!(state(&cw), "INSUFFICIENT_DATA");
        assert!(events.is_empty(), "no change, no event");
    }

    #[test]
    fn a_breach_in_enough_periods_goes_to_alarm_with_an_event() {
        let mut cw = CloudWatch::default();
        alarm(&mut cw, "missing");
        traffic(&mut cw, 0, 30, 0.0);
        let mut events = Vec::new();
        cw.evaluate(T + 30_000, &mut events);
        assert_eq!(state(&cw), "OK");
        traffic(&mut cw, 30, 40, 0.3);
        cw.evaluate(T + 40_000, &mut events);
        assert_eq!(state(&cw), "OK", "one breaching period of the two needed");
        traffic(&mut cw, 40, 50, 0.3);
        cw.evaluate(T + 50_000, &mut events);
        assert_eq!(state(&cw), "ALARM");
        let last = events.last().unwrap();
        assert_eq!(last.detail_type, "CloudWatch Alarm State Change");
        assert_eq!(last.detail["state"]["value"], "ALARM");
        assert_eq!(last.detail["previousState"]["value"], "OK");
        let reason = last.detail["state"]["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("Threshold Crossed: 2 out of the last 3 datapoints [0.3, 0.3, 0]"),
            "{reason}"
        );
    }

    #[test]
    fn recovery_returns_to_ok() {
        let mut cw = CloudWatch::default();
        alarm(&mut cw, "missing");
        traffic(&mut cw, 0, 30, 0.5);
        let mut events = Vec::new();
        cw.evaluate(T + 30_000, &mut events);
        assert_eq!(state(&cw), "ALARM");
        traffic(&mut cw, 30, 60, 0.0);
        cw.evaluate(T + 60_000, &mut events);
        assert_eq!(state(&cw), "OK");
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn missing_data_follows_treat_missing_data() {
        let cases = [
            ("missing", "INSUFFICIENT_DATA"),
            ("notBreaching", "OK"),
            ("breaching", "ALARM"),
            ("ignore", "OK"),
        ];
        for (treat, expected) in cases {
            let mut cw = CloudWatch::default();
            alarm(&mut cw, treat);
            traffic(&mut cw, 0, 30, 0.0);
            cw.evaluate(T + 30_000, &mut Vec::new());
            // Then a minute with no data at all.
            cw.evaluate(T + 90_000, &mut Vec::new());
            assert_eq!(state(&cw), expected, "TreatMissingData {treat}");
        }
    }

    #[test]
    fn percentiles_and_statistics_are_computed_from_samples() {
        let points = [Datapoint::values(
            T,
            &(1..=100).map(f64::from).collect::<Vec<_>>(),
        )];
        let refs: Vec<&Datapoint> = points.iter().collect();
        assert_eq!(Stat::Percentile(99.0).of(&refs), Some(99.0));
        assert_eq!(Stat::Average.of(&refs), Some(50.5));
        assert_eq!(Stat::Sum.of(&refs), Some(5050.0));
        assert_eq!(Stat::SampleCount.of(&refs), Some(100.0));
        assert_eq!(Stat::Minimum.of(&refs), Some(1.0));
        assert_eq!(Stat::Maximum.of(&refs), Some(100.0));
        assert_eq!(Stat::Average.of(&[]), None);
    }
}
