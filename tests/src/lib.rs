//! Helpers shared by the integration tests: a deterministic stand-in for an endpoint on
//! virtual time, a runner that tells a deployment's story with the real core, and fixtures.

// Test support: a fixture that cannot be built should stop the test loudly.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

pub mod flow;
pub mod harness;
pub mod local;
pub mod sim;
pub mod transcript;
pub mod world;

use std::path::PathBuf;

use guardrails::plan::{Fleet, FleetVariant, GreenSpec, Plan};
use guardrails::policy::Policy;
use guardrails::units::Timestamp;

/// A fixed start time, so transcripts do not depend on the clock.
pub const T0: Timestamp = Timestamp::from_epoch_ms(1_790_000_000_000);

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// A policy from `examples/policies/`.
pub fn example_policy(file: &str) -> Policy {
    let path = repo_root().join("examples/policies").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Policy::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The sample fleet: endpoint `fraud-scorer` serving `fraud-scorer-v1` on `instances`
/// instances, and green `fraud-scorer-v2` of the same size.
pub fn fleet_and_green(instances: u32) -> (Fleet, GreenSpec) {
    let fleet = Fleet {
        endpoint_name: "fraud-scorer".to_owned(),
        config_name: "fraud-scorer-v1".to_owned(),
        variants: vec![FleetVariant {
            variant_name: "AllTraffic".to_owned(),
            model_name: String::new(),
            instance_type: "ml.m5.xlarge".to_owned(),
            instance_count: instances,
        }],
    };
    let green = GreenSpec {
        variant_name: "v2".to_owned(),
        model_name: "fraud-scorer-v2".to_owned(),
        instance_type: "ml.m5.xlarge".to_owned(),
        instance_count: instances,
    };
    (fleet, green)
}

/// The plan of `policy` for the sample fleet.
pub fn sample_plan(policy: &Policy, instances: u32) -> Plan {
    let (fleet, green) = fleet_and_green(instances);
    Plan::new("d1", policy, &fleet, &green).unwrap_or_else(|e| panic!("{e}"))
}
