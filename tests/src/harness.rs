//! The real driver wired to in-memory ports and the stand-in endpoint, on virtual time, with
//! switches to inject crashes (a port call that fails at a chosen point), throttling and
//! conflicting writers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use guardrails::core::{Action, AlarmView, ConfigVariant, EndpointView, Phase};
use guardrails::driver::{Driver, DriverError, Limits, Outcome};
use guardrails::events::StateChange;
use guardrails::memory::{MemoryBus, MemoryMetrics, MemoryStore, MemoryWaker, VirtualClock};
use guardrails::plan::{Fleet, ScalableTarget, Suspended};
use guardrails::policy::DeploymentConfig;
use guardrails::ports::{
    Alarms, AuditEntry, Clock, Endpoints, ErrorKind, GreenAlarm, PackageView, PageClaim, PortError,
    PortResult, SentPage, Store, Stored,
};
use guardrails::preflight::AlarmDefinition;
use guardrails::units::{Share, Timestamp};

use crate::world::World;

/// Which port call fails, to stand for the Lambda dying at that point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// The n-th (from 1) call that changes the endpoint fails after the world has applied it:
    /// the driver dies between acting and saving.
    AfterAct(u32),
    /// The n-th (from 1) call that changes the endpoint fails before the world sees it: the
    /// driver dies between saving and acting.
    BeforeAct(u32),
}

/// The stand-in endpoint and its alarms behind the driver's ports.
#[derive(Debug)]
pub struct WorldPorts {
    pub world: Mutex<World>,
    crash: Mutex<Option<Crash>>,
    changes: AtomicU32,
    crashes: AtomicU32,
    /// Calls still to be throttled before they go through.
    throttle: AtomicU32,
    /// APIs (IAM's names) that fail on every call, with the error they give: refusals that
    /// never succeed, or outages.
    failing: Mutex<BTreeMap<&'static str, PortError>>,
    /// Every change the world accepted, in order.
    pub log: Mutex<Vec<String>>,
    /// The model registry: package version ARN to its approval and status.
    pub packages: Mutex<BTreeMap<String, (String, String)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn crash_error() -> PortError {
    PortError::new(ErrorKind::Transient, "injected crash")
}

impl WorldPorts {
    pub fn new(world: World) -> WorldPorts {
        WorldPorts {
            world: Mutex::new(world),
            crash: Mutex::new(None),
            changes: AtomicU32::new(0),
            crashes: AtomicU32::new(0),
            throttle: AtomicU32::new(0),
            failing: Mutex::new(BTreeMap::new()),
            log: Mutex::new(Vec::new()),
            packages: Mutex::new(BTreeMap::new()),
        }
    }

    /// Registers a model package version with its approval (`Approved`...) and `Completed`.
    pub fn register_package(&self, arn: &str, approval: &str) {
        lock(&self.packages).insert(
            arn.to_owned(),
            (approval.to_owned(), "Completed".to_owned()),
        );
    }

    /// Every call of `api` is refused from now on, with `message`.
    pub fn refuse(&self, api: &'static str, message: &str) {
        lock(&self.failing).insert(
            api,
            PortError::new(ErrorKind::Refused, message).from_api(api),
        );
    }

    /// Every call of `api` fails with an error worth retrying from now on (an outage).
    pub fn fail(&self, api: &'static str, message: &str) {
        lock(&self.failing).insert(
            api,
            PortError::new(ErrorKind::Transient, message).from_api(api),
        );
    }

    /// `api` works again.
    pub fn heal(&self, api: &'static str) {
        lock(&self.failing).remove(api);
    }

