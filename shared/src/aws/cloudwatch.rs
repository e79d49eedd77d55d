//! `Alarms` on CloudWatch: alarm states (DescribeAlarms, at most 100 names a call), the
//! green-scoped alarms built from the policy's templates (PutMetricAlarm, DeleteAlarms), and
//! metric data (GetMetricData) for summaries.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    AlarmType, ComparisonOperator as SdkComparison, CompositeAlarm, Dimension, HistoryItemType,
    Metric, MetricAlarm, MetricDataQuery, MetricStat, ScanBy, StateValue,
    Statistic as SdkStatistic,
};

use super::classify;
use crate::core::{AlarmState, AlarmView, Sample};
use crate::judge::{self, Period};
use crate::policy::{ComparedMetric, ComparisonOperator, Statistic, TreatMissingData};
use crate::ports::{Alarms, CountsQuery, ErrorKind, GreenAlarm, Metrics, PortError, PortResult};
use crate::preflight::{AlarmDefinition, AlarmMetric};
use crate::units::Timestamp;

/// DescribeAlarms and DeleteAlarms take at most this many names per call.
pub const MAX_NAMES_PER_CALL: usize = 100;

/// One metric statistic, as GetMetricData asks for it.
#[derive(Debug, Clone, Copy)]
pub struct MetricQuery<'a> {
    pub namespace: &'a str,
    pub metric: &'a str,
    pub dimensions: &'a [(&'a str, &'a str)],
    /// `Sum`, `Average`, `SampleCount`, `Minimum`, `Maximum` or a percentile (`p99`).
    pub stat: &'a str,
    pub period_secs: u32,
}

/// CloudWatch, through the SDK.
#[derive(Debug, Clone)]
pub struct CloudWatchAlarms {
    client: Client,
}

impl CloudWatchAlarms {
    pub fn new(client: Client) -> CloudWatchAlarms {
        CloudWatchAlarms { client }
    }

    /// The query's statistic per period between `start` and `end`, oldest first.
    pub async fn metric_data(
        &self,
        query: &MetricQuery<'_>,
        start: Timestamp,
        end: Timestamp,
    ) -> PortResult<Vec<(Timestamp, f64)>> {
        let MetricQuery {
            namespace,
            metric,
            dimensions,
            stat,
            period_secs,
        } = *query;
        let metric = Metric::builder()
            .namespace(namespace)
            .metric_name(metric)
            .set_dimensions(Some(
                dimensions.iter().map(|(n, v)| dimension(n, v)).collect(),
            ))
            .build();
        let query = MetricDataQuery::builder()
            .id("m1")
            .metric_stat(
                MetricStat::builder()
                    .metric(metric)
                    .period(i32::try_from(period_secs).unwrap_or(i32::MAX))
                    .stat(stat)
                    .build(),
            )
            .build();
        let out = self
            .client
            .get_metric_data()
            .metric_data_queries(query)
            .start_time(DateTime::from_millis(start.epoch_ms()))
            .end_time(DateTime::from_millis(end.epoch_ms()))
            .send()
            .await
            .map_err(|e| classify("cloudwatch:GetMetricData", &e))?;
        let mut points: Vec<(Timestamp, f64)> =
            out.metric_data_results()
                .iter()
                .flat_map(|r| {
                    r.timestamps().iter().zip(r.values()).filter_map(|(t, v)| {
                        Some((Timestamp::from_epoch_ms(t.to_millis().ok()?), *v))
                    })
                })
                .collect();
        points.sort_by_key(|(t, _)| *t);
        Ok(points)
    }
}

/// The named alarms that exist, of both kinds.
#[derive(Debug, Default)]
struct Described {
    metric: Vec<MetricAlarm>,
    composite: Vec<CompositeAlarm>,
}

