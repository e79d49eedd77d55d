//! A small, deterministic stand-in for one SageMaker endpoint and its alarms, on virtual time.
//! It applies the core's actions as SageMaker would (asynchronous updates, the in-progress
//! rule, failed updates that return to the old config) so that tests can tell whole stories.
//! It is a test double for the core's tests, not the local emulator of the AWS APIs.
//!
//! An UpdateEndpoint with a `DeploymentConfig` (native engine) is a rollout SageMaker runs: the
//! new fleet is launched for the first half of the update, then serves beside the old one while
//! baking; a named alarm in ALARM then ends it back on the old config, as SageMaker's
//! auto-rollback does.

use std::collections::{BTreeMap, BTreeSet};

use guardrails::core::{
    Action, AlarmState, AlarmView, ConfigVariant, EndpointStatus, EndpointView, Observation,
    Progress, VariantView,
};
use guardrails::plan::{Fleet, FleetVariant, ScalableTarget, Suspended};
use guardrails::preflight::AlarmDefinition;
use guardrails::units::{Share, Timestamp};

/// How the next UpdateEndpoint ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    Succeeds,
    /// Back in service on the old config with this FailureReason (empty: the silent case).
    ReturnsToOldConfig(String),
}

#[derive(Debug, Clone)]
struct Variant {
    name: String,
    model: String,
    instance_type: String,
    weight: f64,
    instances: u32,
}

#[derive(Debug, Clone)]
enum Change {
    Config(String),
    /// A rollout SageMaker runs under a DeploymentConfig: the new fleet serves from
    /// `traffic_at`, watched by `alarms`.
    Rollout {
        config: String,
        alarms: Vec<String>,
        traffic_at: Timestamp,
    },
    Weights(Vec<(String, f64)>),
    Instances(String, u32),
}

/// The endpoint, the configs that exist and the alarms, at `now`.
#[derive(Debug)]
pub struct World {
    pub now: Timestamp,
    /// The endpoint's name (only this one exists).
    pub endpoint_name: String,
    pub endpoint_exists: bool,
    status: EndpointStatus,
    config: String,
    variants: Vec<Variant>,
    failure_reason: Option<String>,
    pending: Option<(Change, Timestamp)>,
    configs: BTreeMap<String, Vec<Variant>>,
    alarms: BTreeMap<String, AlarmState>,
    /// Seconds an UpdateEndpoint takes (provisioning a fleet).
    pub update_secs: u32,
    /// Seconds a weights or capacity change takes.
    pub weights_secs: u32,
    /// Seconds a bad model must serve before its alarms go to ALARM.
    pub alarm_lag_secs: u32,
    pub next_update: UpdateOutcome,
    bad_models: BTreeSet<String>,
    /// Alarms that watch the whole endpoint (any bad model trips them).
    endpoint_alarms: BTreeSet<String>,
    /// Alarms that watch one variant.
    variant_alarms: BTreeMap<String, String>,
    bad_serving_since: Option<Timestamp>,
    /// Every move of an alarm into ALARM, oldest first (the alarms' history).
    alarm_history: Vec<(String, Timestamp)>,
    /// The first variant's Application Auto Scaling target, with its suspended state now.
    pub scaling: Option<ScalableTarget>,
}

impl World {
    /// An endpoint serving `model` as variant `variant` on `config`, with `instances`.
    pub fn serving(
        now: Timestamp,
        config: &str,
        variant: &str,
        model: &str,
        instances: u32,
    ) -> World {
        let variants = vec![Variant {
            name: variant.to_owned(),
            model: model.to_owned(),
            instance_type: "ml.m5.xlarge".to_owned(),
            weight: 1.0,
            instances,
        }];
        World {
            now,
            endpoint_name: "fraud-scorer".to_owned(),
            endpoint_exists: true,
            status: EndpointStatus::InService,
            config: config.to_owned(),
            configs: BTreeMap::from([(config.to_owned(), variants.clone())]),
            variants,
            failure_reason: None,
            pending: None,
            alarms: BTreeMap::new(),
            update_secs: 480,
            weights_secs: 20,
            alarm_lag_secs: 90,
            next_update: UpdateOutcome::Succeeds,
            bad_models: BTreeSet::new(),
            endpoint_alarms: BTreeSet::new(),
            variant_alarms: BTreeMap::new(),
            bad_serving_since: None,
            alarm_history: Vec::new(),
            scaling: None,
        }
    }

