//! What a deployment costs in fleets of instances, as SageMaker provisions them: every
//! UpdateEndpoint deploys its config to a new fleet for every variant in it and removes the old
//! fleet after the switch; UpdateEndpointWeightsAndCapacities changes counts in place (API
//! reference of UpdateEndpoint; `../shared/spec/aws-rules.md`). The local stack counts the same
//! fleets (`guardrails-local`'s fleet accounting), and a test compares the two.
//!
//! - Variant engine: the UpdateEndpoint to the blue+green config provisions two fleets (blue's
//!   copy and green at the first step's size) while blue's original still runs; green grows in
//!   place step by step; the UpdateEndpoint to the final config (the new model under blue's
//!   variant name) provisions a third fleet while both others run, and that fleet then bakes
//!   alone. A rollback provisions blue's config once more.
//! - Native blue/green: one new fleet of green's size beside the old, for the whole update.
//! - Native rolling: one new fleet growing batch by batch beside the old one shrinking; a
//!   batch's old instances go once it has baked.

use serde::{Deserialize, Serialize};

use super::Plan;
use crate::policy::Engine;

/// The fleets of a successful deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetCost {
    /// Fleets SageMaker provisions on the way to success.
    pub provisionings: u32,
    /// The most instances running at once (old and new fleets during an update).
    pub peak_instances: u32,
    /// Instances running during each step's bake.
    pub bake_instances: Vec<u32>,
    /// Instances beyond the steady state (blue's fleet alone) over the configured bakes, in
    /// instance-seconds.
    pub extra_instance_secs: u64,
    /// Fleets a rollback provisions besides.
    pub rollback_provisionings: u32,
    /// Variant engine: the most instances at once while the blue+green config is provisioned
    /// (blue's, blue's copy and green's first step).
    #[serde(default)]
    pub provision_peak: u32,
    /// Variant engine: the most instances at once while the final config is provisioned (blue's
    /// copy and green on blue+green, and the final fleet).
    #[serde(default)]
    pub finish_peak: u32,
    /// Variant engine: the instances of the final fleet during its bake.
    #[serde(default)]
    pub final_bake_instances: u32,
}

impl FleetCost {
    pub fn extra_instance_hours(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let secs = self.extra_instance_secs as f64;
        secs / 3_600.0
    }
}

/// The fleets `plan` provisions and runs.
pub fn of(plan: &Plan) -> FleetCost {
    let blue = plan.blue.instance_count;
    let green = plan.green.instance_count;
    let rolling = plan
        .native_config
        .as_ref()
        .is_some_and(|c| c.rolling_update_policy.is_some());
    let bake_instances: Vec<u32> = match (plan.engine, rolling) {
        (Engine::Variant, _) => plan
            .steps
            .iter()
            .map(|s| blue + s.green_instances)
            .collect(),
        (Engine::Native, false) => plan.steps.iter().map(|_| blue + green).collect(),
        (Engine::Native, true) => plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let old = if i == 0 {
                    blue
                } else {
                    plan.steps[i - 1].blue_instances
                };
                old + s.green_instances
            })
            .collect(),
    };
    let extra_instance_secs: u64 = plan
        .steps
        .iter()
        .zip(&bake_instances)
        .map(|(s, n)| u64::from(n.saturating_sub(blue)) * u64::from(s.bake_secs))
        .sum();
    let during_bakes = bake_instances.iter().copied().max().unwrap_or(blue);
    let (provisionings, peak_instances, rollback_provisionings) = match plan.engine {
        Engine::Variant => {
            let first = plan.steps.first().map_or(1, |s| s.green_instances);
            let provisioning = blue + blue + first;
            let removing_blue = blue + green + green;
            (3, provisioning.max(removing_blue).max(during_bakes), 1)
        }
        Engine::Native => (1, during_bakes, 0),
    };
    let (provision_peak, finish_peak, final_bake_instances) = match plan.engine {
        Engine::Variant => {
            let first = plan.steps.first().map_or(1, |s| s.green_instances);
            (blue + blue + first, blue + green + green, green)
        }
        Engine::Native => (0, 0, 0),
    };
    let final_extra =
        u64::from(final_bake_instances.saturating_sub(blue)) * u64::from(plan.cutover_bake_secs);
    FleetCost {
        provisionings,
        peak_instances,
        bake_instances,
        extra_instance_secs: extra_instance_secs + final_extra,
        rollback_provisionings,
        provision_peak,
        finish_peak,
        final_bake_instances,
    }
}
