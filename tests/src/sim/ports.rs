//! The simulated cloud behind the ports: SageMaker and CloudWatch (one `World` per endpoint),
//! the store and the waker, with the seed's faults injected into every call; the random
//! numbers, fault mix, counts and deliberate bugs of a run.

// Random numbers are mapped to small ranges and probabilities on purpose.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use guardrails::core::{Action, AlarmView, ConfigVariant, EndpointView};
use guardrails::events::StateChange;
use guardrails::memory::MemoryStore;
use guardrails::plan::{Fleet, ScalableTarget, Suspended};
use guardrails::policy::DeploymentConfig;
use guardrails::ports::{
    Alarms, AuditEntry, Endpoints, ErrorKind, GreenAlarm, PageClaim, PortError, PortResult,
    SentPage, Store, Stored, Waker,
};
use guardrails::preflight::AlarmDefinition;
use guardrails::units::{Share, Timestamp};

use crate::world::{UpdateOutcome, World};

/// SplitMix64: small, fast, and the same sequence for the same seed on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// How often each kind of fault happens while faults are on (each in 0..=1).
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub event_loss: f64,
    pub event_duplicate: f64,
    pub event_delay_secs: u64,
    pub crash: f64,
    pub store_conflict: f64,
    pub throttle: f64,
    pub failed_update: f64,
}

impl Faults {
    pub(super) fn pick(rng: &mut Rng) -> Faults {
        let level = [0.0, 0.02, 0.08, 0.2][rng.below(4) as usize];
        let mut p = |scale: f64| if rng.chance(0.7) { level * scale } else { 0.0 };
        let event_loss = p(1.0);
        let event_duplicate = p(1.0);
        let crash = p(0.5);
        let store_conflict = p(0.5);
        let throttle = p(0.5);
        let failed_update = p(1.0);
        Faults {
            event_loss,
            event_duplicate,
            event_delay_secs: [0, 5, 60, 300][rng.below(4) as usize],
            crash,
            store_conflict,
            throttle,
            failed_update,
        }
    }
}

/// The APIs a denial can hit: every call the driver makes on an endpoint's behalf.
pub const DENIABLE: [&str; 9] = [
    "sagemaker:CreateEndpointConfig",
    "sagemaker:UpdateEndpoint",
    "sagemaker:UpdateEndpointWeightsAndCapacities",
    "sagemaker:DeleteEndpointConfig",
    "sagemaker:DescribeEndpoint",
    "cloudwatch:PutMetricAlarm",
    "cloudwatch:DeleteAlarms",
    "cloudwatch:DescribeAlarms",
    "cloudwatch:DescribeAlarmHistory",
];

/// Refusals that never succeed: a permission missing for one API on one endpoint from some
/// moment to the end of the run (`AccessDeniedException`, as a template lacking a grant gives
/// it), and one-off refusals of single calls (a validation error, a quota) at a rate. They are
/// drawn from a stream of their own, so the rest of each seed's scenario is drawn as before.
#[derive(Debug, Clone, Default)]
pub struct Refusals {
    pub denied: Option<(String, &'static str, Timestamp)>,
    /// Chance that one call is refused, while faults are on.
    pub one_off: f64,
    /// Chance, at each sweep, that a person aborts each active deployment, whatever its phase.
    pub abort: f64,
    pub rng: Option<Rng>,
}

impl Refusals {
    pub(super) fn pick(seed: u64, endpoints: usize, from: Timestamp) -> Refusals {
        let mut rng = Rng::new(seed ^ 0x7265_6675_7365_0000);
        let denied = rng.chance(0.2).then(|| {
            let endpoint = format!("ep{}", rng.below(endpoints as u64));
            let api = DENIABLE[rng.below(DENIABLE.len() as u64) as usize];
            (endpoint, api, from.plus_secs(rng.below(3_600) as u32))
        });
        let one_off = [0.0, 0.0, 0.0, 0.005][rng.below(4) as usize];
        let abort = [0.0, 0.0, 0.0, 0.03][rng.below(4) as usize];
        Refusals {
            denied,
            one_off,
            abort,
            rng: Some(rng),
        }
    }
}

/// Counts of what happened in a run.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub deployments: u64,
    pub invocations: u64,
    pub faults: BTreeMap<&'static str, u64>,
    pub outcomes: BTreeMap<String, u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Shared mutable simulation state behind the ports.
pub(super) struct State {
    pub(super) worlds: BTreeMap<String, World>,
    pub(super) rng: Rng,
    pub(super) faults: Option<Faults>,
    pub(super) counts: Counts,
    pub(super) wake_ups: Vec<(String, Timestamp)>,
    pub(super) mutation: Mutation,
    /// The last observation returned per endpoint (for `Mutation::StaleObservations`).
    pub(super) last_seen: BTreeMap<String, Option<EndpointView>>,
    /// The last alarm states returned (for `Mutation::StaleObservations`).
    pub(super) last_alarms: Option<BTreeMap<String, AlarmView>>,
    pub(super) refusals: Refusals,
    /// The simulated time, for denials that begin at a moment.
    pub(super) now: Timestamp,
}

/// A deliberate bug, to show that the checker catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mutation {
    #[default]
    None,
    /// Saves ignore the version condition (a driver that writes unconditionally).
    IgnoreVersion,
    /// Blue is removed as soon as green gets all traffic, before the final bake.
    RemoveBlueAtLastShift,
    /// An invocation sometimes reuses the previous observation instead of looking again.
    StaleObservations,
}

