//! In-memory implementations of the store, the event bus, the waker and the clock, with the
//! same contracts as the AWS adapters (conditional writes, at most one active deployment per
//! endpoint). They back the driver's tests and the simulation; production never uses them.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::core::Phase;
use crate::events::{Refusal, StateChange};
use crate::ports::{
    AuditEntry, Clock, ErrorKind, EventBus, Page, PageClaim, Pager, PortError, PortResult,
    SentPage, Store, Stored, Waker, id_taken,
};
use crate::units::Timestamp;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps half-written: every write is one
    // insert or remove. Keep going with the data.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, Default)]
struct Tables {
    active: BTreeMap<String, Stored>,
    history: Vec<Stored>,
    audit: BTreeMap<(String, String), Vec<AuditEntry>>,
    /// Every deployment id ever created, with its endpoint and start (unique in the account).
    ids: BTreeMap<String, (String, Timestamp)>,
    /// Page claims: claimed at, and what was sent once sent.
    pages: BTreeMap<(String, String), (Timestamp, Option<SentPage>)>,
}

/// The deployments table in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
    /// Reads of active deployments so far, one per DynamoDB call they would be (`load`,
    /// `load_many` per 100 keys, `watching`, `active_endpoints`).
    reads: std::sync::atomic::AtomicUsize,
}

impl MemoryStore {
    fn count_read(&self) {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many reads of active deployments were made (see `reads`).
    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Past deployments of `endpoint`, oldest first.
    pub fn history(&self, endpoint: &str) -> Vec<Stored> {
        lock(&self.tables)
            .history
            .iter()
            .filter(|s| s.deployment.plan.endpoint_name == endpoint)
            .cloned()
            .collect()
    }
}

fn append_audit(tables: &mut Tables, endpoint: &str, audit: &[AuditEntry]) {
    for entry in audit {
        tables
            .audit
            .entry((endpoint.to_owned(), entry.deployment_id.clone()))
            .or_default()
            .push(entry.clone());
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn load(&self, endpoint: &str) -> PortResult<Option<Stored>> {
        self.count_read();
        Ok(lock(&self.tables).active.get(endpoint).cloned())
    }

    async fn create(&self, record: &Stored, audit: &[AuditEntry]) -> PortResult<()> {
        let endpoint = &record.deployment.plan.endpoint_name;
        let mut tables = lock(&self.tables);
        if let Some(active) = tables.active.get(endpoint) {
            return Err(PortError::new(
                ErrorKind::AlreadyActive,
                format!("{endpoint} has {}", active.deployment.plan.deployment_id),
            ));
        }
        let id = &record.deployment.plan.deployment_id;
        match tables.ids.get(id).map(|(owner, _)| owner) {
            Some(owner) if owner == endpoint => {
                return Err(PortError::new(
                    ErrorKind::Duplicate,
                    format!("{endpoint} already ran deployment {id}"),
                ));
            }
            Some(owner) => return Err(PortError::new(ErrorKind::Refused, id_taken(id, owner))),
            None => {}
        }
        tables
            .ids
            .insert(id.clone(), (endpoint.clone(), record.deployment.started_at));
        tables.active.insert(endpoint.clone(), record.clone());
        append_audit(&mut tables, endpoint, audit);
        Ok(())
    }

    async fn save(
        &self,
        record: &Stored,
        expected_version: u64,
        audit: &[AuditEntry],
    ) -> PortResult<()> {
        let endpoint = &record.deployment.plan.endpoint_name;
        let mut tables = lock(&self.tables);
        let current = tables.active.get(endpoint);
        let matches = current.is_some_and(|c| {
            c.version == expected_version
                && c.deployment.plan.deployment_id == record.deployment.plan.deployment_id
        });
        if !matches {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!("{endpoint}: expected version {expected_version}"),
            ));
        }
        tables.active.insert(endpoint.clone(), record.clone());
        append_audit(&mut tables, endpoint, audit);
        Ok(())
    }

