//! Synthetic traffic: while an endpoint serves, every tick records per-variant `Invocations`,
//! `Invocation5XXErrors` and `ModelLatency` (namespace `AWS/SageMaker`, dimensions
//! `EndpointName` and `VariantName`) in proportion to the variant weights, with the error rate
//! and latency set per model, so alarms fire from data as on AWS.

use std::collections::BTreeMap;

use crate::Ms;
use crate::cloudwatch::{CloudWatch, Datapoint, MetricKey};
use crate::sagemaker::SageMaker;

/// How a model behaves under traffic.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Behaviour {
    /// Fraction of requests answered with a 5xx, 0..=1.
    #[serde(default)]
    pub error_rate: f64,
    /// Typical model latency in milliseconds.
    #[serde(default = "default_latency_ms")]
    pub latency_ms: f64,
}

fn default_latency_ms() -> f64 {
    20.0
}

impl Default for Behaviour {
    fn default() -> Behaviour {
        Behaviour {
            error_rate: 0.0,
            latency_ms: default_latency_ms(),
        }
    }
}

/// The series a datapoint goes to: per variant (`EndpointName`, `VariantName`) and, as
/// CloudWatch adds it for deployments, per fleet (`EndpointConfigName` as well).
fn keys(metric: &str, endpoint: &str, variant: &str, config: &str) -> [MetricKey; 2] {
    let per_variant = vec![
        ("EndpointName".to_owned(), endpoint.to_owned()),
        ("VariantName".to_owned(), variant.to_owned()),
    ];
    let mut per_fleet = per_variant.clone();
    per_fleet.insert(0, ("EndpointConfigName".to_owned(), config.to_owned()));
    [per_variant, per_fleet].map(|dims| ("AWS/SageMaker".to_owned(), metric.to_owned(), dims))
}

fn record(cloudwatch: &mut CloudWatch, keys: [MetricKey; 2], point: &Datapoint) {
    for key in keys {
        cloudwatch.record(key, point.clone());
    }
}

/// Records one tick of traffic: `requests` per endpoint, split by weight.
pub fn tick(
    sagemaker: &SageMaker,
    cloudwatch: &mut CloudWatch,
    behaviours: &BTreeMap<String, Behaviour>,
    requests: u32,
    now: Ms,
) {
    for (endpoint, variants) in sagemaker.serving() {
        for (variant, model, share, config) in variants {
            let n = (f64::from(requests) * share).round();
            if n < 1.0 {
                continue;
            }
            let behaviour = behaviours.get(&model).copied().unwrap_or_default();
            let errors = (n * behaviour.error_rate.clamp(0.0, 1.0)).round();
            record(
                cloudwatch,
                keys("Invocations", &endpoint, &variant, &config),
                &Datapoint::values(now, &[n]),
            );
            record(
                cloudwatch,
                keys("Invocation5XXErrors", &endpoint, &variant, &config),
                &Datapoint {
                    at: now,
                    count: n,
                    sum: errors,
                    min: if errors >= n { 1.0 } else { 0.0 },
                    max: if errors > 0.0 { 1.0 } else { 0.0 },
                    samples: Vec::new(),
                },
            );
            // Latency in microseconds, as SageMaker reports it, spread +-20% around the typical
            // value so that percentiles differ from the average.
            let typical_us = behaviour.latency_ms * 1_000.0;
            let samples: Vec<f64> = (0..20)
                .map(|i| typical_us * (0.8 + 0.4 * f64::from(i) / 19.0))
                .collect();
            record(
                cloudwatch,
                keys("ModelLatency", &endpoint, &variant, &config),
                &Datapoint::values(now, &samples),
            );
        }
    }
}