    /// The variant registered with Application Auto Scaling (`min`..`max`, one policy).
    pub fn with_scaling_target(mut self, min: u32, max: u32) -> World {
        self.scaling = Some(ScalableTarget {
            min_capacity: min,
            max_capacity: max,
            suspended: Suspended::default(),
            policies: vec!["invocations-per-instance".to_owned()],
        });
        self
    }

    /// An existing alarm on the whole endpoint, in OK.
    pub fn with_endpoint_alarm(mut self, name: &str) -> World {
        self.endpoint_alarms.insert(name.to_owned());
        self.alarms.insert(name.to_owned(), AlarmState::Ok);
        self
    }

    /// Marks `model` as bad: alarms watching it go to ALARM after it serves for a while.
    pub fn with_bad_model(mut self, model: &str) -> World {
        self.bad_models.insert(model.to_owned());
        self
    }

    /// Variant `variant` serves `model` from now on (as if deployed outside this test).
    pub fn set_model(&mut self, variant: &str, model: &str) {
        for v in self.variants.iter_mut().filter(|v| v.name == variant) {
            v.model = model.to_owned();
        }
    }

    pub fn config_name(&self) -> &str {
        &self.config
    }

    /// `(variant, share of requests)` of what serves now.
    pub fn traffic(&self) -> Vec<(String, f64)> {
        let total: f64 = self.variants.iter().map(|v| v.weight).sum();
        self.variants
            .iter()
            .map(|v| {
                (
                    v.name.clone(),
                    if total > 0.0 { v.weight / total } else { 0.0 },
                )
            })
            .collect()
    }

    /// `(variant, model)` of what serves now.
    pub fn models(&self) -> Vec<(String, String)> {
        self.variants
            .iter()
            .map(|v| (v.name.clone(), v.model.clone()))
            .collect()
    }

    /// The fleet as DescribeEndpoint and DescribeEndpointConfig would show it.
    pub fn fleet(&self, endpoint_name: &str) -> Option<Fleet> {
        (self.endpoint_exists && endpoint_name == self.endpoint_name).then(|| Fleet {
            endpoint_name: endpoint_name.to_owned(),
            config_name: self.config.clone(),
            variants: self
                .variants
                .iter()
                .map(|v| FleetVariant {
                    variant_name: v.name.clone(),
                    model_name: v.model.clone(),
                    instance_type: v.instance_type.clone(),
                    instance_count: v.instances,
                })
                .collect(),
        })
    }

    /// The named alarms that exist, as the preflight sees them: a state but no metric (the
    /// world's alarms watch models, not CloudWatch metrics, so the metric checks do not apply).
    pub fn alarm_definitions(&self, names: &[&str]) -> BTreeMap<String, AlarmDefinition> {
        self.alarms
            .iter()
            .filter(|(name, _)| names.contains(&name.as_str()))
            .map(|(name, state)| {
                let definition = AlarmDefinition {
                    state: *state,
                    metric: None,
                };
                (name.clone(), definition)
            })
            .collect()
    }

    /// The first move into ALARM at or after `since` of each named alarm, with a reason.
    pub fn fired_since(
        &self,
        names: &[&str],
        since: Timestamp,
    ) -> BTreeMap<String, (Timestamp, String)> {
        let mut fired = BTreeMap::new();
        for (name, at) in &self.alarm_history {
            if *at >= since && names.contains(&name.as_str()) {
                fired
                    .entry(name.clone())
                    .or_insert_with(|| (*at, "Threshold Crossed: the model's errors".to_owned()));
            }
        }
        fired
    }

    pub fn config_exists(&self, name: &str) -> bool {
        self.configs.contains_key(name)
    }

    pub fn alarm_exists(&self, name: &str) -> bool {
        self.alarms.contains_key(name)
    }