impl State {
    /// Whether a person aborts a deployment now.
    pub(super) fn aborts(&mut self) -> bool {
        let p = self.refusals.abort;
        p > 0.0 && self.refusals.rng.as_mut().is_some_and(|rng| rng.chance(p))
    }

    /// Whether AWS refuses this call of `api` for `endpoint` (any endpoint for account-wide
    /// calls): denied from some moment on, or refused once.
    fn refused(&mut self, endpoint: Option<&str>, api: &'static str) -> Option<PortError> {
        let now = self.now;
        if let Some((denied_endpoint, denied_api, from)) = &self.refusals.denied
            && *denied_api == api
            && now >= *from
            && endpoint.is_none_or(|e| e == denied_endpoint)
        {
            *self.counts.faults.entry("call denied").or_default() += 1;
            let message = format!(
                "AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/sim/fn is not authorized to perform: {api}"
            );
            return Some(PortError::new(ErrorKind::Refused, message).from_api(api));
        }
        let one_off = self.refusals.one_off;
        if self.faults.is_some()
            && one_off > 0.0
            && let Some(rng) = self.refusals.rng.as_mut()
            && rng.chance(one_off)
        {
            *self.counts.faults.entry("call refused once").or_default() += 1;
            let message = "ValidationException: simulated refusal";
            return Some(PortError::new(ErrorKind::Refused, message).from_api(api));
        }
        None
    }

    fn fault(&mut self, kind: &'static str, p: impl Fn(&Faults) -> f64) -> bool {
        let Some(faults) = self.faults else {
            return false;
        };
        let hit = self.rng.chance(p(&faults));
        if hit {
            *self.counts.faults.entry(kind).or_default() += 1;
        }
        hit
    }
}

/// The simulated cloud: SageMaker and CloudWatch (one `World` per endpoint), the store, the
/// waker. Every call yields first, so concurrent invocations interleave.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct Sim {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) store: Arc<MemoryStore>,
}

fn transient(what: &str) -> PortError {
    PortError::new(ErrorKind::Transient, format!("simulated crash in {what}"))
}

