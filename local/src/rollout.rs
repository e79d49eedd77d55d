//! SageMaker's own deployment guardrails, as `../shared/spec/sagemaker-guardrails.md` §2 describes
//! them: an UpdateEndpoint with a `DeploymentConfig` provisions the new fleet, moves traffic in
//! the policy's steps (all at once, canary, linear) or replaces instances in batches (rolling),
//! bakes each step while reading the named alarms' state from the local CloudWatch, rolls back
//! on ALARM or at `MaximumExecutionTimeoutInSeconds`, and reports each stage in `VariantStatus`.
//!
//! Decisions where AWS documents nothing, made here and in the README: instance shares round up
//! (33% of 3 is 1); the timeout rolls back like an alarm; the FailureReason texts; Inf1 instance
//! types fall back to all at once with no final bake, as AWS documents.

use serde_json::{Value, json};

use crate::Ms;
use crate::sagemaker::{LiveVariant, Outcome};

/// What a rollout step does: the new fleet's share of requests and instances, then a bake.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    share: f64,
    new_instances: u32,
    bake_secs: u32,
    /// Which field the bake comes from, as SageMaker's status messages name it.
    bake_field: &'static str,
    canary: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    /// Launching new capacity for step `step`.
    Provisioning {
        step: usize,
        until: Ms,
    },
    ActivatingTraffic {
        step: usize,
        until: Ms,
    },
    Baking {
        step: usize,
        until: Ms,
    },
    /// Traffic goes back to the old fleet; then the endpoint is InService on the old config.
    RollingBack {
        until: Ms,
        reason: String,
    },
}

/// One deployment SageMaker runs.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub old_config: String,
    pub new_config: String,
    pub new_variants: Vec<LiveVariant>,
    rolling: bool,
    steps: Vec<Step>,
    alarms: Vec<String>,
    stage: Stage,
    started: Ms,
    deadline: Ms,
    /// How it ends, injected before it began.
    outcome: Outcome,
    durations: Durations,
    /// The instances of the fleet being replaced.
    old_instances: u32,
    /// A rolling update's new instances when its rollback began.
    new_at_rollback: u32,
}

/// How long SageMaker's own work takes, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Durations {
    pub provision_ms: Ms,
    pub shift_ms: Ms,
}

/// What happened in one tick.
#[derive(Debug, Clone, PartialEq)]
pub enum Tick {
    /// Nothing visible changed.
    Same,
    /// A new stage (a "Deployment State Change" event is due).
    Moved,
    /// The new config serves.
    Succeeded,
    /// Back on the old config with this FailureReason.
    ReturnedToOld(String),
    /// The endpoint is Failed with this reason.
    Failed(String),
    /// The rollback failed: UpdateRollbackFailed, serving a mix.
    RollbackFailed(String),
}

fn int(v: &Value, field: &str) -> Option<u32> {
    v.get(field)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

/// `CapacitySize` of a fleet of `fleet` instances, rounded up, at least 1, at most the fleet.
fn size(capacity: Option<&Value>, fleet: u32) -> Result<u32, String> {
    let capacity = capacity.ok_or("a CapacitySize is required")?;
    let value = int(capacity, "Value").ok_or("CapacitySize.Value is required")?;
    let count = match capacity.get("Type").and_then(Value::as_str) {
        Some("INSTANCE_COUNT") => value,
        Some("CAPACITY_PERCENT") => (u64::from(value) * u64::from(fleet))
            .div_ceil(100)
            .try_into()
            .unwrap_or(fleet),
        other => {
            return Err(format!(
                "CapacitySize.Type {other:?} is not INSTANCE_COUNT or CAPACITY_PERCENT"
            ));
        }
    };
    Ok(count.clamp(1, fleet.max(1)))
}

fn ratio(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        1.0
    } else {
        (f64::from(part) / f64::from(whole)).min(1.0)
    }
}