    /// What DescribeEndpoint and DescribeAlarms would return now.
    pub fn observe(&self) -> Observation {
        let endpoint = self.endpoint_exists.then(|| EndpointView {
            status: self.status,
            config_name: self.config.clone(),
            pending_config_name: match &self.pending {
                Some((Change::Config(name) | Change::Rollout { config: name, .. }, _)) => {
                    Some(name.clone())
                }
                _ => None,
            },
            failure_reason: self.failure_reason.clone(),
            progress: self.progress(),
            variants: self
                .variants
                .iter()
                .map(|v| VariantView {
                    variant_name: v.name.clone(),
                    current_weight: v.weight,
                    current_instance_count: v.instances,
                    desired_instance_count: match &self.pending {
                        Some((Change::Instances(name, n), _)) if *name == v.name => *n,
                        _ => v.instances,
                    },
                })
                .collect(),
        });
        let alarms = self
            .alarms
            .iter()
            .map(|(name, state)| {
                let reason = match state {
                    AlarmState::Alarm => "Threshold Crossed: 2 datapoints [0.31, 0.29] were greater than the threshold (0.05)",
                    AlarmState::Ok => "Threshold Crossed: no datapoint was greater than the threshold (0.05)",
                    AlarmState::InsufficientData => "Unchecked: Initial alarm creation",
                };
                let view = AlarmView {
                    state: *state,
                    reason: reason.to_owned(),
                    since: None,
                };
                (name.clone(), view)
            })
            .collect();
        Observation {
            endpoint,
            alarms,
            alarms_fired: BTreeMap::new(),
            judged: None,
            hook: None,
            unseen: None,
        }
    }

    /// Performs one action as SageMaker and CloudWatch would; `Err` carries SageMaker's refusal.
    pub fn apply(&mut self, action: &Action) -> Result<(), String> {
        match action {
            Action::CreateEndpointConfig {
                config_name,
                from_config,
                variants,
            } => {
                let mut built = Vec::new();
                for v in variants {
                    built.push(self.config_variant(from_config, v)?);
                }
                self.configs.entry(config_name.clone()).or_insert(built);
                Ok(())
            }
            Action::UpdateEndpoint {
                config_name,
                deployment_config,
                ..
            } => {
                self.check_updatable()?;
                if !self.configs.contains_key(config_name) {
                    return Err(format!(
                        "Could not find endpoint configuration \"{config_name}\""
                    ));
                }
                let change = match deployment_config {
                    Some(dc) => Change::Rollout {
                        config: config_name.clone(),
                        alarms: dc
                            .auto_rollback_configuration
                            .iter()
                            .flat_map(|a| a.alarms.iter().map(|x| x.alarm_name.clone()))
                            .collect(),
                        traffic_at: self.now.plus_secs(self.update_secs / 2),
                    },
                    None => Change::Config(config_name.clone()),
                };
                self.begin(change, self.update_secs);
                Ok(())
            }
            Action::SetWeights {
                blue_variant,
                green_variant,
                green_share,
            } => {
                self.check_updatable()?;
                let weights = vec![
                    (blue_variant.clone(), green_share.complement().fraction()),
                    (green_variant.clone(), green_share.fraction()),
                ];
                self.begin(Change::Weights(weights), self.weights_secs);
                Ok(())
            }
            Action::SetInstanceCount {
                variant_name,
                instance_count,
            } => {
                self.check_updatable()?;
                self.begin(
                    Change::Instances(variant_name.clone(), *instance_count),
                    self.weights_secs,
                );
                Ok(())
            }
            Action::SetScaling { suspended, .. } => {
                match self.scaling.as_mut() {
                    Some(target) => target.suspended = *suspended,
                    None => return Err("No scalable target found".to_owned()),
                }
                Ok(())
            }
            Action::PutGreenAlarm {
                alarm_name,
                variant_name,
                ..
            } => {
                self.alarms
                    .entry(alarm_name.clone())
                    .or_insert(AlarmState::InsufficientData);
                self.variant_alarms
                    .insert(alarm_name.clone(), variant_name.clone());
                Ok(())
            }
            // CloudWatch's SetAlarmState on an alarm that does not exist: ResourceNotFound.
            Action::RaiseAlarm { alarm_name, .. } => match self.alarms.get_mut(alarm_name) {
                Some(state) => {
                    *state = AlarmState::Alarm;
                    Ok(())
                }
                None => Err(format!(
                    "ResourceNotFound: alarm {alarm_name} does not exist"
                )),
            },
            Action::DeleteAlarms { alarm_names } => {
                for name in alarm_names {
                    self.alarms.remove(name);
                    self.variant_alarms.remove(name);
                }
                Ok(())
            }
            Action::DeleteEndpointConfig { config_name } => {
                self.configs.remove(config_name);
                Ok(())
            }
        }
    }

