//! Endpoints: creating, updating, reweighting and deleting them, asynchronously as on AWS, with
//! the fleets each change provisions (`fleets`) and the account's instance quotas checked
//! before it begins (`rules::over_quota`). A change to a busy endpoint is refused (`Cannot
//! update in-progress endpoint`); a failed endpoint only accepts DeleteEndpoint.
//!
//! Fleets: CreateEndpoint and UpdateEndpoint provision a new fleet for every variant of the
//! config they deploy; the old fleets go when the update succeeds, the new ones when it fails.
//! Under a `DeploymentConfig` (`rollout`), blue/green provisions the whole new fleet before the
//! first shift and removes the old one at the end (the new one on a rollback); rolling grows
//! the new fleet and shrinks the old one batch by batch. UpdateEndpointWeightsAndCapacities
//! resizes the serving fleet in place.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::rules;
use super::{
    Change, Endpoint, LiveVariant, Outcome, Pending, SageMaker, Serving, arn, not_found, str_field,
};
use crate::events::Outgoing;
use crate::rollout::{Durations, Rollout, Tick};
use crate::{ApiError, Ms};

/// Instances a change asks for, by instance type.
type Delta = BTreeMap<String, u32>;

impl SageMaker {
    /// Instances of `instance_type` running on every endpoint of the account.
    fn used(&self, instance_type: &str) -> u32 {
        self.endpoints
            .values()
            .map(|e| e.fleets.running_of(instance_type))
            .sum()
    }

    /// Refuses a change that would run more instances of a type than the account's quota,
    /// counting the fleets running now (old and new ones during an update) and `delta`.
    fn check_quotas(&self, delta: &Delta) -> Result<(), ApiError> {
        for (instance_type, &more) in delta {
            let quota = self.quota(instance_type);
            let used = self.used(instance_type);
            if more > 0 && used.saturating_add(more) > quota {
                return Err(rules::over_quota(instance_type, quota, used, more));
            }
        }
        Ok(())
    }