    async fn archive(&self, record: &Stored, expected_version: u64) -> PortResult<()> {
        let endpoint = &record.deployment.plan.endpoint_name;
        let mut tables = lock(&self.tables);
        let matches = tables.active.get(endpoint).is_some_and(|c| {
            c.version == expected_version
                && c.deployment.plan.deployment_id == record.deployment.plan.deployment_id
        });
        if !matches {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!("{endpoint}: expected version {expected_version}"),
            ));
        }
        if let Some(done) = tables.active.remove(endpoint) {
            tables.history.push(done);
        }
        Ok(())
    }

    async fn active_endpoints(&self) -> PortResult<Vec<String>> {
        self.count_read();
        Ok(lock(&self.tables).active.keys().cloned().collect())
    }

    async fn watching(&self, alarm_name: &str) -> PortResult<Vec<String>> {
        self.count_read();
        Ok(lock(&self.tables)
            .active
            .iter()
            .filter(|(_, s)| {
                s.deployment
                    .plan
                    .watched_alarm_names()
                    .any(|n| n == alarm_name)
            })
            .map(|(endpoint, _)| endpoint.clone())
            .collect())
    }

    async fn load_many(&self, endpoints: &[String]) -> PortResult<Vec<Stored>> {
        // One read per 100 keys, as BatchGetItem.
        for _ in endpoints.chunks(100) {
            self.count_read();
        }
        let tables = lock(&self.tables);
        Ok(endpoints
            .iter()
            .filter_map(|e| tables.active.get(e).cloned())
            .collect())
    }

    async fn wake_scheduled(
        &self,
        endpoint: &str,
        deployment_id: &str,
        at: Timestamp,
    ) -> PortResult<()> {
        let mut tables = lock(&self.tables);
        if let Some(active) = tables.active.get_mut(endpoint)
            && active.deployment.plan.deployment_id == deployment_id
        {
            active.wake_at = Some(at);
        }
        Ok(())
    }

    async fn history(&self, endpoint: &str, limit: usize) -> PortResult<Vec<Stored>> {
        Ok(self
            .history(endpoint)
            .into_iter()
            .rev()
            .take(limit)
            .collect())
    }

    async fn find(&self, deployment_id: &str) -> PortResult<Option<(String, Timestamp)>> {
        Ok(lock(&self.tables).ids.get(deployment_id).cloned())
    }

    async fn audit(&self, endpoint: &str, deployment_id: &str) -> PortResult<Vec<AuditEntry>> {
        let key = (endpoint.to_owned(), deployment_id.to_owned());
        Ok(lock(&self.tables)
            .audit
            .get(&key)
            .cloned()
            .unwrap_or_default())
    }

    async fn claim_page(
        &self,
        endpoint: &str,
        deployment_id: &str,
        now: Timestamp,
        stale_after_secs: u32,
    ) -> PortResult<PageClaim> {
        let key = (endpoint.to_owned(), deployment_id.to_owned());
        let mut tables = lock(&self.tables);
        match tables.pages.get(&key) {
            Some((_, Some(_))) => Ok(PageClaim::AlreadySent),
            Some((claimed, None)) if now < claimed.plus_secs(stale_after_secs) => {
                Ok(PageClaim::InProgress)
            }
            _ => {
                tables.pages.insert(key, (now, None));
                Ok(PageClaim::Claimed)
            }
        }
    }

    async fn record(
        &self,
        endpoint: &str,
        deployment_id: &str,
        started_at: Timestamp,
    ) -> PortResult<Option<Stored>> {
        let tables = lock(&self.tables);
        let is = |s: &&Stored| {
            s.deployment.plan.endpoint_name == endpoint
                && s.deployment.plan.deployment_id == deployment_id
                && s.deployment.started_at == started_at
        };
        Ok(tables
            .active
            .get(endpoint)
            .filter(|s| is(s))
            .or_else(|| tables.history.iter().find(is))
            .cloned())
    }

    async fn unpaged(&self, before: Timestamp) -> PortResult<Vec<StateChange>> {
        let tables = lock(&self.tables);
        let mut events = Vec::new();
        for done in &tables.history {
            let plan = &done.deployment.plan;
            let key = (plan.endpoint_name.clone(), plan.deployment_id.clone());
            let pages = matches!(
                done.deployment.phase,
                Phase::RolledBack { .. } | Phase::Failed { .. }
            );
            let sent = matches!(tables.pages.get(&key), Some((_, Some(_))));
            let Some(last) = tables.audit.get(&key).and_then(|a| a.last()) else {
                continue;
            };
            if pages && !sent && last.transition.at < before {
                events.push(StateChange::new(
                    &done.deployment,
                    &last.transition,
                    last.sequence,
                    None,
                ));
            }
        }
        Ok(events)
    }

    async fn page_sent(
        &self,
        endpoint: &str,
        deployment_id: &str,
        sent: &SentPage,
    ) -> PortResult<()> {
        let key = (endpoint.to_owned(), deployment_id.to_owned());
        let mut tables = lock(&self.tables);
        let entry = tables.pages.entry(key).or_insert((sent.sent_at, None));
        entry.1 = Some(sent.clone());
        Ok(())
    }
}