    fn config_variant(&self, from_config: &str, v: &ConfigVariant) -> Result<Variant, String> {
        let like = |name: &str| {
            self.configs
                .get(from_config)
                .and_then(|c| c.iter().find(|x| x.name == name))
                .ok_or_else(|| format!("Could not find variant {name} in {from_config}"))
        };
        match v {
            ConfigVariant::Copy {
                variant_name,
                initial_weight,
                instance_count,
            } => like(variant_name).map(|x| Variant {
                weight: *initial_weight,
                instances: instance_count.unwrap_or(x.instances),
                ..x.clone()
            }),
            ConfigVariant::New {
                like: source,
                variant_name,
                model_name,
                instance_type,
                instance_count,
                initial_weight,
            } => {
                // As SageMaker's CreateEndpointConfig would be asked: blue's settings, changed.
                let source = like(source)?;
                Ok(Variant {
                    name: variant_name.clone(),
                    model: model_name.clone(),
                    instance_type: if instance_type.is_empty() {
                        source.instance_type.clone()
                    } else {
                        instance_type.clone()
                    },
                    weight: *initial_weight,
                    instances: *instance_count,
                })
            }
        }
    }

    fn check_updatable(&self) -> Result<(), String> {
        if !self.endpoint_exists {
            return Err("Could not find endpoint".to_owned());
        }
        if self.status.is_busy() {
            return Err("Cannot update in-progress endpoint".to_owned());
        }
        Ok(())
    }

    fn begin(&mut self, change: Change, secs: u32) {
        self.status = EndpointStatus::Updating;
        self.pending = Some((change, self.now.plus_secs(secs)));
    }

    /// SageMaker's `VariantStatus` for a rollout it runs.
    fn progress(&self) -> Vec<Progress> {
        let Some((
            Change::Rollout {
                config, traffic_at, ..
            },
            _,
        )) = &self.pending
        else {
            return Vec::new();
        };
        let variant = self
            .configs
            .get(config)
            .and_then(|v| v.first())
            .map(|v| v.name.clone())
            .unwrap_or_default();
        let (status, message) = if self.now < *traffic_at {
            ("Creating", "Launching instances of new capacity.")
        } else {
            ("Baking", "Baking with traffic enabled on new capacity.")
        };
        vec![Progress {
            variant_name: variant,
            status: status.to_owned(),
            message: message.to_owned(),
        }]
    }

    /// The model a SageMaker-run rollout serves beside the old fleet now, if any.
    fn rollout_serving(&self) -> Option<&Variant> {
        match &self.pending {
            Some((
                Change::Rollout {
                    config, traffic_at, ..
                },
                _,
            )) if self.now >= *traffic_at => self.configs.get(config).and_then(|v| v.first()),
            _ => None,
        }
    }

    /// When something will next change on its own, if anything will.
    pub fn next_change(&self) -> Option<Timestamp> {
        let traffic = match &self.pending {
            Some((Change::Rollout { traffic_at, .. }, _)) if *traffic_at > self.now => {
                Some(*traffic_at)
            }
            _ => None,
        };
        let pending = self
            .pending
            .as_ref()
            .map(|(_, at)| *at)
            .into_iter()
            .chain(traffic)
            .min();
        let alarm = self
            .bad_serving_since
            .map(|since| since.plus_secs(self.alarm_lag_secs))
            .filter(|at| *at > self.now && !self.alarm_tripped());
        [pending, alarm].into_iter().flatten().min()
    }

    fn alarm_tripped(&self) -> bool {
        self.alarms.values().any(|s| *s == AlarmState::Alarm)
    }