    fn failing(&self, api: &'static str) -> PortResult<()> {
        match lock(&self.failing).get(api) {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }

    pub fn crash(&self, crash: Option<Crash>) {
        *lock(&self.crash) = crash;
        self.changes.store(0, Ordering::SeqCst);
    }

    /// How many injected crashes happened.
    pub fn crashes(&self) -> u32 {
        self.crashes.load(Ordering::SeqCst)
    }

    pub fn throttle_next(&self, calls: u32) {
        self.throttle.store(calls, Ordering::SeqCst);
    }

    pub fn log(&self) -> Vec<String> {
        lock(&self.log).clone()
    }

    fn throttled(&self) -> PortResult<()> {
        let left = self.throttle.load(Ordering::SeqCst);
        if left > 0 {
            self.throttle.store(left - 1, Ordering::SeqCst);
            return Err(PortError::new(ErrorKind::Throttled, "Rate exceeded"));
        }
        Ok(())
    }

    fn change(&self, action: Action, what: String) -> PortResult<()> {
        self.throttled()?;
        self.failing(action.api())?;
        let n = self.changes.fetch_add(1, Ordering::SeqCst) + 1;
        let crash = *lock(&self.crash);
        if crash == Some(Crash::BeforeAct(n)) {
            self.crashes.fetch_add(1, Ordering::SeqCst);
            return Err(crash_error());
        }
        let applied = self.world().apply(&action).map_err(|message| {
            let kind = if message.starts_with("Cannot update in-progress") {
                ErrorKind::InProgress
            } else {
                ErrorKind::Refused
            };
            PortError::new(kind, message)
        });
        if applied.is_ok() {
            lock(&self.log).push(what);
        }
        applied?;
        if crash == Some(Crash::AfterAct(n)) {
            self.crashes.fetch_add(1, Ordering::SeqCst);
            return Err(crash_error());
        }
        Ok(())
    }
}

#[async_trait]
impl Endpoints for WorldPorts {
    async fn describe(&self, _endpoint: &str) -> PortResult<Option<EndpointView>> {
        self.throttled()?;
        self.failing("sagemaker:DescribeEndpoint")?;
        Ok(self.world().observe().endpoint)
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
        self.change(action, format!("CreateEndpointConfig {config}"))
    }

    async fn update_endpoint(
        &self,
        _endpoint: &str,
        config: &str,
        guardrails: Option<&DeploymentConfig>,
        retain_variant_properties: bool,
    ) -> PortResult<()> {
        let action = Action::UpdateEndpoint {
            config_name: config.to_owned(),
            deployment_config: guardrails.cloned(),
            retain_variant_properties,
        };
        self.change(action, format!("UpdateEndpoint {config}"))
    }

    async fn scalable_target(
        &self,
        _endpoint: &str,
        _variant: &str,
    ) -> PortResult<Option<ScalableTarget>> {
        self.throttled()?;
        Ok(self.world().scaling.clone())
    }

    async fn set_scaling(
        &self,
        _endpoint: &str,
        variant: &str,
        suspended: Suspended,
    ) -> PortResult<()> {
        let action = Action::SetScaling {
            variant_name: variant.to_owned(),
            suspended,
        };
        self.change(
            action,
            format!("RegisterScalableTarget {variant} {suspended:?}"),
        )
    }

    async fn set_weights(
        &self,
        _endpoint: &str,
        blue: &str,
        green: &str,
        green_share: Share,
    ) -> PortResult<()> {
        let action = Action::SetWeights {
            blue_variant: blue.to_owned(),
            green_variant: green.to_owned(),
            green_share,
        };
        self.change(action, format!("SetWeights green {green_share}"))
    }

    async fn set_instance_count(
        &self,
        _endpoint: &str,
        variant: &str,
        count: u32,
    ) -> PortResult<()> {
        let action = Action::SetInstanceCount {
            variant_name: variant.to_owned(),
            instance_count: count,
        };
        self.change(action, format!("SetInstanceCount {variant} {count}"))
    }

    async fn delete_config(&self, config: &str) -> PortResult<()> {
        let action = Action::DeleteEndpointConfig {
            config_name: config.to_owned(),
        };
        self.failing(action.api())?;
        self.world()
            .apply(&action)
            .map_err(|m| PortError::new(ErrorKind::Refused, m))
    }

    async fn fleet(&self, endpoint: &str) -> PortResult<Option<Fleet>> {
        self.throttled()?;
        Ok(self.world().fleet(endpoint))
    }

    async fn create_model_from_package(
        &self,
        model: &str,
        package: &str,
        _role: &str,
    ) -> PortResult<()> {
        lock(&self.log).push(format!("CreateModel {model} from {package}"));
        Ok(())
    }

    async fn model_package(&self, arn: &str) -> PortResult<Option<PackageView>> {
        self.failing("sagemaker:DescribeModelPackage")?;
        Ok(lock(&self.packages)
            .get(arn)
            .map(|(approval, status)| PackageView {
                arn: arn.to_owned(),
                approval_status: approval.clone(),
                status: status.clone(),
            }))
    }
}

#[async_trait]
impl Alarms for WorldPorts {
    async fn states(&self, names: &[&str]) -> PortResult<BTreeMap<String, AlarmView>> {
        self.failing("cloudwatch:DescribeAlarms")?;
        let all = self.world().observe().alarms;
        Ok(all
            .into_iter()
            .filter(|(name, _)| names.contains(&name.as_str()))
            .collect())
    }

    /// The world's alarms have a state but no metric: the metric checks do not apply to them.
    async fn definitions(&self, names: &[&str]) -> PortResult<BTreeMap<String, AlarmDefinition>> {
        Ok(self.world().alarm_definitions(names))
    }

