//! CloudWatch's alarm operations (API reference): PutMetricAlarm (one metric and statistic, or
//! metric math in `Metrics`), PutCompositeAlarm, DescribeAlarms and DescribeAlarmHistory (metric
//! alarms only unless `AlarmTypes` asks for composite ones, "even if composite alarms exist";
//! the history's `StateUpdate` items with `ScanBy` and `MaxRecords` honoured), SetAlarmState and
//! DeleteAlarms on both kinds.

use ciborium::Value as Cbor;
use serde_json::Value;

use super::alarm::{Alarm, Source, StateUpdate, change_state};
use super::composite::{self, Composite};
use super::math::{self, QuerySource};
use super::{CloudWatch, Stat, dimensions, ms_of, required, required_str};
use crate::cbor::{double, int, list, map, text, timestamp};
use crate::events::Outgoing;
use crate::{ApiError, Ms};

/// DescribeAlarms' and DescribeAlarmHistory's largest page.
const MAX_RECORDS: usize = 100;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new("InvalidParameterValue", message)
}

/// The alarm types a request asks for (`AlarmTypes`): metric alarms alone by default.
fn types(input: &Value) -> (bool, bool) {
    match input.get("AlarmTypes").and_then(Value::as_array) {
        Some(kinds) => {
            let has = |k: &str| kinds.iter().any(|v| v.as_str() == Some(k));
            (has("MetricAlarm"), has("CompositeAlarm"))
        }
        None => (true, false),
    }
}

fn max_records(input: &Value) -> usize {
    input
        .get("MaxRecords")
        .and_then(Value::as_u64)
        .map_or(MAX_RECORDS, |n| usize::try_from(n).unwrap_or(MAX_RECORDS))
        .clamp(1, MAX_RECORDS)
}

impl CloudWatch {
    pub(super) fn put_metric_alarm(&mut self, input: &Value, now: Ms) -> Result<Cbor, ApiError> {
        let name = required_str(input, "AlarmName")?.to_owned();
        let (source, period) = if let Some(metrics) = input.get("Metrics").and_then(Value::as_array)
        {
            if input.get("MetricName").is_some() {
                return Err(ApiError::new(
                    "InvalidParameterCombination",
                    "Metrics and MetricName cannot both be given.",
                ));
            }
            let queries = math::queries(metrics).map_err(invalid)?;
            if queries.iter().filter(|q| q.return_data).count() != 1 {
                return Err(invalid(
                    "Exactly one element of the metrics list should return data.",
                ));
            }
            let period = queries
                .iter()
                .find_map(|q| match &q.source {
                    QuerySource::Metric { period_ms, .. } => Some(*period_ms / 1_000),
                    QuerySource::Expression { .. } => None,
                })
                .or_else(|| input.get("Period").and_then(Value::as_i64))
                .unwrap_or(60);
            (Source::Math { queries }, period)
        } else {
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
            let stat = Stat::parse(stat_name)
                .ok_or_else(|| invalid(format!("unknown statistic {stat_name}")))?;
            let period = required(input, "Period")?.as_i64().unwrap_or(60);
            (Source::Metric { key, stat }, period)
        };
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
            source,
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

    pub(super) fn put_composite_alarm(
        &mut self,
        input: &Value,
        now: Ms,
        events: &mut Vec<Outgoing>,
    ) -> Result<Cbor, ApiError> {
        let name = required_str(input, "AlarmName")?.to_owned();
        let rule_text = required_str(input, "AlarmRule")?.to_owned();
        let rule = composite::parse(&rule_text)
            .map_err(|e| invalid(format!("AlarmRule {rule_text:?} is not a valid rule: {e}")))?;
        let previous = self
            .composites
            .get(&name)
            .map(|c| (c.state, c.reason.clone(), c.updated, c.history.clone()));
        let (state, reason, updated, history) = previous.unwrap_or((
            "INSUFFICIENT_DATA",
            "Unchecked: Initial alarm creation".to_owned(),
            now,
            Vec::new(),
        ));
        self.composites.insert(
            name,
            Composite {
                name: required_str(input, "AlarmName")?.to_owned(),
                rule_text,
                rule,
                description: input
                    .get("AlarmDescription")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                state,
                reason,
                reason_data: String::new(),
                updated,
                history,
            },
        );
        // A composite alarm is judged at once from the alarms it names.
        self.evaluate_composites(now, events);
        Ok(map(vec![]))
    }

    pub(super) fn delete_alarms(&mut self, input: &Value) -> Result<Cbor, ApiError> {
        for name in required(input, "AlarmNames")?
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if let Some(a) = self.alarms.remove(name) {
                let kept = a
                    .history
                    .into_iter()
                    .map(|u| (a.name.clone(), "MetricAlarm", u));
                self.retired_history.extend(kept);
            }
            if let Some(c) = self.composites.remove(name) {
                let kept = c
                    .history
                    .into_iter()
                    .map(|u| (c.name.clone(), "CompositeAlarm", u));
                self.retired_history.extend(kept);
            }
        }
        Ok(map(vec![]))
    }