    pub(super) fn create_endpoint(
        &mut self,
        input: &Value,
        now: Ms,
        events: &mut Vec<Outgoing>,
    ) -> Result<Value, ApiError> {
        let name = str_field(input, "EndpointName")?;
        rules::name(name, "endpointName")?;
        let config = str_field(input, "EndpointConfigName")?;
        // Names are unique without regard to case (their ARNs are lower case).
        if self.endpoints.keys().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(ApiError::validation(format!(
                "Cannot create already existing endpoint \"{}\".",
                arn("endpoint", name)
            )));
        }
        let variants = self.live_variants(config)?;
        self.check_quotas(&fleet_sizes(&variants))?;
        let outcome = self.next_outcome.remove(name).unwrap_or(Outcome::Succeeds);
        let mut endpoint = Endpoint {
            name: name.to_owned(),
            status: "Creating",
            config: config.to_owned(),
            variants: variants.clone(),
            failure_reason: None,
            pending: None,
            last_deployment_config: None,
            created: now,
            modified: now,
            fleets: super::fleets::Fleets::default(),
            serving: Vec::new(),
        };
        let new_fleets = endpoint.provision(config, &variants, now);
        endpoint.pending = Some(Pending {
            change: Change::Config(config.to_owned(), variants.clone()),
            done_at: now + self.delays.create_ms,
            outcome,
            new_fleets,
        });
        events.push(Outgoing::endpoint_state(&endpoint));
        self.endpoints.insert(name.to_owned(), endpoint);
        self.keep_tags(&arn("endpoint", name), input);
        Ok(json!({ "EndpointArn": arn("endpoint", name) }))
    }

    fn updatable(&mut self, name: &str) -> Result<&mut Endpoint, ApiError> {
        let endpoint = self
            .endpoints
            .get_mut(name)
            .ok_or_else(|| not_found("endpoint", name))?;
        match endpoint.status {
            "Creating" | "Updating" | "SystemUpdating" | "RollingBack" | "Deleting" => {
                Err(ApiError::validation(format!(
                    "Cannot update in-progress endpoint \"{}\".",
                    arn("endpoint", name)
                )))
            }
            "Failed" => Err(ApiError::validation(format!(
                "Cannot update failed endpoint \"{}\": only DeleteEndpoint is allowed.",
                arn("endpoint", name)
            ))),
            _ => Ok(endpoint),
        }
    }

    pub(super) fn update_endpoint(
        &mut self,
        input: &Value,
        now: Ms,
        events: &mut Vec<Outgoing>,
    ) -> Result<Value, ApiError> {
        let name = str_field(input, "EndpointName")?;
        let config = str_field(input, "EndpointConfigName")?;
        let new_variants = self.live_variants(config)?;
        let current = self.updatable(name)?.variants.clone();
        let new_variants = super::scaling::retained(input, &current, new_variants);
        self.check_scalable(name, &current, &new_variants)?;
        let delays = self.delays;
        let retain = input
            .get("RetainDeploymentConfig")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let given = input.get("DeploymentConfig").cloned();
        let current_config = self.updatable(name)?.config.clone();
        if self.is_async(&current_config) && !self.is_async(config) {
            return Err(rules::async_dropped(name));
        }
        let endpoint = self.updatable(name)?;
        let deployment_config = match (given, retain) {
            (Some(_), true) => {
                return Err(ApiError::validation(
                    "DeploymentConfig and RetainDeploymentConfig cannot both be set",
                ));
            }
            (Some(c), false) => Some(c),
            (None, true) => endpoint.last_deployment_config.clone(),
            (None, false) => None,
        };
        let guarded = deployment_config.as_ref().is_some_and(|c| {
            c.get("BlueGreenUpdatePolicy").is_some() || c.get("RollingUpdatePolicy").is_some()
        });
        let change = if guarded {
            let durations = Durations {
                provision_ms: delays.update_ms,
                shift_ms: delays.weights_ms,
            };
            let rollout = Rollout::new(
                deployment_config.as_ref().unwrap_or(&Value::Null),
                (&endpoint.config, &endpoint.variants),
                (config, new_variants.clone()),
                now,
                durations,
                Outcome::Succeeds,
            )
            .map_err(ApiError::validation)?;
            Change::Rollout(Box::new(rollout))
        } else {
            Change::Config(config.to_owned(), new_variants.clone())
        };
        // What the update launches before anything goes: the new fleets (a rolling update's
        // first batch).
        let delta = match &change {
            Change::Rollout(r) => r.first_launch(&new_variants),
            _ => fleet_sizes(&new_variants),
        };
        self.check_quotas(&delta)?;
        let outcome = self.next_outcome.remove(name).unwrap_or(Outcome::Succeeds);
        let endpoint = self.updatable(name)?;
        let change = match change {
            Change::Rollout(mut r) => {
                r.set_outcome(outcome.clone());
                Change::Rollout(r)
            }
            other => other,
        };
        if deployment_config.is_some() {
            endpoint.last_deployment_config = deployment_config;
        }
        let done_at = match change {
            // A rollout ends when its own steps do (`advance_rollout`).
            Change::Rollout(_) => Ms::MAX,
            _ => now + delays.update_ms,
        };
        let launching = match &change {
            Change::Rollout(r) => r.new_fleet_sizes(&new_variants),
            _ => new_variants.clone(),
        };
        let new_fleets = endpoint.provision(config, &launching, now);
        endpoint.begin("Updating", change, done_at, outcome, now, events);
        if let Some(p) = endpoint.pending.as_mut() {
            p.new_fleets = new_fleets;
        }
        if guarded {
            events.push(Outgoing::deployment_state(endpoint));
        }
        Ok(json!({ "EndpointArn": arn("endpoint", name) }))
    }

    pub(super) fn update_weights(
        &mut self,
        input: &Value,
        now: Ms,
        events: &mut Vec<Outgoing>,
    ) -> Result<Value, ApiError> {
        let name = str_field(input, "EndpointName")?;
        let delay = self.delays.weights_ms;
        let mut delta = Delta::new();
        {
            let endpoint = self.updatable(name)?;
            for d in input
                .get("DesiredWeightsAndCapacities")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let variant = str_field(d, "VariantName")?;
                let Some(live) = endpoint.variants.iter().find(|v| v.name == variant) else {
                    return Err(ApiError::validation(format!(
                        "The variant name(s) [{variant}] is/are not present in the endpoint."
                    )));
                };
                if let Some(n) = d
                    .get("DesiredInstanceCount")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                {
                    *delta.entry(live.instance_type.clone()).or_default() +=
                        n.saturating_sub(live.instances);
                }
            }
        }
        self.check_quotas(&delta)?;
        let endpoint = self.updatable(name)?;
        let mut changes = Vec::new();
        for d in input
            .get("DesiredWeightsAndCapacities")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let variant = str_field(d, "VariantName")?;
            let Some(live) = endpoint.variants.iter_mut().find(|v| v.name == variant) else {
                return Err(ApiError::validation(format!(
                    "The variant name(s) [{variant}] is/are not present in the endpoint."
                )));
            };
            let weight = d.get("DesiredWeight").and_then(Value::as_f64);
            let count = d
                .get("DesiredInstanceCount")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok());
            if weight.is_some_and(|w| w < 0.0) {
                return Err(ApiError::validation("DesiredWeight must be at least 0"));
            }
            if let Some(w) = weight {
                live.desired_weight = w;
            }
            if let Some(n) = count {
                live.desired_instances = n;
            }
            changes.push((variant.to_owned(), weight, count));
        }
        let change = Change::Weights(changes);
        endpoint.begin(
            "Updating",
            change,
            now + delay,
            Outcome::Succeeds,
            now,
            events,
        );
        Ok(json!({ "EndpointArn": arn("endpoint", name) }))
    }

    pub(super) fn delete_endpoint(
        &mut self,
        input: &Value,
        now: Ms,
        events: &mut Vec<Outgoing>,
    ) -> Result<Value, ApiError> {
        let name = str_field(input, "EndpointName")?;
        let endpoint = self
            .endpoints
            .get_mut(name)
            .ok_or_else(|| not_found("endpoint", name))?;
        if matches!(
            endpoint.status,
            "Creating" | "Updating" | "SystemUpdating" | "RollingBack"
        ) {
            return Err(ApiError::validation(format!(
                "Cannot update in-progress endpoint \"{}\".",
                arn("endpoint", name)
            )));
        }
        endpoint.begin(
            "Deleting",
            Change::Delete,
            now + 200,
            Outcome::Succeeds,
            now,
            events,
        );
        Ok(json!({}))
    }

    /// Finishes the changes due by `now` and moves SageMaker-run rollouts on; `in_alarm` tells
    /// whether a CloudWatch alarm is in ALARM.
    pub fn tick(&mut self, now: Ms, in_alarm: &dyn Fn(&str) -> bool, events: &mut Vec<Outgoing>) {
        for endpoint in self.endpoints.values_mut() {
            advance_rollout(endpoint, now, in_alarm, events);
        }
        let due: Vec<String> = self
            .endpoints
            .values()
            .filter(|e| e.pending.as_ref().is_some_and(|p| p.done_at <= now))
            .map(|e| e.name.clone())
            .collect();
        for name in due {
            self.finish(&name, now, events);
        }
    }

    fn finish(&mut self, name: &str, now: Ms, events: &mut Vec<Outgoing>) {
        let Some(pending) = self.endpoints.get_mut(name).and_then(|e| e.pending.take()) else {
            return;
        };
        if matches!(pending.change, Change::Delete) {
            if let Some(mut gone) = self.endpoints.remove(name) {
                gone.remove_fleets(now);
                gone.status = "Deleted";
                events.push(Outgoing::endpoint_state(&gone));
            }
            return;
        }
        let new_variants = match &pending.change {
            Change::Config(_, variants) => Some(variants.clone()),
            Change::Rollout(rollout) => Some(rollout.new_variants.clone()),
            _ => None,
        };
        let Some(endpoint) = self.endpoints.get_mut(name) else {
            return;
        };
        endpoint.modified = now;
        match (&pending.change, &pending.outcome) {
            (Change::Config(config, _), Outcome::Succeeds) => {
                endpoint.status = "InService";
                endpoint.config = config.clone();
                endpoint.variants = new_variants.unwrap_or_default();
                endpoint.failure_reason = None;
                endpoint.switch_to(pending.new_fleets, now);
            }
            (Change::Config(..) | Change::Rollout(_), Outcome::ReturnsToOldConfig(reason)) => {
                endpoint.status = "InService";
                endpoint.failure_reason = Some(reason.clone());
                endpoint.drop_fleets(&pending.new_fleets, now);
            }
            (_, Outcome::Fails(reason)) => {
                endpoint.status = "Failed";
                endpoint.failure_reason = Some(reason.clone());
                endpoint.drop_fleets(&pending.new_fleets, now);
            }
            (Change::Weights(changes), _) => {
                endpoint.status = "InService";
                for (variant, weight, count) in changes {
                    if let Some(live) = endpoint.variants.iter_mut().find(|v| v.name == *variant) {
                        if let Some(w) = weight {
                            live.weight = *w;
                        }
                        if let Some(n) = count {
                            live.instances = *n;
                        }
                    }
                    if let Some(n) = count {
                        endpoint.resize_serving(variant, *n, now);
                    }
                }
            }
            (Change::Delete | Change::Config(..) | Change::Rollout(_), _) => {}
        }
        events.push(Outgoing::endpoint_state(endpoint));
    }

    /// For each serving endpoint, which variant (and model) gets which share of requests now.
    pub fn serving(&self) -> Vec<(String, Vec<Serving>)> {
        self.endpoints
            .values()
            .filter(|e| {
                matches!(
                    e.status,
                    "InService" | "Updating" | "SystemUpdating" | "RollingBack"
                )
            })
            .map(|e| (e.name.clone(), e.shares()))
            .collect()
    }
}