    async fn fired_since(
        &self,
        names: &[&str],
        since: Timestamp,
    ) -> PortResult<BTreeMap<String, (Timestamp, String)>> {
        self.failing("cloudwatch:DescribeAlarmHistory")?;
        Ok(self.world().fired_since(names, since))
    }

    /// The world's alarms are always fed.
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
        self.failing(action.api())?;
        self.world()
            .apply(&action)
            .map_err(|m| PortError::new(ErrorKind::Refused, m))
    }

    async fn raise(&self, name: &str, reason: &str) -> PortResult<()> {
        let action = Action::RaiseAlarm {
            alarm_name: name.to_owned(),
            reason: reason.to_owned(),
        };
        self.failing(action.api())?;
        self.world()
            .apply(&action)
            .map_err(|m| PortError::new(ErrorKind::Refused, m))
    }

    async fn delete_alarms(&self, names: &[String]) -> PortResult<()> {
        let action = Action::DeleteAlarms {
            alarm_names: names.to_vec(),
        };
        self.failing(action.api())?;
        self.world()
            .apply(&action)
            .map_err(|m| PortError::new(ErrorKind::Refused, m))
    }
}

/// What a test does around a store's saves; every other call passes through unchanged.
#[async_trait]
pub trait SaveHook: Send + Sync {
    /// Runs before each save; an error is returned instead of saving.
    async fn before_save(&self) -> PortResult<()>;
    /// Sees each save's result.
    fn after_save(&self, _saved: &PortResult<()>) {}
}

/// Any store, with a `SaveHook` around its saves.
pub struct HookedStore<H> {
    pub inner: Arc<dyn Store>,
    pub hook: H,
}

impl<H> std::fmt::Debug for HookedStore<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookedStore").finish_non_exhaustive()
    }
}

#[async_trait]
impl<H: SaveHook> Store for HookedStore<H> {
    async fn load(&self, endpoint: &str) -> PortResult<Option<Stored>> {
        self.inner.load(endpoint).await
    }
    async fn create(&self, record: &Stored, audit: &[AuditEntry]) -> PortResult<()> {
        self.inner.create(record, audit).await
    }
    async fn save(&self, record: &Stored, expected: u64, audit: &[AuditEntry]) -> PortResult<()> {
        self.hook.before_save().await?;
        let saved = self.inner.save(record, expected, audit).await;
        self.hook.after_save(&saved);
        saved
    }
    async fn archive(&self, record: &Stored, expected: u64) -> PortResult<()> {
        self.inner.archive(record, expected).await
    }
    async fn active_endpoints(&self) -> PortResult<Vec<String>> {
        self.inner.active_endpoints().await
    }
    async fn watching(&self, alarm_name: &str) -> PortResult<Vec<String>> {
        self.inner.watching(alarm_name).await
    }
    async fn wake_scheduled(&self, endpoint: &str, id: &str, at: Timestamp) -> PortResult<()> {
        self.inner.wake_scheduled(endpoint, id, at).await
    }
    async fn load_many(&self, endpoints: &[String]) -> PortResult<Vec<Stored>> {
        self.inner.load_many(endpoints).await
    }
    async fn audit(&self, endpoint: &str, id: &str) -> PortResult<Vec<AuditEntry>> {
        self.inner.audit(endpoint, id).await
    }
    async fn claim_page(
        &self,
        endpoint: &str,
        id: &str,
        now: Timestamp,
        stale: u32,
    ) -> PortResult<PageClaim> {
        self.inner.claim_page(endpoint, id, now, stale).await
    }
    async fn unpaged(&self, before: Timestamp) -> PortResult<Vec<StateChange>> {
        self.inner.unpaged(before).await
    }
    async fn page_sent(&self, endpoint: &str, id: &str, sent: &SentPage) -> PortResult<()> {
        self.inner.page_sent(endpoint, id, sent).await
    }
    async fn record(&self, endpoint: &str, id: &str, at: Timestamp) -> PortResult<Option<Stored>> {
        self.inner.record(endpoint, id, at).await
    }
    async fn history(&self, endpoint: &str, limit: usize) -> PortResult<Vec<Stored>> {
        self.inner.history(endpoint, limit).await
    }
    async fn find(&self, id: &str) -> PortResult<Option<(String, Timestamp)>> {
        self.inner.find(id).await
    }
}

/// Fails the n-th save (from 1) without writing: the invocation dies there.
#[derive(Debug, Default)]
pub struct CrashOnSave {
    fail_save: AtomicU32,
    saves: AtomicU32,
    crashes: AtomicU32,
}

