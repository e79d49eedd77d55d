//! Synthetic traffic: while an endpoint serves, every tick records per-variant `Invocations`,
//! `Invocation5XXErrors` and `ModelLatency` (namespace `AWS/SageMaker`, dimensions
//! `EndpointName` and `VariantName`) in proportion to the variant weights, with the error rate
//! and latency set per model, so alarms fire and the judge compares from data as on AWS.
//!
//! The counts are noisy as real traffic is: each variant's requests in a tick are Poisson with
//! the weight's share of the tick's rate as mean, its 5xx responses binomial over those
//! requests at the model's error rate, and its latencies log-normal around the model's typical
//! latency (a spread of 25%, the usual shape of service latencies). The noise is seeded, so a
//! run's numbers follow from its ticks.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Binomial, Distribution, LogNormal, Poisson};

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

/// The seeded randomness of the traffic.
#[derive(Debug, Clone)]
pub struct Noise(StdRng);

impl Default for Noise {
    fn default() -> Noise {
        Noise::seeded(0x5eed)
    }
}

impl Noise {
    pub fn seeded(seed: u64) -> Noise {
        Noise(StdRng::seed_from_u64(seed))
    }

    fn poisson(&mut self, mean: f64) -> f64 {
        match Poisson::new(mean) {
            Ok(p) if mean > 0.0 => p.sample(&mut self.0),
            _ => 0.0,
        }
    }

    fn binomial(&mut self, n: f64, p: f64) -> f64 {
        // n is a whole count of requests, far below u64::MAX.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let trials = n.max(0.0) as u64;
        match Binomial::new(trials, p.clamp(0.0, 1.0)) {
            Ok(b) => b.sample(&mut self.0) as f64,
            Err(_) => 0.0,
        }
    }

    fn latencies(&mut self, typical: f64, n: usize) -> Vec<f64> {
        match LogNormal::new(typical.max(f64::MIN_POSITIVE).ln(), LATENCY_SPREAD) {
            Ok(d) => (0..n).map(|_| d.sample(&mut self.0)).collect(),
            Err(_) => vec![typical; n],
        }
    }
}

/// The log-normal's sigma: latencies mostly within 25% of the typical value.
const LATENCY_SPREAD: f64 = 0.25;
/// Latency samples recorded per variant and tick (CloudWatch computes percentiles from them).
const LATENCY_SAMPLES: f64 = 100.0;

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
    noise: &mut Noise,
    now: Ms,
) {
    for (endpoint, variants) in sagemaker.serving() {
        for (variant, model, share, config) in variants {
            let n = noise.poisson(f64::from(requests) * share);
            if n < 1.0 {
                continue;
            }
            let behaviour = behaviours.get(&model).copied().unwrap_or_default();
            let errors = noise.binomial(n, behaviour.error_rate);
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
            // Latency in microseconds, as SageMaker reports it.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let kept = n.min(LATENCY_SAMPLES) as usize;
            let samples = noise.latencies(behaviour.latency_ms * 1_000.0, kept);
            record(
                cloudwatch,
                keys("ModelLatency", &endpoint, &variant, &config),
                &Datapoint::values(now, &samples),
            );
        }
    }
}
