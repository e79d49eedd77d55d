//! CloudWatch, as the local stack serves it: metric data (`metrics`, with metric math in
//! `math`), metric and composite alarms (`alarm`, `composite`, their operations in
//! `operations`) evaluated from the data the way CloudWatch does, in the three protocols its
//! clients speak (`wire`), authorized as IAM authorizes it (`iam`). A metric alarm looks at its
//! last `EvaluationPeriods` periods, treats a period without data as its `TreatMissingData` says,
//! goes to ALARM with `DatapointsToAlarm` breaching periods and starts in INSUFFICIENT_DATA; a
//! composite alarm follows its rule. Every state change is queued as a "CloudWatch Alarm State
//! Change" event.

pub mod alarm;
pub mod composite;
pub mod emf;
pub mod iam;
pub mod math;
pub mod metrics;
mod operations;
pub mod wire;

use std::collections::BTreeMap;

use ciborium::Value as Cbor;
use serde_json::Value;

use crate::events::Outgoing;
use crate::{ApiError, Ms};
use alarm::{Alarm, Source, change_state, judge};
use composite::Composite;
pub use metrics::{Datapoint, Stat};

/// How long datapoints are kept: three hours is more than any test or demo needs.
const RETENTION_MS: i64 = 3 * 3_600_000;
/// How many rounds composite alarms are judged in one evaluation: a rule naming a composite
/// that changed in this round is judged again in the next.
const COMPOSITE_ROUNDS: usize = 8;

/// Namespace, metric name and sorted dimensions.
pub type MetricKey = (String, String, Vec<(String, String)>);

#[derive(Debug, Default)]
pub struct CloudWatch {
    pub metrics: BTreeMap<MetricKey, Vec<Datapoint>>,
    pub alarms: BTreeMap<String, Alarm>,
    pub composites: BTreeMap<String, Composite>,
    /// The state changes of deleted alarms: "CloudWatch retains the history of an alarm even
    /// if you delete the alarm" (API reference, DescribeAlarmHistory). By alarm name, with the
    /// alarm's type (`MetricAlarm`, `CompositeAlarm`).
    pub retired_history: Vec<(String, &'static str, alarm::StateUpdate)>,
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
            "PutCompositeAlarm" => self.put_composite_alarm(input, now, events),
            "DescribeAlarms" => Ok(self.describe_alarms(input)),
            "DescribeAlarmHistory" => Ok(self.describe_alarm_history(input)),
            "DeleteAlarms" => self.delete_alarms(input),
            "SetAlarmState" => self.set_alarm_state(input, now, events),
            other => Err(ApiError::new(
                "UnknownOperationException",
                format!("the local CloudWatch does not implement {other}"),
            )),
        }
    }

    /// One log event of `log_group`, as CloudWatch Logs takes it: an EMF document's metrics
    /// are recorded; a broken one counts in `AWS/Logs` instead (`emf`).
    pub fn log_event(&mut self, log_group: &str, event: &str, now: Ms) {
        let rejected = match emf::extract(event) {
            None => return,
            Some(Ok(points)) => {
                for (key, point) in points {
                    self.record(key, point);
                }
                return;
            }
            Some(Err(emf::Rejected::Parsing(_))) => "EMFParsingErrors",
            Some(Err(emf::Rejected::Validation(_))) => "EMFValidationErrors",
        };
        let dims = vec![("LogGroupName".to_owned(), log_group.to_owned())];
        self.record(
            ("AWS/Logs".to_owned(), rejected.to_owned(), dims),
            Datapoint::values(now, &[1.0]),
        );
    }

    /// Records one datapoint.
    pub fn record(&mut self, key: MetricKey, point: Datapoint) {
        let series = self.metrics.entry(key).or_default();
        series.push(point);
        let oldest = series.last().map_or(0, |p| p.at) - RETENTION_MS;
        series.retain(|p| p.at >= oldest);
    }

    pub(crate) fn points_between(&self, key: &MetricKey, from: Ms, to: Ms) -> Vec<&Datapoint> {
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

    /// The state of the alarm `name`, metric or composite.
    pub fn state_of(&self, name: &str) -> Option<&'static str> {
        self.alarms
            .get(name)
            .map(|a| a.state)
            .or_else(|| self.composites.get(name).map(|c| c.state))
    }

    /// The value of `alarm` over the period ending at `to`.
    fn value(&self, alarm: &Alarm, to: Ms) -> Option<f64> {
        let from = to - alarm.period_ms;
        match &alarm.source {
            Source::Metric { key, stat } => stat.of(&self.points_between(key, from, to)),
            Source::Math { queries } => {
                let returned = queries.iter().find(|q| q.return_data)?;
                self.query_value(queries, &returned.id, from, to, 0)
            }
        }
    }

    /// Evaluates every alarm at `now`: metric alarms from their data, then composite alarms
    /// from the states of the alarms they name.
    pub fn evaluate(&mut self, now: Ms, events: &mut Vec<Outgoing>) {
        let names: Vec<String> = self.alarms.keys().cloned().collect();
        for name in names {
            let Some(alarm) = self.alarms.get(&name) else {
                continue;
            };
            let windows: Vec<Option<f64>> = (0..alarm.evaluation_periods)
                .map(|k| self.value(alarm, now - k as i64 * alarm.period_ms))
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
        self.evaluate_composites(now, events);
    }

    /// Judges every composite alarm's rule, again while one changes (bounded).
    pub(crate) fn evaluate_composites(&mut self, now: Ms, events: &mut Vec<Outgoing>) {
        for _ in 0..COMPOSITE_ROUNDS {
            let mut changed = false;
            let names: Vec<String> = self.composites.keys().cloned().collect();
            for name in names {
                let Some(c) = self.composites.get(&name) else {
                    continue;
                };
                let (state, reason, data) = c.judge(&|n| self.state_of(n));
                if let Some(c) = self.composites.get_mut(&name)
                    && let Some(event) = composite::change_state(c, state, reason, data, now)
                {
                    events.push(event);
                    changed = true;
                }
            }
            if !changed {
                return;
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
    fn get_metric_data_stops_before_its_end_time() {
        // EndTime is exclusive (CloudWatch API Reference, GetMetricData): a window ending on a
        // period boundary does not return the period that starts there.
        let mut cw = CloudWatch::default();
        traffic(&mut cw, 0, 5, 0.1);
        let input = json!({
            "StartTime": T / 1_000, "EndTime": T / 1_000 + 3,
            "MetricDataQueries": [{"Id": "m", "MetricStat": {"Period": 1, "Stat": "Sum",
                "Metric": {"Namespace": "AWS/SageMaker", "MetricName": "Invocation5XXErrors",
                    "Dimensions": [{"Name": "EndpointName", "Value": "e"}]}}}],
        });
        let out = cw.call("GetMetricData", &input, T + 5_000, &mut Vec::new());
        let out = crate::cbor::to_json(out.unwrap());
        let seconds: Vec<i64> = out["MetricDataResults"][0]["Timestamps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t.as_f64().unwrap() * 1_000.0).round() as i64 / 1_000 - T / 1_000)
            .collect();
        assert_eq!(
            seconds,
            vec![2, 1, 0],
            "newest first, none at EndTime: {out}"
        );
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