#[async_trait]
impl SaveHook for CrashOnSave {
    async fn before_save(&self) -> PortResult<()> {
        let n = self.saves.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_save.load(Ordering::SeqCst) {
            self.crashes.fetch_add(1, Ordering::SeqCst);
            return Err(crash_error());
        }
        Ok(())
    }
}

/// A store whose n-th save can be made to fail.
pub type CrashingStore = HookedStore<CrashOnSave>;

impl CrashingStore {
    pub fn new(inner: Arc<dyn Store>) -> CrashingStore {
        HookedStore {
            inner,
            hook: CrashOnSave::default(),
        }
    }

    /// How many injected save failures happened.
    pub fn crashes(&self) -> u32 {
        self.hook.crashes.load(Ordering::SeqCst)
    }

    pub fn fail_save(&self, n: u32) {
        self.hook.saves.store(0, Ordering::SeqCst);
        self.hook.fail_save.store(n, Ordering::SeqCst);
    }
}

/// The driver and everything it talks to.
pub struct Harness {
    pub ports: Arc<WorldPorts>,
    /// The judge's counts, as a test sets them.
    pub metrics: Arc<MemoryMetrics>,
    /// The hooks' answers a test scripts, and the calls made.
    pub hooks: Arc<guardrails::memory::MemoryHooks>,
    /// The store under the crash switch, for reading history in assertions.
    pub memory: Arc<MemoryStore>,
    pub store: Arc<CrashingStore>,
    pub bus: Arc<MemoryBus>,
    pub waker: Arc<MemoryWaker>,
    pub clock: Arc<VirtualClock>,
    pub driver: Driver,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").finish_non_exhaustive()
    }
}

/// The most invocations one deployment may take in a test.
const MAX_INVOCATIONS: usize = 1_000;

impl Harness {
    pub fn new(world: World) -> Harness {
        let clock = Arc::new(VirtualClock::new(world.now));
        let ports = Arc::new(WorldPorts::new(world));
        let memory = Arc::new(MemoryStore::default());
        let store = Arc::new(CrashingStore::new(memory.clone()));
        let bus = Arc::new(MemoryBus::default());
        let waker = Arc::new(MemoryWaker::default());
        let metrics = Arc::new(MemoryMetrics::default());
        let hooks = Arc::new(guardrails::memory::MemoryHooks::default());
        let driver = Driver {
            endpoints: ports.clone(),
            alarms: ports.clone(),
            metrics: metrics.clone(),
            hooks: hooks.clone(),
            store: store.clone(),
            bus: bus.clone(),
            waker: waker.clone(),
            clock: clock.clone(),
            limits: Limits::default(),
        };
        Harness {
            ports,
            metrics,
            hooks,
            memory,
            store,
            bus,
            waker,
            clock,
            driver,
        }
    }

    /// A second driver on the same world and store, as a concurrent Lambda invocation.
    pub fn another_driver(&self) -> Driver {
        self.driver.clone()
    }

    /// Moves virtual time (and the world) to `to`.
    pub fn advance_to(&self, to: Timestamp) {
        let mut world = self.ports.world();
        world.advance_to(to);
        self.clock.set(world.now);
    }

    /// Reconciles on every wake-up and every change of the world until the deployment ends;
    /// errors (injected crashes) are retried at the next step, as Lambda would.
    pub async fn run_to_end(&self, endpoint: &str) -> Result<Phase, DriverError> {
        let mut last = None;
        for _ in 0..MAX_INVOCATIONS {
            match self.driver.reconcile(endpoint, None).await {
                Ok(Outcome::NoDeployment) => {
                    let done = self.memory.history(endpoint);
                    return Ok(done
                        .last()
                        .map_or(Phase::Succeeded, |s| s.deployment.phase.clone()));
                }
                Ok(Outcome::Reconciled(report)) => {
                    if report.phase.is_final() {
                        return Ok(report.phase);
                    }
                    last = None;
                }
                Err(e) => last = Some(e),
            }
            let now = self.clock.now();
            let next = [
                self.waker.wake_up(endpoint),
                self.ports.world().next_change(),
            ]
            .into_iter()
            .flatten()
            .filter(|at| *at > now)
            .min()
            .unwrap_or(now.plus_secs(1));
            self.advance_to(next);
        }
        Err(last.unwrap_or(DriverError::TooManyConflicts(0)))
    }
}

/// Any `Endpoints`, with the n-th change failing after it was applied: the invocation dies
/// between acting and saving.
pub struct CrashAfterAct {
    pub inner: Arc<dyn Endpoints>,
    crash_at: u32,
    changes: AtomicU32,
    crashes: AtomicU32,
}

