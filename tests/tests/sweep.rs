//! The sweep and the alarm path at scale (issue 15), on many endpoints at once, each its own
//! stand-in world: an alarm's state change reads only the deployments that watch it (the store
//! reads are counted), and the sweep reads records and alarm states in batches, fans out past
//! one shard, and asks Scheduler nothing when the wake-up it holds is still good.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use guardrails::core::{AlarmView, ConfigVariant, EndpointView, Phase};
use guardrails::driver::{Driver, Limits};
use guardrails::handlers::{self, Handled, Settings};
use guardrails::memory::{MemoryBus, MemoryHooks, MemoryMetrics, MemoryStore, VirtualClock};
use guardrails::plan::{Fleet, Plan};
use guardrails::policy::{DeploymentConfig, Policy};
use guardrails::ports::{Alarms, Endpoints, GreenAlarm, PortResult, Store, Waker};
use guardrails::preflight::AlarmDefinition;
use guardrails::units::{Share, Timestamp};
use guardrails_tests::harness::WorldPorts;
use guardrails_tests::world::World;
use guardrails_tests::{T0, fleet_and_green, repo_root};
use serde_json::json;

/// Many endpoints, each its own world; counts the calls that reach them.
#[derive(Default)]
struct Fleetwide {
    worlds: BTreeMap<String, Arc<WorldPorts>>,
    describe_alarms: AtomicUsize,
    describe_endpoint: AtomicUsize,
    wake_ups: AtomicUsize,
}

impl Fleetwide {
    fn world(&self, endpoint: &str) -> &WorldPorts {
        self.worlds
            .get(endpoint)
            .unwrap_or_else(|| panic!("no world {endpoint}"))
    }

    /// The world whose alarm this is (each endpoint's alarms start with its name).
    fn world_of_alarm(&self, alarm: &str) -> Option<&WorldPorts> {
        self.worlds
            .iter()
            .find(|(e, _)| alarm.starts_with(&format!("{e}-")) || alarm.contains(&format!("-{e}-")))
            .map(|(_, w)| w.as_ref())
    }
}

#[async_trait]
impl Endpoints for Fleetwide {
    async fn describe(&self, endpoint: &str) -> PortResult<Option<EndpointView>> {
        self.describe_endpoint.fetch_add(1, Ordering::SeqCst);
        self.world(endpoint).describe(endpoint).await
    }
    async fn create_config(&self, c: &str, from: &str, v: &[ConfigVariant]) -> PortResult<()> {
        // Configs are named after the deployment (`guardrails-<id>-...`, id `d-<endpoint>`).
        let endpoint = c
            .strip_prefix("guardrails-d-")
            .and_then(|r| r.get(..6))
            .unwrap_or_default();
        self.world(endpoint).create_config(c, from, v).await
    }
    async fn update_endpoint(
        &self,
        e: &str,
        c: &str,
        g: Option<&DeploymentConfig>,
        r: bool,
    ) -> PortResult<()> {
        self.world(e).update_endpoint(e, c, g, r).await
    }
    async fn set_weights(&self, e: &str, b: &str, g: &str, s: Share) -> PortResult<()> {
        self.world(e).set_weights(e, b, g, s).await
    }
    async fn set_instance_count(&self, e: &str, v: &str, n: u32) -> PortResult<()> {
        self.world(e).set_instance_count(e, v, n).await
    }
    async fn delete_config(&self, c: &str) -> PortResult<()> {
        for w in self.worlds.values() {
            w.delete_config(c).await?;
        }
        Ok(())
    }
    async fn fleet(&self, e: &str) -> PortResult<Option<Fleet>> {
        self.world(e).fleet(e).await
    }
    async fn create_model_from_package(&self, m: &str, p: &str, r: &str) -> PortResult<()> {
        let _ = (m, p, r);
        Ok(())
    }
}