/// The instances of each type `variants` run.
fn fleet_sizes(variants: &[LiveVariant]) -> Delta {
    let mut sizes = Delta::new();
    for v in variants {
        *sizes.entry(v.instance_type.clone()).or_default() += v.instances;
    }
    sizes
}

impl Endpoint {
    /// Starts an asynchronous change: the endpoint is `status` until `done_at`, and says so
    /// in a "SageMaker Endpoint State Change" event.
    fn begin(
        &mut self,
        status: &'static str,
        change: Change,
        done_at: Ms,
        outcome: Outcome,
        now: Ms,
        events: &mut Vec<Outgoing>,
    ) {
        self.status = status;
        self.modified = now;
        self.pending = Some(Pending {
            change,
            done_at,
            outcome,
            new_fleets: Vec::new(),
        });
        events.push(Outgoing::endpoint_state(self));
    }

    /// New fleets for `variants` of `config`: `(variant, fleet id)`.
    fn provision(&mut self, config: &str, variants: &[LiveVariant], now: Ms) -> Vec<(String, u32)> {
        variants
            .iter()
            .map(|v| {
                let id = self
                    .fleets
                    .provision(config, &v.name, &v.instance_type, v.instances, now);
                (v.name.clone(), id)
            })
            .collect()
    }

    /// The update succeeded: the old fleets go, the new ones serve.
    fn switch_to(&mut self, new_fleets: Vec<(String, u32)>, now: Ms) {
        for (_, id) in std::mem::take(&mut self.serving) {
            self.fleets.remove(id, now);
        }
        self.serving = new_fleets;
    }