impl CloudWatchAlarms {
    /// DescribeAlarms of the named alarms that exist, metric and composite ones (DescribeAlarms
    /// returns composite alarms only when `AlarmTypes` asks for them), at most 100 names a call.
    async fn described(&self, names: &[&str]) -> PortResult<Described> {
        let mut found = Described::default();
        for chunk in names.chunks(MAX_NAMES_PER_CALL) {
            let out = self
                .client
                .describe_alarms()
                .set_alarm_names(Some(chunk.iter().map(|n| (*n).to_owned()).collect()))
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .max_records(100)
                .send()
                .await
                .map_err(|e| classify("cloudwatch:DescribeAlarms", &e))?;
            found.metric.extend(out.metric_alarms().iter().cloned());
            found
                .composite
                .extend(out.composite_alarms().iter().cloned());
        }
        Ok(found)
    }
}

/// The single metric an alarm watches; `None` for an alarm on metric math.
fn metric_of(alarm: &MetricAlarm) -> Option<AlarmMetric> {
    let (Some(namespace), Some(metric_name)) = (alarm.namespace(), alarm.metric_name()) else {
        return None;
    };
    Some(AlarmMetric {
        namespace: namespace.to_owned(),
        metric_name: metric_name.to_owned(),
        statistic: alarm
            .statistic()
            .map(|s| s.as_str().to_owned())
            .or_else(|| alarm.extended_statistic().map(str::to_owned))
            .unwrap_or_default(),
        dimensions: alarm
            .dimensions()
            .iter()
            .map(|d| {
                let name = d.name().unwrap_or_default().to_owned();
                (name, d.value().unwrap_or_default().to_owned())
            })
            .collect(),
        comparison: alarm
            .comparison_operator()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        threshold: alarm.threshold().unwrap_or_default(),
        period_secs: alarm
            .period()
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(60),
    })
}