    /// Moves time forward to `to`, completing changes and evaluating alarms on the way.
    pub fn advance_to(&mut self, to: Timestamp) {
        while let Some(at) = self.next_change().filter(|at| *at <= to) {
            self.now = at;
            self.settle();
        }
        self.now = to.max(self.now);
        self.settle();
    }

    fn settle(&mut self) {
        if let Some((change, at)) = self.pending.clone()
            && at <= self.now
        {
            self.pending = None;
            self.status = EndpointStatus::InService;
            match change {
                Change::Config(name) | Change::Rollout { config: name, .. } => {
                    match std::mem::replace(&mut self.next_update, UpdateOutcome::Succeeds) {
                        UpdateOutcome::Succeeds => {
                            self.variants = self.configs.get(&name).cloned().unwrap_or_default();
                            self.config = name;
                            self.failure_reason = None;
                        }
                        UpdateOutcome::ReturnsToOldConfig(reason) => {
                            self.failure_reason = (!reason.is_empty()).then_some(reason);
                        }
                    }
                }
                Change::Weights(weights) => {
                    for (name, weight) in weights {
                        if let Some(v) = self.variants.iter_mut().find(|v| v.name == name) {
                            v.weight = weight;
                        }
                    }
                }
                Change::Instances(name, n) => {
                    if let Some(v) = self.variants.iter_mut().find(|v| v.name == name) {
                        v.instances = n;
                    }
                }
            }
        }
        self.evaluate_alarms();
        // SageMaker's auto-rollback: a named alarm in ALARM while the new fleet serves.
        if let Some((Change::Rollout { alarms, .. }, _)) = &self.pending
            && self.rollout_serving().is_some()
            && let Some(alarm) = alarms
                .iter()
                .find(|a| self.alarms.get(*a) == Some(&AlarmState::Alarm))
        {
            self.failure_reason = Some(format!(
                "Deployment rolled back: CloudWatch alarm(s) {alarm} in ALARM state"
            ));
            self.pending = None;
            self.status = EndpointStatus::InService;
            self.evaluate_alarms();
        }
    }

    fn evaluate_alarms(&mut self) {
        let bad_serving: Vec<String> = self
            .variants
            .iter()
            .filter(|v| v.weight > 0.0 && self.bad_models.contains(&v.model))
            .map(|v| v.name.clone())
            .chain(
                self.rollout_serving()
                    .filter(|v| self.bad_models.contains(&v.model))
                    .map(|v| v.name.clone()),
            )
            .collect();
        if bad_serving.is_empty() {
            self.bad_serving_since = None;
        } else {
            self.bad_serving_since.get_or_insert(self.now);
        }
        let tripped = self
            .bad_serving_since
            .is_some_and(|since| self.now >= since.plus_secs(self.alarm_lag_secs));
        let updated: Vec<(String, AlarmState)> = self
            .alarms
            .iter()
            .map(|(name, state)| {
                let watches_bad = self.endpoint_alarms.contains(name)
                    || self
                        .variant_alarms
                        .get(name)
                        .is_some_and(|variant| bad_serving.contains(variant));
                let next = match (*state, watches_bad && tripped) {
                    (_, true) => AlarmState::Alarm,
                    (AlarmState::InsufficientData, false) if !self.variant_has_traffic(name) => {
                        AlarmState::InsufficientData
                    }
                    (_, false) => AlarmState::Ok,
                };
                (name.clone(), next)
            })
            .collect();
        for (name, next) in &updated {
            if *next == AlarmState::Alarm && self.alarms.get(name) != Some(&AlarmState::Alarm) {
                self.alarm_history.push((name.clone(), self.now));
            }
        }
        self.alarms.extend(updated);
    }

    fn variant_has_traffic(&self, alarm: &str) -> bool {
        match self.variant_alarms.get(alarm) {
            Some(variant) => self
                .variants
                .iter()
                .any(|v| v.name == *variant && v.weight > 0.0),
            None => true,
        }
    }
}

/// `10%`-style share of a fraction, for transcripts.
pub fn percent(fraction: f64) -> String {
    Share::nearest(fraction).to_string()
}