impl Rollout {
    /// The rollout `config` asks for, from the endpoint's `(config, fleet)` to the new one at
    /// `now`; an error is SageMaker's ValidationException message.
    pub fn new(
        config: &Value,
        (old_config, old): (&str, &[LiveVariant]),
        (new_config, new): (&str, Vec<LiveVariant>),
        now: Ms,
        durations: Durations,
        outcome: Outcome,
    ) -> Result<Rollout, String> {
        let old_names: Vec<&str> = old.iter().map(|v| v.name.as_str()).collect();
        let new_names: Vec<&str> = new.iter().map(|v| v.name.as_str()).collect();
        if old_names != new_names {
            return Err(format!(
                "A deployment with DeploymentConfig must keep the variant names: the endpoint \
                 has {old_names:?}, the new config {new_names:?}"
            ));
        }
        let fleet = old.first().map_or(1, |v| v.instances);
        let inf1 = new.iter().any(|v| v.instance_type.starts_with("ml.inf1"));
        let alarms = config
            .pointer("/AutoRollbackConfiguration/Alarms")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.get("AlarmName").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        let new_total = new.first().map_or(1, |v| v.instances);
        let (rolling, steps, timeout) = if let Some(r) = config.get("RollingUpdatePolicy") {
            if old.len() > 1 {
                return Err(
                    "Rolling updates are not supported for endpoints with multiple \
                            production variants"
                        .to_owned(),
                );
            }
            let batch = size(r.get("MaximumBatchSize"), fleet)?;
            let wait = int(r, "WaitIntervalInSeconds").unwrap_or(0);
            let batches = fleet.div_ceil(batch);
            let steps = (1..=batches)
                .map(|i| {
                    let replaced = (i * batch).min(fleet);
                    Step {
                        share: ratio(replaced, fleet),
                        new_instances: replaced,
                        bake_secs: wait,
                        bake_field: "WaitIntervalInSeconds",
                        canary: false,
                    }
                })
                .collect();
            (true, steps, int(r, "MaximumExecutionTimeoutInSeconds"))
        } else {
            let bg = config
                .get("BlueGreenUpdatePolicy")
                .cloned()
                .unwrap_or(Value::Null);
            let routing = bg
                .get("TrafficRoutingConfiguration")
                .cloned()
                .unwrap_or(Value::Null);
            let wait = int(&routing, "WaitIntervalInSeconds").unwrap_or(0);
            let final_bake = int(&bg, "TerminationWaitInSeconds").unwrap_or(0);
            let last = |share_of: u32| Step {
                share: 1.0,
                new_instances: new_total.max(share_of),
                bake_secs: if inf1 { 0 } else { final_bake },
                bake_field: "TerminationWaitInSeconds",
                canary: false,
            };
            let kind = routing
                .get("Type")
                .and_then(Value::as_str)
                .unwrap_or("ALL_AT_ONCE");
            let steps = match (kind, inf1) {
                (_, true) | ("ALL_AT_ONCE", _) => vec![last(0)],
                ("CANARY", _) => {
                    let canary = size(routing.get("CanarySize"), fleet)?;
                    vec![
                        Step {
                            share: ratio(canary, fleet),
                            new_instances: canary,
                            bake_secs: wait,
                            bake_field: "WaitIntervalInSeconds",
                            canary: true,
                        },
                        last(0),
                    ]
                }
                ("LINEAR", _) => {
                    let step = size(routing.get("LinearStepSize"), fleet)?;
                    let count = fleet.div_ceil(step);
                    let mut steps: Vec<Step> = (1..count)
                        .map(|i| Step {
                            share: ratio(i * step, fleet),
                            new_instances: i * step,
                            bake_secs: wait,
                            bake_field: "WaitIntervalInSeconds",
                            canary: false,
                        })
                        .collect();
                    steps.push(last(0));
                    steps
                }
                (other, _) => return Err(format!("TrafficRoutingConfiguration.Type {other:?}")),
            };
            (false, steps, int(&bg, "MaximumExecutionTimeoutInSeconds"))
        };
        let timeout_ms = Ms::from(timeout.unwrap_or(28_800)) * 1_000;
        Ok(Rollout {
            old_config: old_config.to_owned(),
            new_config: new_config.to_owned(),
            new_variants: new,
            rolling,
            steps,
            alarms,
            stage: Stage::Provisioning {
                step: 0,
                until: now + durations.provision_ms,
            },
            started: now,
            deadline: now + timeout_ms,
            outcome,
            durations,
            old_instances: fleet,
            new_at_rollback: 0,
        })
    }

    /// How the rollout ends (a fault injected beforehand).
    pub fn set_outcome(&mut self, outcome: Outcome) {
        self.outcome = outcome;
    }