fn dimension(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

fn state(value: Option<&StateValue>) -> PortResult<AlarmState> {
    match value {
        Some(StateValue::Ok) => Ok(AlarmState::Ok),
        Some(StateValue::Alarm) => Ok(AlarmState::Alarm),
        Some(StateValue::InsufficientData) => Ok(AlarmState::InsufficientData),
        other => Err(PortError::new(
            ErrorKind::Refused,
            format!("DescribeAlarms returned an unknown StateValue {other:?}"),
        )),
    }
}

fn comparison(op: ComparisonOperator) -> SdkComparison {
    match op {
        ComparisonOperator::GreaterThanOrEqualToThreshold => {
            SdkComparison::GreaterThanOrEqualToThreshold
        }
        ComparisonOperator::GreaterThanThreshold => SdkComparison::GreaterThanThreshold,
        ComparisonOperator::LessThanThreshold => SdkComparison::LessThanThreshold,
        ComparisonOperator::LessThanOrEqualToThreshold => SdkComparison::LessThanOrEqualToThreshold,
    }
}

fn missing(treat: TreatMissingData) -> &'static str {
    match treat {
        TreatMissingData::Breaching => "breaching",
        TreatMissingData::NotBreaching => "notBreaching",
        TreatMissingData::Ignore => "ignore",
        TreatMissingData::Missing => "missing",
    }
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[async_trait]
impl Alarms for CloudWatchAlarms {
    async fn states(&self, names: &[&str]) -> PortResult<BTreeMap<String, AlarmView>> {
        let described = self.described(names).await?;
        let mut found = BTreeMap::new();
        // When the state last changed: StateTransitionedTimestamp, else StateUpdatedTimestamp
        // (which also moves when only the evaluation state does).
        let since = |transitioned: Option<&DateTime>, updated: Option<&DateTime>| {
            transitioned
                .or(updated)
                .and_then(|t| t.to_millis().ok())
                .map(Timestamp::from_epoch_ms)
        };
        let metric = described.metric.iter().map(|a| {
            let at = since(
                a.state_transitioned_timestamp(),
                a.state_updated_timestamp(),
            );
            (a.alarm_name(), a.state_value(), a.state_reason(), at)
        });
        let composite = described.composite.iter().map(|a| {
            let at = since(
                a.state_transitioned_timestamp(),
                a.state_updated_timestamp(),
            );
            (a.alarm_name(), a.state_value(), a.state_reason(), at)
        });
        for (name, value, reason, at) in metric.chain(composite) {
            if let Some(name) = name {
                let view = AlarmView {
                    state: state(value)?,
                    reason: reason.unwrap_or_default().to_owned(),
                    since: at,
                };
                found.insert(name.to_owned(), view);
            }
        }
        Ok(found)
    }

    async fn put_green_alarm(&self, alarm: GreenAlarm<'_>) -> PortResult<()> {
        let t = alarm.template;
        let request = self
            .client
            .put_metric_alarm()
            .alarm_name(alarm.alarm_name)
            .alarm_description(format!(
                "Created by Guardrails to watch variant {} of endpoint {} during a deployment; \
                 deleted when it ends.",
                alarm.variant_name, alarm.endpoint_name
            ))
            .namespace(&t.namespace)
            .metric_name(&t.metric_name)
            .dimensions(dimension("EndpointName", alarm.endpoint_name))
            .dimensions(dimension("VariantName", alarm.variant_name))
            .period(to_i32(t.period_in_seconds))
            .evaluation_periods(to_i32(t.evaluation_periods))
            .datapoints_to_alarm(to_i32(t.datapoints_to_alarm))
            .threshold(t.threshold)
            .comparison_operator(comparison(t.comparison_operator))
            .treat_missing_data(missing(t.treat_missing_data));
        let request = match &t.statistic {
            Statistic::Percentile(_) => request.extended_statistic(t.statistic.to_string()),
            named => request.statistic(SdkStatistic::from(named.to_string().as_str())),
        };
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("cloudwatch:PutMetricAlarm", &e))
    }

    async fn fired_since(
        &self,
        names: &[&str],
        since: Timestamp,
    ) -> PortResult<BTreeMap<String, (Timestamp, String)>> {
        let mut fired = BTreeMap::new();
        for name in names {
            let out = self
                .client
                .describe_alarm_history()
                .alarm_name(*name)
                .history_item_type(HistoryItemType::StateUpdate)
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .start_date(DateTime::from_millis(since.epoch_ms()))
                .scan_by(ScanBy::TimestampAscending)
                .max_records(100)
                .send()
                .await
                .map_err(|e| classify("cloudwatch:DescribeAlarmHistory", &e))?;
            // The first move into ALARM: HistoryData's newState, as CloudWatch writes it.
            let first = out.alarm_history_items().iter().find_map(|item| {
                let data: serde_json::Value = serde_json::from_str(item.history_data()?).ok()?;
                let new = data.get("newState")?;
                (new.get("stateValue")?.as_str()? == "ALARM").then(|| {
                    let at = item
                        .timestamp()
                        .and_then(|t| t.to_millis().ok())
                        .map_or(since, Timestamp::from_epoch_ms);
                    let reason = new
                        .get("stateReason")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    (at, reason)
                })
            });
            if let Some(first) = first {
                fired.insert((*name).to_owned(), first);
            }
        }
        Ok(fired)
    }

    async fn definitions(&self, names: &[&str]) -> PortResult<BTreeMap<String, AlarmDefinition>> {
        let described = self.described(names).await?;
        let mut found = BTreeMap::new();
        for alarm in &described.metric {
            if let Some(name) = alarm.alarm_name() {
                let definition = AlarmDefinition {
                    state: state(alarm.state_value())?,
                    metric: metric_of(alarm),
                };
                found.insert(name.to_owned(), definition);
            }
        }
        // A composite alarm has a rule, not a metric: its metric is not judged.
        for alarm in &described.composite {
            if let Some(name) = alarm.alarm_name() {
                let definition = AlarmDefinition {
                    state: state(alarm.state_value())?,
                    metric: None,
                };
                found.insert(name.to_owned(), definition);
            }
        }
        Ok(found)
    }

    async fn has_data(
        &self,
        alarm: &AlarmDefinition,
        since: Timestamp,
        until: Timestamp,
    ) -> PortResult<bool> {
        let Some(m) = &alarm.metric else {
            // Metric math: nothing single to ask about; assume fed rather than warn falsely.
            return Ok(true);
        };
        let dimensions: Vec<(&str, &str)> = m
            .dimensions
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let query = MetricQuery {
            namespace: &m.namespace,
            metric: &m.metric_name,
            dimensions: &dimensions,
            stat: "SampleCount",
            period_secs: m.period_secs.max(60),
        };
        let points = self.metric_data(&query, since, until).await?;
        Ok(points.iter().any(|(_, count)| *count > 0.0))
    }

    async fn delete_alarms(&self, names: &[String]) -> PortResult<()> {
        for chunk in names.chunks(MAX_NAMES_PER_CALL) {
            self.client
                .delete_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| classify("cloudwatch:DeleteAlarms", &e))?;
        }
        Ok(())
    }

    async fn raise(&self, name: &str, reason: &str) -> PortResult<()> {
        self.client
            .set_alarm_state()
            .alarm_name(name)
            .state_value(StateValue::Alarm)
            .state_reason(reason)
            .send()
            .await
            .map_err(|e| classify("cloudwatch:SetAlarmState", &e))?;
        Ok(())
    }
}