#[async_trait]
impl Alarms for Fleetwide {
    async fn states(&self, names: &[&str]) -> PortResult<BTreeMap<String, AlarmView>> {
        assert!(names.len() <= 100, "DescribeAlarms takes at most 100 names");
        self.describe_alarms.fetch_add(1, Ordering::SeqCst);
        let mut found = BTreeMap::new();
        for w in self.worlds.values() {
            found.extend(w.states(names).await?);
        }
        Ok(found)
    }
    async fn put_green_alarm(&self, alarm: GreenAlarm<'_>) -> PortResult<()> {
        self.world(alarm.endpoint_name).put_green_alarm(alarm).await
    }
    async fn delete_alarms(&self, names: &[String]) -> PortResult<()> {
        for w in self.worlds.values() {
            w.delete_alarms(names).await?;
        }
        Ok(())
    }
    async fn raise(&self, name: &str, reason: &str) -> PortResult<()> {
        match self.world_of_alarm(name) {
            Some(w) => w.raise(name, reason).await,
            None => Ok(()),
        }
    }
    async fn fired_since(
        &self,
        names: &[&str],
        since: Timestamp,
    ) -> PortResult<BTreeMap<String, (Timestamp, String)>> {
        let mut found = BTreeMap::new();
        for w in self.worlds.values() {
            found.extend(w.fired_since(names, since).await?);
        }
        Ok(found)
    }
    async fn definitions(&self, names: &[&str]) -> PortResult<BTreeMap<String, AlarmDefinition>> {
        let mut found = BTreeMap::new();
        for w in self.worlds.values() {
            found.extend(w.definitions(names).await?);
        }
        Ok(found)
    }
    async fn has_data(&self, _: &AlarmDefinition, _: Timestamp, _: Timestamp) -> PortResult<bool> {
        Ok(true)
    }
}