    /// `StateUpdate` items of one alarm (`AlarmName`) or all, between `StartDate` and `EndDate`,
    /// newest first unless `ScanBy` is `TimestampAscending`; other item types have no history.
    pub(super) fn describe_alarm_history(&self, input: &Value) -> Cbor {
        let name = input.get("AlarmName").and_then(Value::as_str);
        let kind = input.get("HistoryItemType").and_then(Value::as_str);
        let start = ms_of(input.get("StartDate")).unwrap_or(Ms::MIN);
        let end = ms_of(input.get("EndDate")).unwrap_or(Ms::MAX);
        // "If you omit this parameter, only metric alarms are returned" (API reference).
        let (metric_types, composite_types) = types(input);
        let mut updates: Vec<(&str, &'static str, &StateUpdate)> = Vec::new();
        if kind.is_none_or(|k| k == "StateUpdate") {
            if metric_types {
                for a in self
                    .alarms
                    .values()
                    .filter(|a| name.is_none_or(|n| a.name == n))
                {
                    updates.extend(
                        a.history
                            .iter()
                            .map(|u| (a.name.as_str(), "MetricAlarm", u)),
                    );
                }
            }
            if composite_types {
                for c in self
                    .composites
                    .values()
                    .filter(|c| name.is_none_or(|n| c.name == n))
                {
                    updates.extend(
                        c.history
                            .iter()
                            .map(|u| (c.name.as_str(), "CompositeAlarm", u)),
                    );
                }
            }
        }
        if kind.is_none_or(|k| k == "StateUpdate") {
            updates.extend(
                self.retired_history
                    .iter()
                    .filter(|(n, _, _)| name.is_none_or(|name| n == name))
                    .filter(|(_, t, _)| {
                        if *t == "MetricAlarm" {
                            metric_types
                        } else {
                            composite_types
                        }
                    })
                    .map(|(n, t, u)| (n.as_str(), *t, u)),
            );
        }
        updates.retain(|(_, _, u)| u.at >= start && u.at <= end);
        updates.sort_by_key(|(_, _, u)| u.at);
        if input.get("ScanBy").and_then(Value::as_str) != Some("TimestampAscending") {
            updates.reverse();
        }
        let items = updates
            .into_iter()
            .take(max_records(input))
            .map(|(alarm, alarm_type, u)| {
                let data = serde_json::json!({
                    "version": "1.0",
                    "oldState": { "stateValue": u.from, "stateReason": u.from_reason },
                    "newState": { "stateValue": u.to, "stateReason": u.reason },
                });
                map(vec![
                    ("AlarmName", text(alarm)),
                    ("AlarmType", text(alarm_type)),
                    ("Timestamp", timestamp(u.at)),
                    ("HistoryItemType", text("StateUpdate")),
                    (
                        "HistorySummary",
                        text(format!("Alarm updated from {} to {}", u.from, u.to)),
                    ),
                    ("HistoryData", text(data.to_string())),
                ])
            })
            .collect();
        map(vec![("AlarmHistoryItems", list(items))])
    }

    pub(super) fn describe_alarms(&self, input: &Value) -> Cbor {
        let names: Option<Vec<&str>> = input
            .get("AlarmNames")
            .and_then(Value::as_array)
            .map(|n| n.iter().filter_map(Value::as_str).collect());
        let prefix = input.get("AlarmNamePrefix").and_then(Value::as_str);
        let state = input.get("StateValue").and_then(Value::as_str);
        let wanted = |n: &str, s: &str| {
            names.as_ref().is_none_or(|list| list.contains(&n))
                && prefix.is_none_or(|p| n.starts_with(p))
                && state.is_none_or(|v| v == s)
        };
        let (metric_types, composite_types) = types(input);
        let limit = max_records(input);
        let metric: Vec<Cbor> = if metric_types {
            self.alarms
                .values()
                .filter(|a| wanted(&a.name, a.state))
                .take(limit)
                .map(describe_metric_alarm)
                .collect()
        } else {
            Vec::new()
        };
        let composite: Vec<Cbor> = if composite_types {
            self.composites
                .values()
                .filter(|c| wanted(&c.name, c.state))
                .take(limit)
                .map(|c| {
                    map(vec![
                        ("AlarmName", text(&c.name)),
                        (
                            "AlarmArn",
                            text(crate::iam::arn("cloudwatch", &format!("alarm:{}", c.name))),
                        ),
                        ("AlarmDescription", text(&c.description)),
                        ("AlarmRule", text(&c.rule_text)),
                        ("StateValue", text(c.state)),
                        ("StateReason", text(&c.reason)),
                        ("StateReasonData", text(&c.reason_data)),
                        ("StateUpdatedTimestamp", timestamp(c.updated)),
                        // The last change of StateValue (CloudWatch API Reference,
                        // CompositeAlarm); the local alarm updates its state only on a change.
                        ("StateTransitionedTimestamp", timestamp(c.updated)),
                    ])
                })
                .collect()
        } else {
            Vec::new()
        };
        map(vec![
            ("MetricAlarms", list(metric)),
            ("CompositeAlarms", list(composite)),
        ])
    }

    pub(super) fn set_alarm_state(
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
            other => return Err(invalid(format!("unknown state {other}"))),
        };
        let reason = required_str(input, "StateReason")?.to_owned();
        let data = input
            .get("StateReasonData")
            .and_then(Value::as_str)
            .unwrap_or("{}")
            .to_owned();
        if let Some(alarm) = self.alarms.get_mut(name) {
            if let Some(event) = change_state(alarm, state, reason, data, now) {
                events.push(event);
            }
        } else if let Some(c) = self.composites.get_mut(name) {
            if let Some(event) = composite::change_state(c, state, reason, data, now) {
                events.push(event);
            }
        } else {
            return Err(ApiError::new(
                "ResourceNotFound",
                format!("Alarm {name} not found"),
            ));
        }
        self.evaluate_composites(now, events);
        Ok(map(vec![]))
    }
}

