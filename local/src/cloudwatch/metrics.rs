//! CloudWatch's metric data: datapoints as PutMetricData records them (values, statistic sets),
//! the statistics CloudWatch computes over a period (Sum, Average, SampleCount, Minimum,
//! Maximum, percentiles from the samples kept), and GetMetricData over metric statistics and
//! metric math, newest first as CloudWatch returns them by default.

use ciborium::Value as Cbor;
use serde_json::Value;

use super::math::{self, QuerySource};
use super::{CloudWatch, dimensions, ms_of, required, required_str};
use crate::cbor::{double, list, map, text, timestamp};
use crate::{ApiError, Ms};

/// The most samples kept per datapoint for percentiles.
const MAX_SAMPLES: usize = 1_000;

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
    /// `PR(low:high)`: the percentage of values above `low` and at most `high`, either bound
    /// optional ("the lower bound is exclusive and the upper bound is inclusive": CloudWatch
    /// User Guide, "CloudWatch statistics definitions", Percentile rank).
    PercentileRank(Option<f64>, Option<f64>),
}

impl Stat {
    pub(crate) fn parse(name: &str) -> Option<Stat> {
        Some(match name {
            "Average" => Stat::Average,
            "Sum" => Stat::Sum,
            "SampleCount" => Stat::SampleCount,
            "Minimum" => Stat::Minimum,
            "Maximum" => Stat::Maximum,
            rank if rank.starts_with("PR(") => {
                let inner = rank.strip_prefix("PR(")?.strip_suffix(')')?;
                let (low, high) = inner.split_once(':')?;
                let bound = |b: &str| -> Option<Option<f64>> {
                    if b.is_empty() {
                        Some(None)
                    } else {
                        b.parse().ok().map(Some)
                    }
                };
                let (low, high) = (bound(low)?, bound(high)?);
                if low.is_none() && high.is_none() {
                    return None;
                }
                Stat::PercentileRank(low, high)
            }
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
            Stat::PercentileRank(low, high) => {
                let show = |b: &Option<f64>| b.map(|v| v.to_string()).unwrap_or_default();
                format!("PR({}:{})", show(low), show(high))
            }
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
            Stat::PercentileRank(low, high) => {
                let all: Vec<f64> = points
                    .iter()
                    .flat_map(|d| d.samples.iter().copied())
                    .collect();
                if all.is_empty() {
                    return None;
                }
                let within = all
                    .iter()
                    .filter(|v| low.is_none_or(|l| **v > l) && high.is_none_or(|h| **v <= h))
                    .count();
                within as f64 / all.len() as f64 * 100.0
            }
        })
    }
}

impl CloudWatch {
    pub(super) fn put_metric_data(&mut self, input: &Value, now: Ms) -> Result<Cbor, ApiError> {
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

    pub(super) fn get_metric_data(&self, input: &Value) -> Result<Cbor, ApiError> {
        let start = ms_of(input.get("StartTime")).ok_or_else(|| {
            ApiError::new("MissingParameter", "The parameter StartTime is required.")
        })?;
        let end = ms_of(input.get("EndTime")).ok_or_else(|| {
            ApiError::new("MissingParameter", "The parameter EndTime is required.")
        })?;
        let queries = math::queries(
            required(input, "MetricDataQueries")?
                .as_array()
                .map_or(&[][..], Vec::as_slice),
        )
        .map_err(|e| ApiError::new("ValidationError", e))?;
        // The period of the data: the metric queries' (they share one in practice).
        let period_ms = queries
            .iter()
            .find_map(|q| match &q.source {
                QuerySource::Metric { period_ms, .. } => Some(*period_ms),
                QuerySource::Expression { .. } => None,
            })
            .unwrap_or(60_000)
            .max(1);
        let mut results = Vec::new();
        for query in queries.iter().filter(|q| q.return_data) {
            let mut timestamps = Vec::new();
            let mut values = Vec::new();
            // Newest first, as CloudWatch returns by default (TimestampDescending). EndTime is
            // exclusive: "results include data points up to the specified time stamp" (CloudWatch
            // API Reference, GetMetricData), so the last period is the one that starts before it.
            let mut bucket = start + (end - start - 1).div_euclid(period_ms) * period_ms;
            while bucket >= start && end > start {
                if let Some(v) =
                    self.query_value(&queries, &query.id, bucket, bucket + period_ms, 0)
                {
                    timestamps.push(timestamp(bucket));
                    values.push(double(v));
                }
                bucket -= period_ms;
            }
            let label = query.label.clone().unwrap_or_else(|| match &query.source {
                QuerySource::Metric { key, .. } => key.1.clone(),
                QuerySource::Expression { .. } => query.id.clone(),
            });
            results.push(map(vec![
                ("Id", text(&query.id)),
                ("Label", text(label)),
                ("Timestamps", list(timestamps)),
                ("Values", list(values)),
                ("StatusCode", text("Complete")),
            ]));
        }
        Ok(map(vec![("MetricDataResults", list(results))]))
    }

    /// The value of query `id` of `queries` for the period `[from, to)`; expressions follow the
    /// ids they name (at most a few levels deep).
    pub(crate) fn query_value(
        &self,
        queries: &[math::Query],
        id: &str,
        from: Ms,
        to: Ms,
        depth: u32,
    ) -> Option<f64> {
        if depth > 8 {
            return None;
        }
        let query = queries.iter().find(|q| q.id == id)?;
        match &query.source {
            QuerySource::Metric { key, stat, .. } => stat.of(&self.points_between(key, from, to)),
            QuerySource::Expression { expr, .. } => {
                expr.value(&|name| self.query_value(queries, name, from, to, depth + 1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_rank_counts_values_above_the_low_bound_and_at_most_the_high_one() {
        let point = Datapoint::values(0, &[100.0, 200.0, 300.0, 400.0]);
        let rank = |name: &str| Stat::parse(name).unwrap().of(&[&point]).unwrap();
        assert_eq!(rank("PR(:300)"), 75.0);
        assert_eq!(rank("PR(100:300)"), 50.0);
        assert_eq!(rank("PR(300:)"), 25.0);
        assert_eq!(Stat::parse("PR(:300)").unwrap().name(), "PR(:300)");
        assert_eq!(Stat::parse("PR(:)"), None);
        assert_eq!(Stat::parse("PR(a:3)"), None);
    }
}
