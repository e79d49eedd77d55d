//! Deterministic simulation of the whole system: the real handlers, driver and core against
//! simulated endpoints, alarms, store, event delivery and clock, under faults chosen by a seed.
//! One seed reproduces a whole run. After every delivery the checker verifies the invariants of
//! DESIGN.md; after the faulty phase, faults stop and every deployment must end within a bound.

// Random numbers are mapped to small ranges and probabilities on purpose.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use guardrails::core::{
    Action, AlarmState, AlarmView, Cause, ConfigVariant, EndpointView, Phase, SETTLE_SECS,
};
use guardrails::driver::{Driver, Limits};
use guardrails::events::StateChange;
use guardrails::handlers::{self, Handled, Settings};
use guardrails::memory::{MemoryBus, MemoryPager, MemoryStore, VirtualClock};
use guardrails::plan::Fleet;
use guardrails::policy::{DeploymentConfig, Engine};
use guardrails::ports::{
    Alarms, AuditEntry, Clock, Endpoints, ErrorKind, GreenAlarm, PageClaim, PortError, PortResult,
    SentPage, Store, Stored, Waker,
};
use guardrails::preflight::AlarmDefinition;
use guardrails::units::{Share, Timestamp};
use serde_json::{Value, json};

use crate::world::{UpdateOutcome, World};
use crate::{T0, repo_root};

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
    fn pick(rng: &mut Rng) -> Faults {
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
struct State {
    worlds: BTreeMap<String, World>,
    rng: Rng,
    faults: Option<Faults>,
    counts: Counts,
    wake_ups: Vec<(String, Timestamp)>,
    mutation: Mutation,
    /// The last observation returned per endpoint (for `Mutation::StaleObservations`).
    last_seen: BTreeMap<String, Option<EndpointView>>,
    /// The last alarm states returned (for `Mutation::StaleObservations`).
    last_alarms: Option<BTreeMap<String, AlarmView>>,
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
    state: Arc<Mutex<State>>,
    store: Arc<MemoryStore>,
}

fn transient(what: &str) -> PortError {
    PortError::new(ErrorKind::Transient, format!("simulated crash in {what}"))
}

impl Sim {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// A change to `endpoint`: maybe throttled, maybe crashing before or after it applies.
    async fn change(&self, endpoint: Option<&str>, action: Action) -> PortResult<()> {
        tokio::task::yield_now().await;
        let mut s = self.state();
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
                    ErrorKind::Invalid
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
    async fn describe(&self, endpoint: &str) -> PortResult<Option<EndpointView>> {
        tokio::task::yield_now().await;
        let mut s = self.state();
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
    async fn create_config(&self, config: &str, variants: &[ConfigVariant]) -> PortResult<()> {
        let action = Action::CreateEndpointConfig {
            config_name: config.to_owned(),
            variants: variants.to_vec(),
        };
        // Configs are account-wide; each world keeps its own copy.
        tokio::task::yield_now().await;
        let mut s = self.state();
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
    ) -> PortResult<()> {
        self.change(
            Some(endpoint),
            Action::UpdateEndpoint {
                config_name: config.to_owned(),
                deployment_config: guardrails.cloned(),
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
                    variant_name: green.to_owned(),
                    model_name: green.to_owned(),
                    instance_type: "ml.m5.xlarge".to_owned(),
                    instance_count: 1,
                    initial_weight: 1.0,
                }];
                let create = Action::CreateEndpointConfig {
                    config_name: config.clone(),
                    variants,
                };
                let _ = w.apply(&create);
                return w
                    .apply(&Action::UpdateEndpoint {
                        config_name: config,
                        deployment_config: None,
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
            for (name, view) in w.observe().alarms {
                if names.contains(&name.as_str()) {
                    let definition = AlarmDefinition {
                        state: view.state,
                        metric: None,
                    };
                    found.insert(name, definition);
                }
            }
        }
        Ok(found)
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
}

#[async_trait]
impl Waker for Sim {
    async fn wake_at(&self, endpoint: &str, _: &str, at: Timestamp) -> PortResult<()> {
        self.state().wake_ups.push((endpoint.to_owned(), at));
        Ok(())
    }
}

/// What arrives at a function.
#[derive(Debug, Clone, PartialEq)]
enum Delivery {
    Request {
        endpoint: String,
        model: String,
        policy: String,
    },
    EndpointChanged(String),
    AlarmChanged(String),
    WakeUp(String),
    Sweep,
    Notify(Box<StateChange>),
}

/// A violated invariant, with what is needed to reproduce and read it.
#[derive(Debug, Clone)]
pub struct Violation {
    pub seed: u64,
    pub invariant: String,
    pub trace: Vec<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "seed {} broke: {}", self.seed, self.invariant)?;
        writeln!(f, "last steps:")?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        write!(
            f,
            "reproduce: GUARDRAILS_SEED={} cargo test -p guardrails-tests --test simulation -- --nocapture",
            self.seed
        )
    }
}

const POLICIES: [&str; 4] = [
    "canary.yaml",
    "linear.json",
    "all-at-once.yaml",
    "steps-with-approval.yaml",
];
/// Policies run by SageMaker (native engine), and the share of requests that use one.
const NATIVE_POLICIES: [&str; 2] = ["native-canary.yaml", "native-rolling.yaml"];
const NATIVE_SHARE: f64 = 0.25;
/// How long faults last.
const FAULTY_SECS: u32 = 2 * 3_600;
const SWEEP_SECS: u32 = 60;
const TRACE_LINES: usize = 30;
/// A bound on the steps of one run, so that a bug cannot hang the test.
const MAX_ITERATIONS: u64 = 200_000;

/// Runs the simulation for `seed`.
pub async fn run(seed: u64) -> Result<Counts, Violation> {
    run_with(seed, Mutation::None).await
}

/// Runs the simulation for `seed` with a deliberate bug.
pub async fn run_with(seed: u64, mutation: Mutation) -> Result<Counts, Violation> {
    let mut rng = Rng::new(seed);
    // Which requests use the native engine comes from a stream of its own, so that the rest of
    // each seed's scenario is drawn as before the native engine existed.
    let mut engines = Rng::new(seed ^ 0x6e61_7469_7665_0000);
    let faults = Faults::pick(&mut rng);
    let clock = Arc::new(VirtualClock::new(T0));
    let store = Arc::new(MemoryStore::default());
    let n_endpoints = 1 + rng.below(3) as usize;
    let mut worlds = BTreeMap::new();
    let mut queue: BTreeMap<(Timestamp, u64), Delivery> = BTreeMap::new();
    let mut seq = 0u64;
    let mut push =
        |queue: &mut BTreeMap<(Timestamp, u64), Delivery>, at: Timestamp, d: Delivery| {
            seq += 1;
            queue.insert((at, seq), d);
        };
    for e in 0..n_endpoints {
        let name = format!("ep{e}");
        let instances = 1 + rng.below(4) as u32;
        let mut w = World::serving(
            T0,
            &format!("{name}-v1"),
            "AllTraffic",
            &format!("{name}-model-v1"),
            instances,
        )
        .with_endpoint_alarm(&format!("{name}-5xx"));
        w.endpoint_name = name.clone();
        w.update_secs = 60 + rng.below(840) as u32;
        w.weights_secs = 5 + rng.below(55) as u32;
        w.alarm_lag_secs = 60 + rng.below(120) as u32;
        let bad = rng.chance(0.4);
        if bad {
            w = w.with_bad_model(&format!("{name}-model-v2"));
        }
        worlds.insert(name.clone(), w);
        let requests = 1 + rng.below(2);
        for r in 0..requests {
            let variant_policy = POLICIES[rng.below(4) as usize];
            let policy = if engines.chance(NATIVE_SHARE) {
                NATIVE_POLICIES[engines.below(2) as usize]
            } else {
                variant_policy
            }
            .to_owned();
            let at = T0.plus_secs(rng.below(900) as u32 + r as u32 * rng.below(1_800) as u32);
            push(
                &mut queue,
                at,
                Delivery::Request {
                    endpoint: name.clone(),
                    model: format!("{name}-model-v{}", 2 + r),
                    policy,
                },
            );
        }
    }
    let sim = Sim {
        state: Arc::new(Mutex::new(State {
            worlds,
            rng,
            faults: Some(faults),
            counts: Counts::default(),
            wake_ups: Vec::new(),
            mutation,
            last_seen: BTreeMap::new(),
            last_alarms: None,
        })),
        store: store.clone(),
    };
    let bus = Arc::new(MemoryBus::default());
    let driver = Driver {
        endpoints: Arc::new(sim.clone()),
        alarms: Arc::new(sim.clone()),
        store: Arc::new(sim.clone()),
        bus: bus.clone(),
        waker: Arc::new(sim.clone()),
        clock: clock.clone(),
        limits: Limits::default(),
    };
    let pager = MemoryPager::default();
    let settings = Settings {
        table: "guardrails".to_owned(),
        ..Settings::default()
    };
    let mut trace: VecDeque<String> = VecDeque::new();
    let mut fingerprints: BTreeMap<String, String> = BTreeMap::new();
    let mut published = 0usize;
    let mut event_seq = 0u64;
    let mut approvals = 0u64;
    let fault_end = T0.plus_secs(FAULTY_SECS);
    // Every deployment must end this long after the faults stop: its longest timeout (bakes
    // plus provisioning), the settle budget, and a few sweeps.
    let end = fault_end.plus_secs(28_800 + SETTLE_SECS + 3 * SWEEP_SECS);
    let mut next_sweep = T0.plus_secs(SWEEP_SECS);
    let violation = |trace: &VecDeque<String>, invariant: String| Violation {
        seed,
        invariant,
        trace: trace.iter().cloned().collect(),
    };

    for iteration in 0.. {
        if iteration > MAX_ITERATIONS {
            return Err(violation(
                &trace,
                "the simulation stopped making progress".to_owned(),
            ));
        }
        let now = clock.now();
        if now >= fault_end {
            sim.state().faults = None;
        }
        for w in sim.state().worlds.values_mut() {
            w.advance_to(now);
        }
        // Collect what the world and the functions produced: events from world changes,
        // wake-ups, our state-change events (to the notifier).
        {
            let mut s = sim.state();
            let faulty = s.faults;
            let mut produced = Vec::new();
            for (name, w) in &s.worlds {
                let obs = w.observe();
                let print = format!(
                    "{:?}",
                    (
                        obs.endpoint.as_ref().map(|e| (
                            e.status,
                            e.config_name.clone(),
                            e.variants.len(),
                            // SageMaker sends a deployment state change per new VariantStatus.
                            e.progress.clone()
                        )),
                        w.traffic()
                    )
                );
                if fingerprints.get(name) != Some(&print) {
                    fingerprints.insert(name.clone(), print);
                    produced.push(Delivery::EndpointChanged(name.clone()));
                }
                for (alarm, view) in obs.alarms {
                    let key = format!("alarm:{alarm}");
                    let state = format!("{:?}", view.state);
                    if fingerprints.get(&key) != Some(&state) {
                        fingerprints.insert(key, state);
                        produced.push(Delivery::AlarmChanged(alarm));
                    }
                }
            }
            // One wake-up per endpoint, as Scheduler keeps one schedule per endpoint: a new
            // one replaces the pending one.
            for (endpoint, at) in std::mem::take(&mut s.wake_ups) {
                queue.retain(|_, d| *d != Delivery::WakeUp(endpoint.clone()));
                push(&mut queue, at.max(now), Delivery::WakeUp(endpoint));
            }
            let events = bus.events();
            for e in &events[published..] {
                if e.outcome.is_some() {
                    produced.push(Delivery::Notify(Box::new(e.clone())));
                }
            }
            published = events.len();
            for d in produced {
                let copies = match faulty {
                    Some(f) if s.rng.chance(f.event_loss) => {
                        *s.counts.faults.entry("event lost").or_default() += 1;
                        0
                    }
                    Some(f) if s.rng.chance(f.event_duplicate) => {
                        *s.counts.faults.entry("event duplicated").or_default() += 1;
                        2
                    }
                    _ => 1,
                };
                for _ in 0..copies {
                    let delay = match faulty {
                        Some(f) if f.event_delay_secs > 0 => s.rng.below(f.event_delay_secs) as u32,
                        _ => 0,
                    };
                    event_seq += 1;
                    queue.insert((now.plus_secs(delay), u64::MAX / 2 + event_seq), d.clone());
                }
            }
        }
        // Done once the faults are over, every request was delivered and nothing is active.
        let requests_pending = queue
            .values()
            .any(|d| matches!(d, Delivery::Request { .. }));
        if now >= fault_end
            && !requests_pending
            && store
                .active_endpoints()
                .await
                .unwrap_or_default()
                .is_empty()
        {
            break;
        }
        // The next thing to happen: a delivery, the sweep, or the world changing by itself.
        let world_next = sim
            .state()
            .worlds
            .values()
            .filter_map(World::next_change)
            .filter(|t| *t > now)
            .min();
        let delivery_next = queue.keys().next().map(|(t, _)| *t);
        let next = [world_next, delivery_next, Some(next_sweep)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end);
        if next >= end {
            break;
        }
        if next > now {
            clock.set(next);
            for w in sim.state().worlds.values_mut() {
                w.advance_to(next);
            }
            // The world changed on its own: the invariants must hold before anyone reacts.
            check(&sim, &store)
                .await
                .map_err(|m| violation(&trace, m))?;
            continue;
        }
        // Deliver everything due now; two deliveries for one endpoint may run at once.
        let due: Vec<Delivery> = {
            let keys: Vec<(Timestamp, u64)> =
                queue.range(..=(now, u64::MAX)).map(|(k, _)| *k).collect();
            keys.iter().filter_map(|k| queue.remove(k)).collect()
        };
        let mut due = due;
        if next_sweep <= now {
            next_sweep = now.plus_secs(SWEEP_SECS);
            due.push(Delivery::Sweep);
        }
        let mut i = 0;
        while i < due.len() {
            let pair = i + 1 < due.len() && sim.state().rng.chance(0.3);
            let first = deliver(
                &driver,
                &settings,
                &sim,
                &pager,
                clock.as_ref(),
                &due[i],
                &mut approvals,
            );
            let results = if pair {
                let mut no_approvals = 0;
                let second = deliver(
                    &driver,
                    &settings,
                    &sim,
                    &pager,
                    clock.as_ref(),
                    &due[i + 1],
                    &mut no_approvals,
                );
                let (a, b) = futures_join(first, second).await;
                i += 2;
                vec![a, b]
            } else {
                i += 1;
                vec![first.await]
            };
            for (line, handled) in results {
                sim.state().counts.invocations += 1;
                trace.push_back(format!("t+{:>6}s {line}", now.secs_since(T0)));
                if trace.len() > TRACE_LINES {
                    trace.pop_front();
                }
                if let Some(Ok(Handled::Reconciled { deployments })) = &handled {
                    for d in deployments {
                        check_alarm_rule(&sim, &d.endpoint)
                            .await
                            .map_err(|m| violation(&trace, m))?;
                    }
                }
            }
            check(&sim, &store)
                .await
                .map_err(|m| violation(&trace, m))?;
        }
    }
    // Liveness and pages: everything ended, and each rollback or failure paged once.
    let active = store.active_endpoints().await.unwrap_or_default();
    if !active.is_empty() {
        return Err(violation(
            &trace,
            format!("liveness: still active when faults had long stopped: {active:?}"),
        ));
    }
    let mut counts = sim.state().counts.clone();
    let pages = pager.pages();
    let endpoints: Vec<String> = sim.state().worlds.keys().cloned().collect();
    for endpoint in endpoints {
        for done in store.history(&endpoint) {
            let id = &done.deployment.plan.deployment_id;
            counts.deployments += 1;
            let outcome = format!(
                "{} {}",
                done.deployment.plan.engine,
                done.deployment.phase.label()
            );
            *counts.outcomes.entry(outcome).or_default() += 1;
            let paged = pages
                .iter()
                .filter(|p| p.attributes.get("deploymentId") == Some(id))
                .count();
            let must_page = matches!(
                done.deployment.phase,
                Phase::RolledBack { .. } | Phase::Failed { .. }
            );
            if must_page && paged != 1 {
                return Err(violation(
                    &trace,
                    format!(
                        "pages: deployment {id} on {endpoint} ended {} and paged {paged} times",
                        done.deployment.phase.label()
                    ),
                ));
            }
            let audit = store.audit(&endpoint, id).await.unwrap_or_default();
            // Liveness: ended within its deadline (or the end of the faults, if later) plus the
            // settle budget and three sweeps.
            let bound = done
                .deployment
                .deadline
                .max(fault_end)
                .plus_secs(SETTLE_SECS + 3 * SWEEP_SECS);
            if let Some(last) = audit.last()
                && last.transition.at > bound
            {
                return Err(violation(
                    &trace,
                    format!(
                        "liveness: deployment {id} on {endpoint} ended {} s after its bound",
                        last.transition.at.secs_since(bound)
                    ),
                ));
            }
            let gap_free = audit
                .iter()
                .enumerate()
                .all(|(i, a)| a.sequence == i as u64);
            if !gap_free || audit.is_empty() {
                return Err(violation(
                    &trace,
                    format!("audit: deployment {id} has a broken trail"),
                ));
            }
        }
    }
    Ok(counts)
}

async fn futures_join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    tokio::join!(a, b)
}

/// One delivery to the function that handles it; returns a trace line and the result.
async fn deliver(
    driver: &Driver,
    settings: &Settings,
    sim: &Sim,
    pager: &MemoryPager,
    clock: &dyn Clock,
    delivery: &Delivery,
    approvals: &mut u64,
) -> (String, Option<Result<Handled, handlers::HandlerError>>) {
    let envelope = |detail_type: &str, source: &str, detail: Value, id: String| {
        json!({ "version": "0", "id": id, "detail-type": detail_type, "source": source,
                "account": "123456789012", "time": "2026-11-27T08:00:00Z", "region": "us-east-1",
                "resources": [], "detail": detail })
    };
    let (line, handled) = match delivery {
        Delivery::Request {
            endpoint,
            model,
            policy,
        } => {
            // The examples watch `fraud-scorer-5xx`; each simulated endpoint has its own.
            let text = std::fs::read_to_string(repo_root().join("examples/policies").join(policy))
                .unwrap_or_default()
                .replace("fraud-scorer-5xx", &format!("{endpoint}-5xx"));
            let id = {
                let mut s = sim.state();
                format!("{:016x}{:016x}", s.rng.next_u64(), s.rng.next_u64())
            };
            let detail = json!({ "endpointName": endpoint, "modelName": model, "policy": text, "requestedBy": "sim" });
            let event = envelope("Guardrails Deployment Requested", "guardrails", detail, id);
            (
                format!("request {model} -> {endpoint} ({policy})"),
                handlers::start_deployment(driver, settings, &event).await,
            )
        }
        Delivery::EndpointChanged(e) => {
            let event = envelope(
                "SageMaker Endpoint State Change",
                "aws.sagemaker",
                json!({ "EndpointName": e }),
                "ev".to_owned(),
            );
            (
                format!("endpoint event {e}"),
                handlers::endpoint_events(driver, &event).await,
            )
        }
        Delivery::AlarmChanged(a) => {
            let detail = json!({ "alarmName": a, "state": { "value": "ALARM", "reason": "" } });
            let event = envelope(
                "CloudWatch Alarm State Change",
                "aws.cloudwatch",
                detail,
                "al".to_owned(),
            );
            (
                format!("alarm event {a}"),
                handlers::bake_watcher(driver, &event).await,
            )
        }
        Delivery::WakeUp(e) => {
            let event = json!({ "endpoint": e, "deploymentId": "any" });
            (
                format!("wake-up {e}"),
                handlers::bake_watcher(driver, &event).await,
            )
        }
        Delivery::Sweep => {
            // People approve gated deployments during the sweep, now and then.
            *approvals += 1;
            let event = envelope(
                "Scheduled Event",
                "aws.events",
                json!({}),
                "sweep".to_owned(),
            );
            let swept = handlers::bake_watcher(driver, &event).await;
            for endpoint in driver.store.active_endpoints().await.unwrap_or_default() {
                if let Ok(Some(s)) = driver.store.load(&endpoint).await
                    && matches!(s.deployment.phase, Phase::AwaitingApproval { .. })
                {
                    let detail = json!({ "endpointName": endpoint, "deploymentId": s.deployment.plan.deployment_id, "command": "approve", "by": "sim" });
                    let _ = handlers::bake_watcher(
                        driver,
                        &envelope(
                            "Guardrails Deployment Command",
                            "guardrails",
                            detail,
                            "cmd".to_owned(),
                        ),
                    )
                    .await;
                }
            }
            ("sweep".to_owned(), swept)
        }
        Delivery::Notify(change) => {
            let event = envelope(
                "Guardrails Deployment State Change",
                "guardrails",
                serde_json::to_value(change).unwrap_or_default(),
                change.event_id.clone(),
            );
            let notified =
                handlers::rollback_notifier(driver.store.as_ref(), pager, clock, settings, &event)
                    .await;
            (
                format!("notify {} {:?}", change.deployment_id, change.outcome),
                notified,
            )
        }
    };
    let summary = match &handled {
        Ok(Handled::Reconciled { deployments }) => deployments
            .iter()
            .map(|d| format!("{} {} {}", d.endpoint, d.phase, d.causes.join("; ")))
            .collect::<Vec<_>>()
            .join(" | "),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("error: {e}"),
    };
    (format!("{line} => {summary}"), Some(handled))
}

/// Invariant 4: a watched alarm in ALARM during a bake (or shift) starts a rollback in the
/// invocation that saw it.
async fn check_alarm_rule(sim: &Sim, endpoint: &str) -> Result<(), String> {
    let Ok(Some(stored)) = sim.store.load(endpoint).await else {
        return Ok(());
    };
    let d = &stored.deployment;
    if !matches!(
        d.phase,
        Phase::Baking { .. } | Phase::Shifting { .. } | Phase::AwaitingApproval { .. }
    ) {
        return Ok(());
    }
    let s = sim.state();
    let Some(world) = s.worlds.get(endpoint) else {
        return Ok(());
    };
    let alarms = world.observe().alarms;
    for name in d.plan.watched_alarm_names() {
        if alarms
            .get(name)
            .is_some_and(|a| a.state == AlarmState::Alarm)
        {
            return Err(format!(
                "invariant 4: {endpoint} is {} with alarm {name} in ALARM after an invocation",
                d.phase.label()
            ));
        }
    }
    Ok(())
}

/// Invariants 1, 2, 3 and 5, on the store and the world after a delivery.
async fn check(sim: &Sim, store: &MemoryStore) -> Result<(), String> {
    let endpoints: Vec<String> = sim.state().worlds.keys().cloned().collect();
    for endpoint in endpoints {
        let active = store.load(&endpoint).await.ok().flatten();
        let history = store.history(&endpoint);
        let (config, traffic) = {
            let s = sim.state();
            let w = &s.worlds[&endpoint];
            (w.config_name().to_owned(), w.traffic())
        };
        if let Some(a) = &active
            && history
                .iter()
                .any(|h| h.deployment.plan.deployment_id == a.deployment.plan.deployment_id)
        {
            return Err(format!(
                "invariant 6: deployment {} is active again after it ended",
                a.deployment.plan.deployment_id
            ));
        }
        // Invariants 2 and 3 are about traffic Guardrails moves; SageMaker moves a native one.
        if let Some(a) = &active
            && a.deployment.plan.engine == Engine::Variant
        {
            let plan = &a.deployment.plan;
            let audit = store
                .audit(&endpoint, &plan.deployment_id)
                .await
                .unwrap_or_default();
            let allowed = audit
                .iter()
                .filter_map(|e| match e.transition.to {
                    Phase::Shifting { step } | Phase::Baking { step, .. } => {
                        plan.steps.get(step).map(|s| s.green_share)
                    }
                    _ => None,
                })
                .max()
                .unwrap_or(Share::ZERO);
            let green = traffic
                .iter()
                .find(|(v, _)| *v == plan.green.variant_name)
                .map_or(0.0, |(_, s)| *s);
            if green > allowed.fraction() + 1e-6 {
                return Err(format!(
                    "invariant 2: {endpoint} sends {green:.4} of requests to green; the steps reached allow {allowed}"
                ));
            }
            let final_bake_passed = audit.iter().any(|e| {
                e.transition.cause
                    == Cause::BakePassed {
                        step: plan.last_step(),
                    }
            });
            let blue_gone = !traffic.iter().any(|(v, _)| *v == plan.blue.variant_name);
            if blue_gone && !final_bake_passed {
                return Err(format!(
                    "invariant 3: {endpoint} removed blue before the final bake passed"
                ));
            }
        }
        if active.is_none()
            && let Some(last) = history.last()
            && matches!(last.deployment.phase, Phase::RolledBack { .. })
        {
            let plan = &last.deployment.plan;
            // Native: the new fleet kept blue's variant name; the config tells them apart.
            let full = plan.engine == Engine::Native
                || traffic
                    .iter()
                    .all(|(v, s)| *v != plan.green.variant_name || *s == 0.0);
            if config != plan.blue_config_name || !full {
                return Err(format!(
                    "invariant 5: {endpoint} rolled back but serves {config} with {traffic:?}"
                ));
            }
        }
    }
    Ok(())
}

/// The number of seeds to run: `GUARDRAILS_SIM_RUNS`, or `default`.
pub fn runs(default: u64) -> u64 {
    std::env::var("GUARDRAILS_SIM_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The seed to reproduce, if `GUARDRAILS_SEED` is set.
pub fn seed() -> Option<u64> {
    std::env::var("GUARDRAILS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
}