/// One series GetMetricData returns for the judge: `id`, and what it reads.
struct Wanted<'a> {
    id: &'static str,
    namespace: &'a str,
    metric: &'a str,
    /// The variant, and the fleet's config when read per fleet.
    side: (&'a str, Option<&'a str>),
    stat: String,
}

impl CloudWatchAlarms {
    /// Each wanted series per period of `[from, to)`, by id and period start (epoch ms). One
    /// call: the judge's queries are at most six, and the deployment's periods are bounded
    /// (`plan::MAX_JUDGED_PERIODS`) far below GetMetricData's 100,800 datapoints a call.
    async fn per_period(
        &self,
        endpoint: &str,
        wanted: &[Wanted<'_>],
        period_secs: u32,
        from: Timestamp,
        to: Timestamp,
    ) -> PortResult<BTreeMap<&'static str, BTreeMap<i64, f64>>> {
        let queries = wanted.iter().map(|w| {
            let metric = Metric::builder()
                .namespace(w.namespace)
                .metric_name(w.metric)
                .dimensions(dimension("EndpointName", endpoint))
                .dimensions(dimension("VariantName", w.side.0));
            let metric = match w.side.1 {
                Some(config) => metric.dimensions(dimension("EndpointConfigName", config)),
                None => metric,
            }
            .build();
            MetricDataQuery::builder()
                .id(w.id)
                .metric_stat(
                    MetricStat::builder()
                        .metric(metric)
                        .period(i32::try_from(period_secs).unwrap_or(i32::MAX))
                        .stat(&w.stat)
                        .build(),
                )
                .build()
        });
        let out = self
            .client
            .get_metric_data()
            .set_metric_data_queries(Some(queries.collect()))
            .start_time(DateTime::from_millis(from.epoch_ms()))
            .end_time(DateTime::from_millis(to.epoch_ms()))
            .send()
            .await
            .map_err(|e| classify("cloudwatch:GetMetricData", &e))?;
        let mut found: BTreeMap<&'static str, BTreeMap<i64, f64>> = BTreeMap::new();
        for result in out.metric_data_results() {
            let Some(w) = wanted.iter().find(|w| Some(w.id) == result.id()) else {
                continue;
            };
            let series = found.entry(w.id).or_default();
            for (t, v) in result.timestamps().iter().zip(result.values()) {
                if let Ok(ms) = t.to_millis() {
                    series.insert(ms, *v);
                }
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl Metrics for CloudWatchAlarms {
    async fn counts(&self, q: &CountsQuery<'_>) -> PortResult<Vec<Sample>> {
        const SAGEMAKER: &str = "AWS/SageMaker";
        let sum = |id, namespace, metric, side| Wanted {
            id,
            namespace,
            metric,
            side,
            stat: "Sum".to_owned(),
        };
        let g = (q.green_variant, q.fleets.map(|f| f.1));
        let b = (q.blue_variant, q.fleets.map(|f| f.0));
        let mut wanted = Vec::new();
        // Requests, and bad requests, on each side: (green requests, green bad, blue requests,
        // blue bad) as ids; "bad" may be the sum of two series (4xx and 5xx).
        match q.metric {
            ComparedMetric::ErrorRate { include_4xx } => {
                wanted.push(sum("ng", SAGEMAKER, "Invocations", g));
                wanted.push(sum("nb", SAGEMAKER, "Invocations", b));
                wanted.push(sum("bg", SAGEMAKER, "Invocation5XXErrors", g));
                wanted.push(sum("bb", SAGEMAKER, "Invocation5XXErrors", b));
                if *include_4xx {
                    wanted.push(sum("cg", SAGEMAKER, "Invocation4XXErrors", g));
                    wanted.push(sum("cb", SAGEMAKER, "Invocation4XXErrors", b));
                }
            }
            ComparedMetric::Custom {
                namespace,
                metric_name,
            } => {
                wanted.push(sum("ng", SAGEMAKER, "Invocations", g));
                wanted.push(sum("nb", SAGEMAKER, "Invocations", b));
                wanted.push(sum("bg", namespace, metric_name, g));
                wanted.push(sum("bb", namespace, metric_name, b));
            }
            ComparedMetric::Latency { percentile } => {
                // Blue's latency at the percentile over the whole window is the line; each
                // period's requests over it, on each side, come from CloudWatch's percentile
                // rank of that line (`PR(:x)`: the percentage of values at or under x).
                let window = u32::try_from(q.to.secs_since(q.from).max(1)).unwrap_or(u32::MAX);
                let whole = window.div_ceil(60).saturating_mul(60).max(60);
                let line = self
                    .per_period(
                        q.endpoint_name,
                        &[Wanted {
                            id: "line",
                            namespace: SAGEMAKER,
                            metric: "ModelLatency",
                            side: b,
                            stat: format!("p{percentile}"),
                        }],
                        whole,
                        q.from,
                        q.from.plus_secs(whole),
                    )
                    .await?;
                let Some(x) = line.get("line").and_then(|s| s.values().next().copied()) else {
                    return Ok(Vec::new());
                };
                for (id, side) in [("ng", g), ("nb", b)] {
                    wanted.push(Wanted {
                        id,
                        namespace: SAGEMAKER,
                        metric: "ModelLatency",
                        side,
                        stat: "SampleCount".to_owned(),
                    });
                }
                for (id, side) in [("rg", g), ("rb", b)] {
                    wanted.push(Wanted {
                        id,
                        namespace: SAGEMAKER,
                        metric: "ModelLatency",
                        side,
                        stat: format!("PR(:{x})"),
                    });
                }
            }
        }
        let found = self
            .per_period(q.endpoint_name, &wanted, q.period_secs, q.from, q.to)
            .await?;
        let at = |id: &str, t: i64| found.get(id).and_then(|s| s.get(&t)).copied();
        let mut times: Vec<i64> = found
            .iter()
            .filter(|(id, _)| matches!(**id, "ng" | "nb"))
            .flat_map(|(_, s)| s.keys().copied())
            .collect();
        times.sort_unstable();
        times.dedup();
        let samples = times
            .into_iter()
            .map(|t| {
                let n = |id| at(id, t).unwrap_or(0.0).max(0.0);
                let (green_bad, blue_bad) = match q.metric {
                    ComparedMetric::Latency { .. } => (
                        judge::slow_requests(n("ng"), at("rg", t).unwrap_or(100.0)),
                        judge::slow_requests(n("nb"), at("rb", t).unwrap_or(100.0)),
                    ),
                    _ => (n("bg") + n("cg"), n("bb") + n("cb")),
                };
                Sample {
                    at: Timestamp::from_epoch_ms(t),
                    counts: Period {
                        green_requests: n("ng"),
                        green_bad: green_bad.min(n("ng")),
                        blue_requests: n("nb"),
                        blue_bad: blue_bad.min(n("nb")),
                    },
                }
            })
            .collect();
        Ok(samples)
    }
}