impl Sim {
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// A change to `endpoint`: maybe throttled, maybe crashing before or after it applies.
    async fn change(&self, endpoint: Option<&str>, action: Action) -> PortResult<()> {
        tokio::task::yield_now().await;
        let mut s = self.state();
        if let Some(refused) = s.refused(endpoint, action.api()) {
            return Err(refused);
        }
        if s.fault("throttle", |f| f.throttle) {
            return Err(PortError::new(ErrorKind::Throttled, "Rate exceeded"));
        }
        if s.fault("crash before act", |f| f.crash) {
            return Err(transient("act"));
        }
        if matches!(action, Action::UpdateEndpoint { .. })
            && s.fault("failed update", |f| f.failed_update)
        {
            let silent = s.rng.chance(0.5);
            if let Some(w) = endpoint.and_then(|e| s.worlds.get_mut(e)) {
                w.next_update = UpdateOutcome::ReturnsToOldConfig(if silent {
                    String::new()
                } else {
                    "capacity".to_owned()
                });
            }
        }
        let worlds: Vec<String> = match endpoint {
            Some(e) => vec![e.to_owned()],
            None => s.worlds.keys().cloned().collect(),
        };
        let mut result = Ok(());
        for name in worlds {
            if let Some(w) = s.worlds.get_mut(&name)
                && let Err(message) = w.apply(&action)
            {
                let kind = if message.starts_with("Cannot update in-progress") {
                    ErrorKind::InProgress
                } else {
                    ErrorKind::Refused
                };
                result = Err(PortError::new(kind, message));
            }
        }
        result?;
        if s.fault("crash after act", |f| f.crash) {
            return Err(transient("act"));
        }
        Ok(())
    }
}

#[async_trait]
impl Endpoints for Sim {
    async fn scalable_target(
        &self,
        endpoint: &str,
        _variant: &str,
    ) -> PortResult<Option<ScalableTarget>> {
        tokio::task::yield_now().await;
        let mut s = self.state();
        if s.fault("throttle", |f| f.throttle) {
            return Err(PortError::new(ErrorKind::Throttled, "Rate exceeded"));
        }
        Ok(s.worlds.get(endpoint).and_then(|w| w.scaling.clone()))
    }
    async fn set_scaling(
        &self,
        endpoint: &str,
        variant: &str,
        suspended: Suspended,
    ) -> PortResult<()> {
        let action = Action::SetScaling {
            variant_name: variant.to_owned(),
            suspended,
        };
        self.change(Some(endpoint), action).await
    }
    async fn describe(&self, endpoint: &str) -> PortResult<Option<EndpointView>> {
        tokio::task::yield_now().await;
        let mut s = self.state();
        if let Some(refused) = s.refused(Some(endpoint), "sagemaker:DescribeEndpoint") {
            return Err(refused);
        }
        if s.fault("throttle", |f| f.throttle) {
            return Err(PortError::new(ErrorKind::Throttled, "Rate exceeded"));
        }
        let fresh = s.worlds.get(endpoint).and_then(|w| w.observe().endpoint);
        if s.mutation == Mutation::StaleObservations
            && s.rng.chance(0.5)
            && let Some(stale) = s.last_seen.get(endpoint)
        {
            return Ok(stale.clone());
        }
        s.last_seen.insert(endpoint.to_owned(), fresh.clone());
        Ok(fresh)
    }
    async fn create_config(
        &self,
        config: &str,
        from_config: &str,
        variants: &[ConfigVariant],
    ) -> PortResult<()> {
        let action = Action::CreateEndpointConfig {
            config_name: config.to_owned(),
            from_config: from_config.to_owned(),
            variants: variants.to_vec(),
        };
        // Configs are account-wide; each world keeps its own copy.
        tokio::task::yield_now().await;
        let mut s = self.state();
        if let Some(refused) = s.refused(None, action.api()) {
            return Err(refused);
        }
        for w in s.worlds.values_mut() {
            let _ = w.apply(&action);
        }
        Ok(())
    }
    async fn update_endpoint(
        &self,
        endpoint: &str,
        config: &str,
        guardrails: Option<&DeploymentConfig>,
        retain_variant_properties: bool,
    ) -> PortResult<()> {
        self.change(
            Some(endpoint),
            Action::UpdateEndpoint {
                config_name: config.to_owned(),
                deployment_config: guardrails.cloned(),
                retain_variant_properties,
            },
        )
        .await
    }
    async fn set_weights(
        &self,
        endpoint: &str,
        blue: &str,
        green: &str,
        green_share: Share,
    ) -> PortResult<()> {
        let action = Action::SetWeights {
            blue_variant: blue.to_owned(),
            green_variant: green.to_owned(),
            green_share,
        };
        let mutated =
            self.state().mutation == Mutation::RemoveBlueAtLastShift && green_share == Share::FULL;
        if mutated {
            // The broken core removes blue at the last shift: the endpoint goes to green alone.
            let mut s = self.state();
            if let Some(w) = s.worlds.get_mut(endpoint) {
                let config = w.config_name().replace("-blue-green", "-green");
                let variants = vec![ConfigVariant::New {
                    like: blue.to_owned(),
                    variant_name: green.to_owned(),
                    model_name: green.to_owned(),
                    instance_type: "ml.m5.xlarge".to_owned(),
                    instance_count: 1,
                    initial_weight: 1.0,
                }];
                let create = Action::CreateEndpointConfig {
                    config_name: config.clone(),
                    from_config: w.config_name().to_owned(),
                    variants,
                };
                let _ = w.apply(&create);
                return w
                    .apply(&Action::UpdateEndpoint {
                        config_name: config,
                        deployment_config: None,
                        retain_variant_properties: false,
                    })
                    .map_err(|m| PortError::new(ErrorKind::InProgress, m));
            }
        }
        self.change(Some(endpoint), action).await
    }
    async fn set_instance_count(
        &self,
        endpoint: &str,
        variant: &str,
        count: u32,
    ) -> PortResult<()> {
        let action = Action::SetInstanceCount {
            variant_name: variant.to_owned(),
            instance_count: count,
        };
        self.change(Some(endpoint), action).await
    }
    async fn delete_config(&self, config: &str) -> PortResult<()> {
        self.change(
            None,
            Action::DeleteEndpointConfig {
                config_name: config.to_owned(),
            },
        )
        .await
    }
    async fn fleet(&self, endpoint: &str) -> PortResult<Option<Fleet>> {
        tokio::task::yield_now().await;
        Ok(self
            .state()
            .worlds
            .get(endpoint)
            .and_then(|w| w.fleet(endpoint)))
    }
    async fn create_model_from_package(&self, _: &str, _: &str, _: &str) -> PortResult<()> {
        Ok(())
    }
}