    /// The new fleets as launched when the rollout begins: blue/green launches the whole new
    /// fleet before the first shift, rolling its first batch.
    pub fn new_fleet_sizes(&self, new: &[LiveVariant]) -> Vec<LiveVariant> {
        new.iter()
            .map(|v| LiveVariant {
                instances: if self.rolling {
                    self.step(0).new_instances
                } else {
                    v.instances
                },
                ..v.clone()
            })
            .collect()
    }

    /// The instances of each type the rollout launches when it begins.
    pub fn first_launch(&self, new: &[LiveVariant]) -> std::collections::BTreeMap<String, u32> {
        let mut sizes = std::collections::BTreeMap::new();
        for v in self.new_fleet_sizes(new) {
            *sizes.entry(v.instance_type.clone()).or_default() += v.instances;
        }
        sizes
    }

    /// A rolling update's fleets now: `(old instances, new instances)`: batch `i` is launched
    /// beside the old fleet, and the old fleet loses a batch once batch `i` has baked; rolling
    /// back launches the old capacity again. `None` for blue/green, whose fleets keep their
    /// size until the end.
    pub fn fleet_counts(&self) -> Option<(u32, u32)> {
        if !self.rolling {
            return None;
        }
        let replaced_before = |i: usize| {
            if i == 0 {
                0
            } else {
                self.step(i - 1).new_instances
            }
        };
        Some(match &self.stage {
            Stage::Provisioning { step, .. }
            | Stage::ActivatingTraffic { step, .. }
            | Stage::Baking { step, .. } => (
                self.old_instances.saturating_sub(replaced_before(*step)),
                self.step(*step).new_instances,
            ),
            Stage::RollingBack { .. } => (self.old_instances, self.new_at_rollback),
        })
    }

    /// The new fleet's share of requests now.
    pub fn new_share(&self) -> f64 {
        match &self.stage {
            Stage::Provisioning { step, .. } if *step > 0 => self.step(step - 1).share,
            Stage::Provisioning { .. } => 0.0,
            Stage::ActivatingTraffic { step, .. } | Stage::Baking { step, .. } => {
                self.step(*step).share
            }
            Stage::RollingBack { .. } => 0.0,
        }
    }

    fn step(&self, i: usize) -> Step {
        self.steps.get(i).cloned().unwrap_or(Step {
            share: 1.0,
            new_instances: 1,
            bake_secs: 0,
            bake_field: "TerminationWaitInSeconds",
            canary: false,
        })
    }

    /// Moves the rollout on; `in_alarm` tells whether a named alarm is in ALARM.
    pub fn tick(&mut self, now: Ms, in_alarm: &dyn Fn(&str) -> bool) -> Tick {
        let watching = matches!(
            self.stage,
            Stage::ActivatingTraffic { .. } | Stage::Baking { .. }
        );
        if watching {
            let firing: Vec<&str> = self
                .alarms
                .iter()
                .map(String::as_str)
                .filter(|a| in_alarm(a))
                .collect();
            if !firing.is_empty() {
                let reason = format!(
                    "Deployment rolled back: CloudWatch alarm(s) {} in ALARM state",
                    firing.join(", ")
                );
                return self.roll_back(now, reason);
            }
        }
        if now >= self.deadline && !matches!(self.stage, Stage::RollingBack { .. }) {
            let reason = format!(
                "Deployment exceeded MaximumExecutionTimeoutInSeconds ({} s) and was rolled back",
                (self.deadline - self.started) / 1_000
            );
            return self.roll_back(now, reason);
        }
        match self.stage.clone() {
            Stage::Provisioning { step, until } if now >= until => {
                if step == 0 {
                    match &self.outcome {
                        Outcome::ReturnsToOldConfig(reason) => {
                            return Tick::ReturnedToOld(reason.clone());
                        }
                        Outcome::Fails(reason) => return Tick::Failed(reason.clone()),
                        Outcome::Succeeds | Outcome::RollbackFails(_) => {}
                    }
                }
                self.stage = Stage::ActivatingTraffic {
                    step,
                    until: now + self.durations.shift_ms,
                };
                Tick::Moved
            }
            Stage::ActivatingTraffic { step, until } if now >= until => {
                let bake_ms = Ms::from(self.step(step).bake_secs) * 1_000;
                self.stage = Stage::Baking {
                    step,
                    until: now + bake_ms,
                };
                Tick::Moved
            }
            Stage::Baking { step, until } if now >= until => {
                if step + 1 >= self.steps.len() {
                    return Tick::Succeeded;
                }
                self.stage = if self.rolling {
                    Stage::Provisioning {
                        step: step + 1,
                        until: now + self.durations.provision_ms,
                    }
                } else {
                    Stage::ActivatingTraffic {
                        step: step + 1,
                        until: now + self.durations.shift_ms,
                    }
                };
                Tick::Moved
            }
            Stage::RollingBack { until, reason } if now >= until => match &self.outcome {
                Outcome::RollbackFails(why) => Tick::RollbackFailed(format!("{reason}; {why}")),
                _ => Tick::ReturnedToOld(reason),
            },
            _ => Tick::Same,
        }
    }