impl std::fmt::Debug for CrashAfterAct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrashAfterAct")
            .field("crash_at", &self.crash_at)
            .finish()
    }
}

impl CrashAfterAct {
    pub fn new(inner: Arc<dyn Endpoints>, crash_at: u32) -> CrashAfterAct {
        CrashAfterAct {
            inner,
            crash_at,
            changes: AtomicU32::new(0),
            crashes: AtomicU32::new(0),
        }
    }

    pub fn crashes(&self) -> u32 {
        self.crashes.load(Ordering::SeqCst)
    }

    fn after(&self, done: PortResult<()>) -> PortResult<()> {
        done?;
        if self.changes.fetch_add(1, Ordering::SeqCst) + 1 == self.crash_at {
            self.crashes.fetch_add(1, Ordering::SeqCst);
            return Err(crash_error());
        }
        Ok(())
    }
}

#[async_trait]
impl Endpoints for CrashAfterAct {
    async fn describe(&self, endpoint: &str) -> PortResult<Option<EndpointView>> {
        self.inner.describe(endpoint).await
    }
    async fn scalable_target(
        &self,
        endpoint: &str,
        variant: &str,
    ) -> PortResult<Option<ScalableTarget>> {
        self.inner.scalable_target(endpoint, variant).await
    }
    async fn set_scaling(
        &self,
        endpoint: &str,
        variant: &str,
        suspended: Suspended,
    ) -> PortResult<()> {
        self.inner.set_scaling(endpoint, variant, suspended).await
    }
    async fn create_config(
        &self,
        config: &str,
        from_config: &str,
        variants: &[ConfigVariant],
    ) -> PortResult<()> {
        self.inner
            .create_config(config, from_config, variants)
            .await
    }
    async fn update_endpoint(
        &self,
        endpoint: &str,
        config: &str,
        guardrails: Option<&DeploymentConfig>,
        retain_variant_properties: bool,
    ) -> PortResult<()> {
        self.after(
            self.inner
                .update_endpoint(endpoint, config, guardrails, retain_variant_properties)
                .await,
        )
    }
    async fn set_weights(
        &self,
        endpoint: &str,
        blue: &str,
        green: &str,
        share: Share,
    ) -> PortResult<()> {
        self.after(self.inner.set_weights(endpoint, blue, green, share).await)
    }
    async fn set_instance_count(
        &self,
        endpoint: &str,
        variant: &str,
        count: u32,
    ) -> PortResult<()> {
        self.after(
            self.inner
                .set_instance_count(endpoint, variant, count)
                .await,
        )
    }
    async fn delete_config(&self, config: &str) -> PortResult<()> {
        self.inner.delete_config(config).await
    }
    async fn fleet(&self, endpoint: &str) -> PortResult<Option<Fleet>> {
        self.inner.fleet(endpoint).await
    }
    async fn create_model_from_package(
        &self,
        model: &str,
        package: &str,
        role: &str,
    ) -> PortResult<()> {
        self.inner
            .create_model_from_package(model, package, role)
            .await
    }
    async fn model_package(&self, arn: &str) -> PortResult<Option<PackageView>> {
        self.inner.model_package(arn).await
    }
}

/// Makes the first two saves wait for each other: two invocations have both loaded, observed
/// and decided on the same version before either writes. Counts the conflicts that follow.
#[derive(Debug)]
pub struct Race {
    deciding: tokio::sync::Barrier,
    saves: AtomicU32,
    conflicts: AtomicU32,
}

#[async_trait]
impl SaveHook for Race {
    async fn before_save(&self) -> PortResult<()> {
        if self.saves.fetch_add(1, Ordering::SeqCst) < 2 {
            self.deciding.wait().await;
        }
        Ok(())
    }

    fn after_save(&self, saved: &PortResult<()>) {
        if saved.as_ref().is_err_and(|e| e.kind == ErrorKind::Conflict) {
            self.conflicts.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A store on which two invocations race.
pub type RacingStore = HookedStore<Race>;

impl RacingStore {
    pub fn new(inner: Arc<dyn Store>) -> RacingStore {
        HookedStore {
            inner,
            hook: Race {
                deciding: tokio::sync::Barrier::new(2),
                saves: AtomicU32::new(0),
                conflicts: AtomicU32::new(0),
            },
        }
    }

    /// Saves refused because the other invocation wrote first.
    pub fn conflicts(&self) -> u32 {
        self.hook.conflicts.load(Ordering::SeqCst)
    }
}