#[async_trait]
impl Alarms for Sim {
    async fn states(&self, names: &[&str]) -> PortResult<BTreeMap<String, AlarmView>> {
        tokio::task::yield_now().await;
        let mut s = self.state();
        if let Some(refused) = s.refused(None, "cloudwatch:DescribeAlarms") {
            return Err(refused);
        }
        if s.mutation == Mutation::StaleObservations
            && s.rng.chance(0.5)
            && let Some(stale) = s.last_alarms.clone()
        {
            return Ok(stale);
        }
        let mut found = BTreeMap::new();
        for w in s.worlds.values() {
            for (name, view) in w.observe().alarms {
                if names.contains(&name.as_str()) {
                    found.insert(name, view);
                }
            }
        }
        s.last_alarms = Some(found.clone());
        Ok(found)
    }
    /// Simulated alarms have a state but no metric: the metric checks do not apply to them.
    async fn definitions(&self, names: &[&str]) -> PortResult<BTreeMap<String, AlarmDefinition>> {
        tokio::task::yield_now().await;
        let s = self.state();
        let mut found = BTreeMap::new();
        for w in s.worlds.values() {
            found.extend(w.alarm_definitions(names));
        }
        Ok(found)
    }
    async fn fired_since(
        &self,
        names: &[&str],
        since: Timestamp,
    ) -> PortResult<BTreeMap<String, (Timestamp, String)>> {
        tokio::task::yield_now().await;
        let mut s = self.state();
        if let Some(refused) = s.refused(None, "cloudwatch:DescribeAlarmHistory") {
            return Err(refused);
        }
        let mut fired = BTreeMap::new();
        for w in s.worlds.values() {
            fired.extend(w.fired_since(names, since));
        }
        Ok(fired)
    }
    /// Simulated traffic never stops: every alarm is fed.
    async fn has_data(&self, _: &AlarmDefinition, _: Timestamp, _: Timestamp) -> PortResult<bool> {
        Ok(true)
    }
    async fn put_green_alarm(&self, alarm: GreenAlarm<'_>) -> PortResult<()> {
        let action = Action::PutGreenAlarm {
            alarm_name: alarm.alarm_name.to_owned(),
            endpoint_name: alarm.endpoint_name.to_owned(),
            variant_name: alarm.variant_name.to_owned(),
            template: alarm.template.clone(),
        };
        self.change(Some(alarm.endpoint_name), action).await
    }
    async fn delete_alarms(&self, names: &[String]) -> PortResult<()> {
        self.change(
            None,
            Action::DeleteAlarms {
                alarm_names: names.to_vec(),
            },
        )
        .await
    }
    async fn raise(&self, name: &str, reason: &str) -> PortResult<()> {
        self.change(
            None,
            Action::RaiseAlarm {
                alarm_name: name.to_owned(),
                reason: reason.to_owned(),
            },
        )
        .await
    }
}