/// Records pages.
#[derive(Debug, Default)]
pub struct MemoryPager {
    pages: Mutex<Vec<Page>>,
}

impl MemoryPager {
    pub fn pages(&self) -> Vec<Page> {
        lock(&self.pages).clone()
    }
}

#[async_trait]
impl Pager for MemoryPager {
    async fn page(&self, page: &Page) -> PortResult<String> {
        let mut pages = lock(&self.pages);
        pages.push(page.clone());
        Ok(format!("memory-{}", pages.len()))
    }
}

/// Records published events.
#[derive(Debug, Default)]
pub struct MemoryBus {
    events: Mutex<Vec<StateChange>>,
    refusals: Mutex<Vec<Refusal>>,
    shards: Mutex<Vec<crate::events::SweepShard>>,
}

impl MemoryBus {
    /// The sweep shards published and not yet taken.
    pub fn take_shards(&self) -> Vec<crate::events::SweepShard> {
        std::mem::take(&mut *lock(&self.shards))
    }

    pub fn events(&self) -> Vec<StateChange> {
        lock(&self.events).clone()
    }

    pub fn refusals(&self) -> Vec<Refusal> {
        lock(&self.refusals).clone()
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn publish(&self, events: &[StateChange]) -> PortResult<()> {
        lock(&self.events).extend_from_slice(events);
        Ok(())
    }

    async fn refused(&self, refusal: &Refusal) -> PortResult<()> {
        lock(&self.refusals).push(refusal.clone());
        Ok(())
    }

    async fn fan_out(&self, shards: &[crate::events::SweepShard]) -> PortResult<()> {
        lock(&self.shards).extend_from_slice(shards);
        Ok(())
    }
}

/// Records the latest wake-up per endpoint.
#[derive(Debug, Default)]
pub struct MemoryWaker {
    wake_ups: Mutex<BTreeMap<String, Timestamp>>,
}

impl MemoryWaker {
    pub fn wake_up(&self, endpoint: &str) -> Option<Timestamp> {
        lock(&self.wake_ups).get(endpoint).copied()
    }
}

#[async_trait]
impl Waker for MemoryWaker {
    async fn wake_at(
        &self,
        endpoint: &str,
        _deployment_id: &str,
        at: Timestamp,
        _replace: bool,
    ) -> PortResult<()> {
        lock(&self.wake_ups).insert(endpoint.to_owned(), at);
        Ok(())
    }
}

/// Virtual time: it moves only when told to, or by `sleep`.
#[derive(Debug)]
pub struct VirtualClock {
    now: Mutex<Timestamp>,
}

impl VirtualClock {
    pub fn new(start: Timestamp) -> VirtualClock {
        VirtualClock {
            now: Mutex::new(start),
        }
    }