#[async_trait]
impl Waker for Fleetwide {
    async fn wake_at(&self, _: &str, _: &str, _: Timestamp, _: bool) -> PortResult<()> {
        self.wake_ups.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct Stage {
    fleet: Arc<Fleetwide>,
    store: Arc<MemoryStore>,
    bus: Arc<MemoryBus>,
    clock: Arc<VirtualClock>,
    driver: Driver,
    settings: Settings,
}

fn endpoint_name(i: usize) -> String {
    format!("ep{i:04}")
}

/// The canary example's plan for endpoint `endpoint`, watching its own `<endpoint>-5xx`.
fn plan_for(endpoint: &str) -> Plan {
    let path = repo_root().join("examples/policies/canary.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let policy =
        Policy::parse(&text.replace("fraud-scorer-5xx", &format!("{endpoint}-5xx"))).unwrap();
    let (mut fleet, green) = fleet_and_green(2);
    fleet.endpoint_name = endpoint.to_owned();
    Plan::new(&format!("d-{endpoint}"), &policy, &fleet, &green).unwrap()
}

/// `n` endpoints, each with a canary deployment started and reconciled once (green is being
/// provisioned).
async fn stage(n: usize, shard_size: usize) -> Stage {
    let mut fleet = Fleetwide::default();
    for i in 0..n {
        let name = endpoint_name(i);
        let mut world = World::serving(T0, "fraud-scorer-v1", "AllTraffic", "fraud-scorer-v1", 2)
            .with_endpoint_alarm(&format!("{name}-5xx"));
        world.endpoint_name = name.clone();
        fleet.worlds.insert(name, Arc::new(WorldPorts::new(world)));
    }
    let fleet = Arc::new(fleet);
    let store = Arc::new(MemoryStore::default());
    let bus = Arc::new(MemoryBus::default());
    let clock = Arc::new(VirtualClock::new(T0));
    let driver = Driver {
        endpoints: fleet.clone(),
        alarms: fleet.clone(),
        metrics: Arc::new(MemoryMetrics::default()),
        hooks: Arc::new(MemoryHooks::default()),
        store: store.clone(),
        bus: bus.clone(),
        waker: fleet.clone(),
        clock: clock.clone(),
        limits: Limits {
            sweep_shard_size: shard_size,
            ..Limits::default()
        },
    };
    for i in 0..n {
        let name = endpoint_name(i);
        driver.start(plan_for(&name)).await.unwrap();
        let started = store.load(&name).await.unwrap();
        assert!(
            started.is_some_and(|s| !s.deployment.is_final()),
            "{name} is under way"
        );
    }
    let settings = Settings {
        table: "guardrails".to_owned(),
        ..guardrails_tests::flow::local_settings()
    };
    Stage {
        fleet,
        store,
        bus,
        clock,
        driver,
        settings,
    }
}

/// Moves time and every world to `at`.
fn advance(s: &Stage, at: Timestamp) {
    for w in s.fleet.worlds.values() {
        w.world().advance_to(at);
    }
    s.clock.set(at);
}

fn event(detail_type: &str, source: &str, detail: serde_json::Value) -> serde_json::Value {
    json!({
        "version": "0", "id": "e1", "detail-type": detail_type, "source": source,
        "account": "123456789012", "time": "2026-11-27T08:01:00Z", "region": "us-east-1",
        "resources": [], "detail": detail
    })
}

fn reconciled(handled: &Handled) -> Vec<String> {
    match handled {
        Handled::Reconciled { deployments } => {
            deployments.iter().map(|d| d.endpoint.clone()).collect()
        }
        other => panic!("not reconciled: {other:?}"),
    }
}

#[tokio::test]
async fn an_alarm_event_reads_only_the_deployments_that_watch_the_alarm() {
    let s = stage(50, 100).await;
    let before = s.store.reads();
    let alarm = event(
        "CloudWatch Alarm State Change",
        "aws.cloudwatch",
        json!({ "alarmName": "ep0007-5xx", "state": { "value": "ALARM", "reason": "" } }),
    );
    let handled = handlers::bake_watcher(&s.driver, &s.settings, &alarm)
        .await
        .unwrap();
    assert_eq!(reconciled(&handled), ["ep0007"]);
    // One query of the alarm index and one read of the deployment that watches it, where a
    // scan of the active index and a read of each of the 50 was before.
    assert_eq!(s.store.reads() - before, 2);

    let nobody = event(
        "CloudWatch Alarm State Change",
        "aws.cloudwatch",
        json!({ "alarmName": "someone-elses", "state": { "value": "ALARM", "reason": "" } }),
    );
    let before = s.store.reads();
    let handled = handlers::bake_watcher(&s.driver, &s.settings, &nobody)
        .await
        .unwrap();
    assert!(matches!(handled, Handled::Ignored { .. }), "{handled:?}");
    assert_eq!(s.store.reads() - before, 1, "the index query alone");
}

#[tokio::test]
async fn the_sweep_reads_in_batches_fans_out_past_a_shard_and_leaves_good_wake_ups_alone() {
    let s = stage(250, 100).await;
    let sweep = event("Scheduled Event", "aws.events", json!({}));
    let reads = s.store.reads();
    let alarm_calls = s.fleet.describe_alarms.load(Ordering::SeqCst);
    let handled = handlers::bake_watcher(&s.driver, &s.settings, &sweep)
        .await
        .unwrap();
    let here = reconciled(&handled);
    assert_eq!(here.len(), 100, "the first shard here");
    assert_eq!(here.first().map(String::as_str), Some("ep0000"));
    // The active index, one batched read of 100 records (unpaged outcomes are another index).
    assert_eq!(s.store.reads() - reads, 2);
    // Each deployment watches its own alarms (its endpoint's, green's, the final fleet's):
    // 100 names a call, whoever watches them.
    let names = plan_for("ep0000").watched_alarm_names().count() * 100;
    assert_eq!(
        s.fleet.describe_alarms.load(Ordering::SeqCst) - alarm_calls,
        names.div_ceil(100)
    );

    let shards = s.bus.take_shards();
    assert_eq!(
        shards
            .iter()
            .map(|s| (s.endpoints.len(), s.shards))
            .collect::<Vec<_>>(),
        [(100, 3), (50, 3)]
    );
    let mut everyone = here;
    for shard in &shards {
        let event = event(
            "Guardrails Sweep Shard",
            "guardrails",
            serde_json::to_value(shard).unwrap(),
        );
        let handled = handlers::bake_watcher(&s.driver, &s.settings, &event)
            .await
            .unwrap();
        everyone.extend(reconciled(&handled));
    }
    let mut expected: Vec<String> = (0..250).map(endpoint_name).collect();
    everyone.sort();
    expected.sort();
    assert_eq!(everyone, expected, "every deployment reconciled once");

    // A minute on, nothing has changed for most of them: each is looked at (one
    // DescribeEndpoint), and Scheduler is asked again only where its wake-up has passed.
    s.clock.set(T0.plus_secs(1));
    let wake_ups = s.fleet.wake_ups.load(Ordering::SeqCst);
    let described = s.fleet.describe_endpoint.load(Ordering::SeqCst);
    s.driver.sweep_shard(&expected[..100], 1).await;
    assert_eq!(
        s.fleet.describe_endpoint.load(Ordering::SeqCst) - described,
        100
    );
    assert_eq!(
        s.fleet.wake_ups.load(Ordering::SeqCst) - wake_ups,
        0,
        "the pending wake-ups come no later than wanted"
    );
    for endpoint in &expected {
        let record = s.store.load(endpoint).await.unwrap().unwrap();
        assert!(!matches!(record.deployment.phase, Phase::RolledBack { .. }));
        assert!(record.wake_at.is_some(), "{endpoint}: its wake-up is noted");
    }
}

#[tokio::test]
async fn an_alarm_in_a_batch_rolls_back_only_its_deployment() {
    let s = stage(120, 100).await;
    // Green provisioned, then the canary's share moved: every deployment bakes its canary.
    for at in [600, 700, 800] {
        advance(&s, T0.plus_secs(at));
        for shard in guardrails::driver::shards_of(&s.store.active_endpoints().await.unwrap(), 100)
        {
            s.driver.sweep_shard(&shard, 2).await;
        }
    }
    let baking = s.store.load("ep0042").await.unwrap().unwrap();
    assert!(
        matches!(baking.deployment.phase, Phase::Baking { .. }),
        "{:?}",
        baking.deployment.phase
    );
    s.fleet
        .world("ep0042")
        .raise("ep0042-5xx", "5xx past 1%")
        .await
        .unwrap();
    let swept = s.driver.sweep().await.unwrap();
    assert_eq!(swept.fanned_out, 1);
    let rolling: Vec<&str> = swept
        .reports
        .iter()
        .filter(|r| {
            r.transitions
                .iter()
                .any(|t| matches!(t.to, Phase::RollingBack { .. }))
        })
        .map(|r| r.endpoint_name.as_str())
        .collect();
    assert_eq!(rolling, ["ep0042"]);
}

/// The memory store, with every batched read failing (a record in the batch that cannot be
/// read, or DynamoDB refusing the batch).
#[derive(Debug)]
struct NoBatches(Arc<MemoryStore>);

#[async_trait]
impl Store for NoBatches {
    async fn load_many(&self, _: &[String]) -> PortResult<Vec<guardrails::ports::Stored>> {
        Err(guardrails::ports::PortError::new(
            guardrails::ports::ErrorKind::Refused,
            "the stored record does not parse",
        ))
    }
    async fn load(&self, e: &str) -> PortResult<Option<guardrails::ports::Stored>> {
        self.0.load(e).await
    }
    async fn create(
        &self,
        r: &guardrails::ports::Stored,
        a: &[guardrails::ports::AuditEntry],
    ) -> PortResult<()> {
        self.0.create(r, a).await
    }
    async fn save(
        &self,
        r: &guardrails::ports::Stored,
        v: u64,
        a: &[guardrails::ports::AuditEntry],
    ) -> PortResult<()> {
        self.0.save(r, v, a).await
    }
    async fn archive(&self, r: &guardrails::ports::Stored, v: u64) -> PortResult<()> {
        self.0.archive(r, v).await
    }
    async fn active_endpoints(&self) -> PortResult<Vec<String>> {
        self.0.active_endpoints().await
    }
    async fn watching(&self, a: &str) -> PortResult<Vec<String>> {
        self.0.watching(a).await
    }
    async fn wake_scheduled(&self, e: &str, id: &str, at: Timestamp) -> PortResult<()> {
        self.0.wake_scheduled(e, id, at).await
    }
    async fn audit(&self, e: &str, id: &str) -> PortResult<Vec<guardrails::ports::AuditEntry>> {
        self.0.audit(e, id).await
    }
    async fn claim_page(
        &self,
        e: &str,
        id: &str,
        now: Timestamp,
        stale: u32,
    ) -> PortResult<guardrails::ports::PageClaim> {
        self.0.claim_page(e, id, now, stale).await
    }
    async fn unpaged(&self, before: Timestamp) -> PortResult<Vec<guardrails::events::StateChange>> {
        self.0.unpaged(before).await
    }
    async fn page_sent(
        &self,
        e: &str,
        id: &str,
        sent: &guardrails::ports::SentPage,
    ) -> PortResult<()> {
        self.0.page_sent(e, id, sent).await
    }
    async fn history(&self, e: &str, limit: usize) -> PortResult<Vec<guardrails::ports::Stored>> {
        Store::history(self.0.as_ref(), e, limit).await
    }
    async fn find(&self, id: &str) -> PortResult<Option<(String, Timestamp)>> {
        self.0.find(id).await
    }
    async fn record(
        &self,
        e: &str,
        id: &str,
        at: Timestamp,
    ) -> PortResult<Option<guardrails::ports::Stored>> {
        self.0.record(e, id, at).await
    }
}

#[tokio::test]
async fn a_batch_that_cannot_be_read_is_reconciled_one_by_one() {
    let s = stage(5, 100).await;
    let mut driver = s.driver.clone();
    driver.store = Arc::new(NoBatches(s.store.clone()));
    let names: Vec<String> = (0..5).map(endpoint_name).collect();
    let swept = driver.sweep_shard(&names, 1).await;
    assert!(swept.failures.is_empty(), "{:?}", swept.failures);
    assert_eq!(
        swept
            .reports
            .iter()
            .map(|r| r.endpoint_name.clone())
            .collect::<Vec<_>>(),
        names
    );
}