#[async_trait]
impl Store for Sim {
    async fn load(&self, endpoint: &str) -> PortResult<Option<Stored>> {
        tokio::task::yield_now().await;
        self.store.load(endpoint).await
    }
    async fn create(&self, record: &Stored, audit: &[AuditEntry]) -> PortResult<()> {
        tokio::task::yield_now().await;
        self.store.create(record, audit).await
    }
    async fn save(&self, record: &Stored, expected: u64, audit: &[AuditEntry]) -> PortResult<()> {
        tokio::task::yield_now().await;
        {
            let mut s = self.state();
            if s.fault("store conflict", |f| f.store_conflict) {
                return Err(PortError::new(ErrorKind::Conflict, "simulated conflict"));
            }
            if s.fault("store throttle", |f| f.throttle) {
                return Err(PortError::new(ErrorKind::Throttled, "simulated throttle"));
            }
            if s.fault("crash before save", |f| f.crash) {
                return Err(transient("save"));
            }
        }
        let expected = if self.state().mutation == Mutation::IgnoreVersion {
            self.store
                .load(&record.deployment.plan.endpoint_name)
                .await?
                .map_or(expected, |s| s.version)
        } else {
            expected
        };
        self.store.save(record, expected, audit).await?;
        if self.state().fault("crash after save", |f| f.crash) {
            return Err(transient("save"));
        }
        Ok(())
    }
    async fn archive(&self, record: &Stored, expected: u64) -> PortResult<()> {
        tokio::task::yield_now().await;
        self.store.archive(record, expected).await
    }
    async fn active_endpoints(&self) -> PortResult<Vec<String>> {
        self.store.active_endpoints().await
    }
    async fn watching(&self, alarm_name: &str) -> PortResult<Vec<String>> {
        self.store.watching(alarm_name).await
    }
    async fn wake_scheduled(&self, endpoint: &str, id: &str, at: Timestamp) -> PortResult<()> {
        self.store.wake_scheduled(endpoint, id, at).await
    }
    async fn load_many(&self, endpoints: &[String]) -> PortResult<Vec<Stored>> {
        tokio::task::yield_now().await;
        self.store.load_many(endpoints).await
    }
    async fn audit(&self, endpoint: &str, id: &str) -> PortResult<Vec<AuditEntry>> {
        self.store.audit(endpoint, id).await
    }
    async fn claim_page(
        &self,
        endpoint: &str,
        id: &str,
        now: Timestamp,
        stale: u32,
    ) -> PortResult<PageClaim> {
        self.store.claim_page(endpoint, id, now, stale).await
    }
    async fn unpaged(&self, before: Timestamp) -> PortResult<Vec<StateChange>> {
        self.store.unpaged(before).await
    }
    async fn page_sent(&self, endpoint: &str, id: &str, sent: &SentPage) -> PortResult<()> {
        self.store.page_sent(endpoint, id, sent).await
    }
    async fn record(&self, endpoint: &str, id: &str, at: Timestamp) -> PortResult<Option<Stored>> {
        self.store.record(endpoint, id, at).await
    }
    async fn history(&self, endpoint: &str, limit: usize) -> PortResult<Vec<Stored>> {
        Store::history(self.store.as_ref(), endpoint, limit).await
    }
    async fn find(&self, id: &str) -> PortResult<Option<(String, Timestamp)>> {
        self.store.find(id).await
    }
}

#[async_trait]
impl Waker for Sim {
    async fn wake_at(&self, endpoint: &str, _: &str, at: Timestamp, _: bool) -> PortResult<()> {
        self.state().wake_ups.push((endpoint.to_owned(), at));
        Ok(())
    }
}