    /// The update failed: its new fleets go.
    fn drop_fleets(&mut self, new_fleets: &[(String, u32)], now: Ms) {
        for (_, id) in new_fleets {
            self.fleets.remove(*id, now);
        }
    }

    fn remove_fleets(&mut self, now: Ms) {
        let ids: Vec<u32> = self.fleets.fleets.iter().map(|f| f.id).collect();
        for id in ids {
            self.fleets.remove(id, now);
        }
    }

    fn resize_serving(&mut self, variant: &str, instances: u32, now: Ms) {
        if let Some((_, id)) = self.serving.iter().find(|(v, _)| v == variant) {
            self.fleets.resize(*id, instances, now);
        }
    }

    /// Which variant (and model) of which fleet gets which share of requests now.
    fn shares(&self) -> Vec<Serving> {
        let total: f64 = self.variants.iter().map(|v| v.weight.max(0.0)).sum();
        let new_share = match &self.pending {
            Some(Pending {
                change: Change::Rollout(r),
                ..
            }) => Some((r.new_share(), r)),
            _ => None,
        };
        let old_share = 1.0 - new_share.map_or(0.0, |(s, _)| s);
        let mut shares: Vec<Serving> = self
            .variants
            .iter()
            .map(|v| {
                let share = if total > 0.0 {
                    v.weight.max(0.0) / total
                } else {
                    0.0
                };
                (
                    v.name.clone(),
                    v.model.clone(),
                    share * old_share,
                    self.config.clone(),
                )
            })
            .collect();
        // During a SageMaker-run rollout the new fleet serves its share beside the old.
        if let Some((share, rollout)) = new_share {
            let new_total: f64 = rollout.new_variants.iter().map(|v| v.weight.max(0.0)).sum();
            for v in &rollout.new_variants {
                let part = if new_total > 0.0 {
                    v.weight.max(0.0) / new_total
                } else {
                    0.0
                };
                shares.push((
                    v.name.clone(),
                    v.model.clone(),
                    share * part,
                    rollout.new_config.clone(),
                ));
            }
        }
        shares
    }
}