fn describe_metric_alarm(a: &Alarm) -> Cbor {
    let mut fields = vec![
        ("AlarmName", text(&a.name)),
        ("AlarmArn", text(a.arn())),
        ("StateValue", text(a.state)),
        ("StateReason", text(&a.reason)),
        ("StateReasonData", text(&a.reason_data)),
        ("StateUpdatedTimestamp", timestamp(a.updated)),
        // "The date and time that the alarm's StateValue most recently changed" (CloudWatch
        // API Reference, MetricAlarm); the local alarm updates its state only on a change.
        ("StateTransitionedTimestamp", timestamp(a.updated)),
    ];
    let metric = |(namespace, metric, dims): &super::MetricKey| {
        map(vec![
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
        ])
    };
    match &a.source {
        Source::Metric { key, stat } => {
            let (namespace, name, dims) = key;
            fields.push(("Namespace", text(namespace)));
            fields.push(("MetricName", text(name)));
            fields.push((
                "Dimensions",
                list(
                    dims.iter()
                        .map(|(n, v)| map(vec![("Name", text(n)), ("Value", text(v))]))
                        .collect(),
                ),
            ));
            fields.push(match stat {
                Stat::Percentile(_) => ("ExtendedStatistic", text(stat.name())),
                _ => ("Statistic", text(stat.name())),
            });
            fields.push(("Period", int(a.period_ms / 1_000)));
        }
        Source::Math { queries } => {
            let described = queries
                .iter()
                .map(|q| {
                    let mut f = vec![("Id", text(&q.id))];
                    match &q.source {
                        QuerySource::Metric {
                            key,
                            stat_name,
                            period_ms,
                            ..
                        } => f.push((
                            "MetricStat",
                            map(vec![
                                ("Metric", metric(key)),
                                ("Period", int(period_ms / 1_000)),
                                ("Stat", text(stat_name)),
                            ]),
                        )),
                        QuerySource::Expression { text: e, .. } => f.push(("Expression", text(e))),
                    }
                    if let Some(label) = &q.label {
                        f.push(("Label", text(label)));
                    }
                    f.push(("ReturnData", Cbor::Bool(q.return_data)));
                    map(f)
                })
                .collect();
            fields.push(("Metrics", list(described)));
        }
    }
    fields.extend([
        ("EvaluationPeriods", int(a.evaluation_periods as i64)),
        ("DatapointsToAlarm", int(a.datapoints_to_alarm as i64)),
        ("Threshold", double(a.threshold)),
        ("ComparisonOperator", text(&a.comparison)),
        ("TreatMissingData", text(&a.treat_missing)),
    ]);
    map(fields)
}