    fn roll_back(&mut self, now: Ms, reason: String) -> Tick {
        self.new_at_rollback = self.fleet_counts().map_or(0, |(_, new)| new);
        // Blue/green moves every request back at once; rolling must launch old capacity again.
        let took = if self.rolling {
            self.durations.provision_ms
        } else {
            self.durations.shift_ms
        };
        self.stage = Stage::RollingBack {
            until: now + took,
            reason,
        };
        Tick::Moved
    }

    /// `VariantStatus` of the new fleet, as DescribeEndpoint shows it.
    fn variant_status(&self) -> Value {
        let (status, message, since) = match &self.stage {
            Stage::Provisioning { step, until } => {
                let step_index = *step;
                let step = self.step(step_index);
                let launching = match step_index {
                    i if self.rolling && i > 0 => {
                        step.new_instances - self.step(i - 1).new_instances
                    }
                    _ if self.rolling => step.new_instances,
                    _ => self.new_variants.first().map_or(1, |v| v.instances),
                };
                (
                    "Creating",
                    format!("Launching {launching} instance(s) of new capacity."),
                    until - self.durations.provision_ms,
                )
            }
            Stage::ActivatingTraffic { step, until } => (
                "ActivatingTraffic",
                format!(
                    "Shifting {:.0}% of traffic to {} instance(s) of new capacity.",
                    self.step(*step).share * 100.0,
                    self.step(*step).new_instances
                ),
                until - self.durations.shift_ms,
            ),
            Stage::Baking { step, until } => {
                let s = self.step(*step);
                let capacity = if s.canary {
                    format!("canary capacity of {} instance(s)", s.new_instances)
                } else {
                    format!("{} instance(s) of new capacity", s.new_instances)
                };
                (
                    "Baking",
                    format!(
                        "Baking for {} seconds ({}) with traffic enabled on {capacity}.",
                        s.bake_secs, s.bake_field
                    ),
                    until - Ms::from(s.bake_secs) * 1_000,
                )
            }
            Stage::RollingBack { reason, until } => (
                "Updating",
                format!("Rolling back to the old configuration: {reason}."),
                *until,
            ),
        };
        json!([{ "Status": status, "StatusMessage": message, "StartTime": crate::secs(since) }])
    }

    /// `PendingDeploymentSummary` while the rollout runs.
    pub fn pending_summary(&self) -> Value {
        let share = self.new_share();
        let instances = match &self.stage {
            Stage::Provisioning { step, .. } if *step > 0 => self.step(step - 1).new_instances,
            Stage::Provisioning { .. } | Stage::RollingBack { .. } => 0,
            Stage::ActivatingTraffic { step, .. } | Stage::Baking { step, .. } => {
                self.step(*step).new_instances
            }
        };
        let variants: Vec<Value> = self
            .new_variants
            .iter()
            .map(|v| {
                json!({
                    "VariantName": v.name,
                    "CurrentWeight": v.weight * share,
                    "DesiredWeight": v.weight,
                    "CurrentInstanceCount": instances,
                    "DesiredInstanceCount": v.instances,
                    "InstanceType": v.instance_type,
                    "VariantStatus": self.variant_status(),
                })
            })
            .collect();
        json!({
            "EndpointConfigName": self.new_config,
            "StartTime": crate::secs(self.started),
            "ProductionVariants": variants,
        })
    }
}