/// Moves a SageMaker-run rollout of `e` on, its fleets with it, ending it when it is done.
fn advance_rollout(
    e: &mut Endpoint,
    now: Ms,
    in_alarm: &dyn Fn(&str) -> bool,
    events: &mut Vec<Outgoing>,
) {
    let Some(Pending {
        change: Change::Rollout(rollout),
        new_fleets,
        ..
    }) = &mut e.pending
    else {
        return;
    };
    let tick = rollout.tick(now, in_alarm);
    let new = (rollout.new_config.clone(), rollout.new_variants.clone());
    let counts = rollout.fleet_counts();
    let new_fleets = new_fleets.clone();
    if tick == Tick::Same {
        return;
    }
    e.modified = now;
    // A rolling update grows the new fleet and shrinks the old one batch by batch.
    if let Some((old, fresh)) = counts {
        for (variant, id) in &new_fleets {
            e.fleets.resize(*id, fresh, now);
            e.resize_serving(variant, old, now);
        }
    }
    if tick == Tick::Moved {
        events.push(Outgoing::deployment_state(e));
        return;
    }
    e.pending = None;
    match tick {
        Tick::Succeeded => {
            e.status = "InService";
            (e.config, e.variants) = new;
            e.failure_reason = None;
            e.switch_to(new_fleets, now);
        }
        Tick::ReturnedToOld(reason) => {
            e.status = "InService";
            e.failure_reason = Some(reason);
            e.drop_fleets(&new_fleets, now);
            let full: Vec<(String, u32)> = e
                .variants
                .iter()
                .map(|v| (v.name.clone(), v.instances))
                .collect();
            for (variant, n) in full {
                e.resize_serving(&variant, n, now);
            }
        }
        Tick::Failed(reason) => {
            e.status = "Failed";
            e.failure_reason = Some(reason);
            e.drop_fleets(&new_fleets, now);
        }
        Tick::RollbackFailed(reason) => {
            // Serving a mix: both fleets stay.
            e.status = "UpdateRollbackFailed";
            e.failure_reason = Some(reason);
        }
        Tick::Same | Tick::Moved => {}
    }
    events.push(Outgoing::deployment_state(e));
    events.push(Outgoing::endpoint_state(e));
}