    pub fn set(&self, now: Timestamp) {
        *lock(&self.now) = now;
    }
}

#[async_trait]
impl Clock for VirtualClock {
    fn now(&self) -> Timestamp {
        *lock(&self.now)
    }

    async fn sleep(&self, duration: Duration) {
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let mut now = lock(&self.now);
        *now = Timestamp::from_epoch_ms(now.epoch_ms().saturating_add(ms));
    }
}

/// The judge's counts in memory: per compared metric, the samples a test sets; a read returns
/// those of its window, as CloudWatch would.
#[derive(Debug, Default)]
pub struct MemoryMetrics {
    series: Mutex<Vec<(crate::policy::ComparedMetric, Vec<crate::core::Sample>)>>,
    reads: std::sync::atomic::AtomicU32,
    refused: Mutex<Option<String>>,
}

impl MemoryMetrics {
    /// Sets what `metric` reads.
    pub fn set(&self, metric: crate::policy::ComparedMetric, samples: Vec<crate::core::Sample>) {
        let mut series = lock(&self.series);
        series.retain(|(m, _)| *m != metric);
        series.push((metric, samples));
    }

    /// Every read is refused from now on, as IAM refuses it.
    pub fn refuse(&self, message: &str) {
        *lock(&self.refused) = Some(message.to_owned());
    }

    /// How many reads were made.
    pub fn reads(&self) -> u32 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[async_trait]
impl crate::ports::Metrics for MemoryMetrics {
    async fn counts(
        &self,
        query: &crate::ports::CountsQuery<'_>,
    ) -> PortResult<Vec<crate::core::Sample>> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(message) = lock(&self.refused).clone() {
            let error = PortError::new(ErrorKind::Refused, &message);
            return Err(error.from_api("cloudwatch:GetMetricData"));
        }
        Ok(lock(&self.series)
            .iter()
            .filter(|(m, _)| m == query.metric)
            .flat_map(|(_, samples)| samples.iter())
            .filter(|s| s.at >= query.from && s.at < query.to)
            .copied()
            .collect())
    }
}

/// Hooks in memory: each call takes the next answer a test scripted (the last one stays, so a
/// hook can keep saying `InProgress`), and every call is kept with its payload.
#[derive(Debug, Default)]
pub struct MemoryHooks {
    answers: Mutex<std::collections::VecDeque<PortResult<crate::core::HookAnswer>>>,
    calls: Mutex<Vec<crate::core::HookCall>>,
}

impl MemoryHooks {
    /// What the next calls answer, in order.
    pub fn answer(&self, answers: impl IntoIterator<Item = crate::core::HookAnswer>) {
        lock(&self.answers).extend(answers.into_iter().map(Ok));
    }

    /// The next calls fail with `kind`, as Lambda refuses or fails an invocation.
    pub fn fail(&self, kind: ErrorKind, message: &str) {
        let error = PortError::new(kind, message).from_api("lambda:InvokeFunction");
        lock(&self.answers).push_back(Err(error));
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<crate::core::HookCall> {
        lock(&self.calls).clone()
    }
}

#[async_trait]
impl crate::ports::Hooks for MemoryHooks {
    async fn ask(&self, call: &crate::core::HookCall) -> PortResult<crate::core::HookAnswer> {
        lock(&self.calls).push(call.clone());
        let mut answers = lock(&self.answers);
        let answer = if answers.len() > 1 {
            answers.pop_front()
        } else {
            answers.front().cloned()
        };
        answer.unwrap_or_else(|| {
            Ok(crate::core::HookAnswer::Succeeded {
                reason: "no answer was scripted: yes".to_owned(),
            })
        })
    }
}
