//! The driver: one invocation's worth of work around the pure core. Load the endpoint's active
//! deployment, finish whatever an earlier invocation decided but may not have done (the
//! outbox), observe, decide, save with a condition on the version, act, publish, schedule the
//! next wake-up. It holds no state between invocations and never panics.
//!
//! Crash safety: every decision is saved, with its actions and events in the record's outbox,
//! *before* anything is done; the outbox is cleared only after it is done. A crash at any point
//! leaves either the old record (the next invocation decides again: actions are convergent) or
//! the new record with its outbox (the next invocation performs it first). Audit entries are
//! written in the same conditional write as the record, so none is lost or duplicated.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::core::{
    Action, BlastRadius, Command, Deployment, Observation, Phase, StartError, Transition,
};
use crate::events::StateChange;
use crate::plan::{Fleet, Plan};
use crate::policy::{ComparedMetric, Engine};
use crate::ports::{
    Alarms, AuditEntry, Clock, CountsQuery, Endpoints, ErrorKind, EventBus, GreenAlarm, Hooks,
    Metrics, Outbox, PortError, PortResult, Store, Stored, Waker,
};
use crate::preflight::{self, Look, Preflight, RECENT_DATA_SECS};
use crate::units::{Share, Timestamp};

mod sweep;
pub use sweep::{
    DESCRIBE_ALARMS_PER_SECOND, MAX_ALARM_NAMES_PER_CALL, SWEEP_CONCURRENCY, Swept,
    alarm_read_interval, shards_of,
};

/// Bounds on the driver's retries within one invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Reloads after losing a conditional write to another invocation.
    pub max_conflicts: u32,
    /// Retries of a throttled call, with doubling back-off from `throttle_backoff`.
    pub max_throttle_retries: u32,
    pub throttle_backoff: Duration,
    /// How soon to look again when SageMaker said `Cannot update in-progress endpoint`.
    pub in_progress_retry_secs: u32,
    /// Endpoints one sweep invocation reconciles; the rest are published as shards
    /// (at most `SweepShard::MAX_ENDPOINTS`).
    pub sweep_shard_size: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_conflicts: 5,
            max_throttle_retries: 4,
            throttle_backoff: Duration::from_millis(200),
            in_progress_retry_secs: 15,
            sweep_shard_size: crate::events::SweepShard::MAX_ENDPOINTS,
        }
    }
}

/// The world as the driver reaches it.
#[derive(Clone)]
pub struct Driver {
    pub endpoints: Arc<dyn Endpoints>,
    pub alarms: Arc<dyn Alarms>,
    /// The judge's counts (CloudWatch's per-variant metrics).
    pub metrics: Arc<dyn Metrics>,
    /// The hooks the policy names.
    pub hooks: Arc<dyn Hooks>,
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn EventBus>,
    pub waker: Arc<dyn Waker>,
    pub clock: Arc<dyn Clock>,
    pub limits: Limits,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("limits", &self.limits)
            .finish()
    }
}

/// What one invocation did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// No active deployment for this endpoint: nothing to do.
    NoDeployment,
    Reconciled(Box<Report>),
}

/// The decision of one invocation, for its log line.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub deployment_id: String,
    pub endpoint_name: String,
    pub phase: Phase,
    pub transitions: Vec<Transition>,
    pub actions_performed: usize,
    /// An action SageMaker refused for now (in progress); it is decided again later.
    pub deferred: Option<String>,
    pub wake_at: Option<Timestamp>,
    /// Why a command was not acted on.
    pub ignored: Option<String>,
    /// How the deployment ended, when one of these transitions ended it.
    pub ended: Option<crate::metrics::Ended>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriverError {
    #[error("endpoint {endpoint} already has an active deployment ({active_deployment})")]
    AlreadyActive {
        endpoint: String,
        active_deployment: String,
    },
    #[error("deployment {deployment} already ran on endpoint {endpoint}")]
    Duplicate {
        endpoint: String,
        deployment: String,
    },
    #[error("cannot start the deployment: {0}")]
    Start(#[from] StartError),
    #[error("gave up after {0} conflicting writes to the deployment record")]
    TooManyConflicts(u32),
    #[error(transparent)]
    Port(#[from] PortError),
}

impl DriverError {
    /// Whether invoking again may succeed (Lambda and EventBridge should retry).
    pub fn is_retryable(&self) -> bool {
        match self {
            DriverError::AlreadyActive { .. }
            | DriverError::Duplicate { .. }
            | DriverError::Start(_) => false,
            DriverError::TooManyConflicts(_) => true,
            DriverError::Port(e) => !matches!(e.kind, ErrorKind::Refused),
        }
    }
}

/// Alarm states read for many deployments at once: the sweep's batched `DescribeAlarms`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSnapshot {
    pub read_at: Timestamp,
    /// Every name asked for: a name asked for and not in `states` is an alarm that does not
    /// exist.
    pub asked: std::collections::BTreeSet<String>,
    pub states: BTreeMap<String, crate::core::AlarmView>,
}

/// How old a snapshot may be and still stand for a `DescribeAlarms` of the deployment's own:
/// one sweep's batch, never an earlier one's.
pub const SNAPSHOT_MAX_AGE_SECS: u32 = 20;

impl AlarmSnapshot {
    /// The states of `names`, if the snapshot asked for every one of them and is recent.
    pub fn states_of(
        &self,
        names: &[&str],
        now: Timestamp,
    ) -> Option<BTreeMap<String, crate::core::AlarmView>> {
        let recent = now <= self.read_at.plus_secs(SNAPSHOT_MAX_AGE_SECS);
        if !recent || !names.iter().all(|n| self.asked.contains(*n)) {
            return None;
        }
        Some(
            names
                .iter()
                .filter_map(|n| self.states.get(*n).map(|v| ((*n).to_owned(), v.clone())))
                .collect(),
        )
    }
}

/// The record after its outbox was performed, with the message of an action SageMaker
/// deferred; `None` when another invocation changed the record first.
type Flushed = Option<(Stored, Option<String>)>;

/// Decisions one invocation may make after AWS refused an action it had decided.
const MAX_ROUNDS: u32 = 2;

fn tracing_warn(message: &str) {
    #[cfg(feature = "aws")]
    tracing::warn!("{message}");
    #[cfg(not(feature = "aws"))]
    let _ = message;
}

impl Driver {
    /// Creates the deployment of `plan` (refused if the endpoint has an active one), then
    /// reconciles it at once.
    pub async fn start(&self, plan: Plan) -> Result<Outcome, DriverError> {
        let endpoint = plan.endpoint_name.clone();
        let (deployment, started) = Deployment::start(plan, self.clock.now())?;
        let audit = vec![AuditEntry {
            deployment_id: deployment.plan.deployment_id.clone(),
            sequence: 0,
            transition: started.clone(),
            observed_green_percent: None,
            judgement: None,
        }];
        let event = StateChange::new(&deployment, &started, 0, None);
        let record = Stored {
            deployment,
            version: 1,
            transitions: 1,
            outbox: Outbox {
                actions: Vec::new(),
                events: vec![event],
            },
            wake_at: None,
        };
        let mut created = self.store.create(&record, &audit).await;
        if matches!(&created, Err(e) if e.kind == ErrorKind::AlreadyActive)
            && self
                .store
                .load(&endpoint)
                .await?
                .is_some_and(|active| active.deployment.is_final())
        {
            // The active deployment has ended and its final event may be out, but it is not
            // archived yet (that is the last step of the invocation that ended it): finish
            // that step, as the next invocation would, and the endpoint is free.
            self.reconcile(&endpoint, None).await?;
            created = self.store.create(&record, &audit).await;
        }
        match created {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::Duplicate => {
                return Err(DriverError::Duplicate {
                    endpoint,
                    deployment: record.deployment.plan.deployment_id.clone(),
                });
            }
            Err(e) if e.kind == ErrorKind::AlreadyActive => {
                let active = self.store.load(&endpoint).await?;
                return Err(DriverError::AlreadyActive {
                    endpoint,
                    active_deployment: active
                        .map(|s| s.deployment.plan.deployment_id)
                        .unwrap_or_else(|| "unknown".to_owned()),
                });
            }
            Err(e) => return Err(e.into()),
        }
        self.reconcile(&endpoint, None).await
    }

    /// Brings the endpoint's active deployment one decision further, with `command` if a
    /// person sent one. Nothing AWS answers stops the core from deciding: a failed look or a
    /// refused action is an input to the decision (`core::Trouble`), so every deployment ends.
    pub async fn reconcile(
        &self,
        endpoint: &str,
        command: Option<&Command>,
    ) -> Result<Outcome, DriverError> {
        // Boxed: the decision's state machine is large, and callers hold several at once.
        Box::pin(self.reconcile_from(endpoint, command, None, None, false)).await
    }

    /// `reconcile` when the endpoint's wake-up has fired: Scheduler holds none for it any more
    /// (a one-time schedule is deleted once it fired, wherever in its 60 s window that was),
    /// so the next one is created, never left to one that is gone.
    pub async fn woken(&self, endpoint: &str) -> Result<Outcome, DriverError> {
        Box::pin(self.reconcile_from(endpoint, None, None, None, true)).await
    }

    /// `reconcile` of a record the sweep has read already, with the alarm states it read for
    /// every deployment at once; after a conflicting write it reads both again.
    pub async fn reconcile_loaded(
        &self,
        stored: Stored,
        alarms: &AlarmSnapshot,
    ) -> Result<Outcome, DriverError> {
        let endpoint = stored.deployment.plan.endpoint_name.clone();
        Box::pin(self.reconcile_from(&endpoint, None, Some(stored), Some(alarms), false)).await
    }

    async fn reconcile_from(
        &self,
        endpoint: &str,
        command: Option<&Command>,
        mut preloaded: Option<Stored>,
        mut snapshot: Option<&AlarmSnapshot>,
        woken: bool,
    ) -> Result<Outcome, DriverError> {
        let mut command = command;
        let mut decided = Vec::new();
        let mut rounds = 0;
        for _ in 0..self.limits.max_conflicts {
            let loaded = match preloaded.take() {
                Some(stored) => stored,
                None => {
                    // Read again: what was read before is out of date.
                    snapshot = None;
                    match self.throttled(|| self.store.load(endpoint)).await? {
                        Some(stored) => stored,
                        None => return Ok(Outcome::NoDeployment),
                    }
                }
            };
            let Some((stored, mut deferred)) = self.flush(loaded).await? else {
                continue;
            };
            if stored.deployment.is_final() {
                if !self.archive(&stored).await? {
                    continue;
                }
                let done = report(&stored, decided, 0, None, None);
                return Ok(Outcome::Reconciled(Box::new(done)));
            }
            let now = self.clock.now();
            let observation = self.observe(&stored.deployment, now, snapshot).await;
            let looked = match &observation.unseen {
                Some(u) if u.permanent => stored.deployment.refused(&u.api, &u.message),
                Some(u) => stored.deployment.call_failed(&u.api, &u.message, now),
                None => stored.deployment.clone(),
            };
            let mut decision = looked.decide(&observation, command, now);
            // The end counts what green served, once, before the final record and its event
            // are saved.
            if decision.deployment.is_final() && decision.deployment.blast_radius.is_none() {
                let blast = self.blast_radius(&decision.deployment, now).await;
                decision.deployment.blast_radius = Some(blast);
            }
            let mut next_deployment = decision.deployment.clone();
            let clean = observation.unseen.is_none() && decision.actions.is_empty();
            if clean && next_deployment.trouble.failures_in_a_row > 0 {
                next_deployment = next_deployment.calls_succeeded();
            }
            let changed = next_deployment != stored.deployment
                || !decision.actions.is_empty()
                || !decision.transitions.is_empty();
            let mut current = stored.clone();
            let mut performed = 0;
            if changed {
                let green = observed_green(&observation, &stored.deployment);
                let (mut next, audit) = next_record(&stored, &decision, green);
                next.deployment = next_deployment;
                if !self.save(&next, stored.version, &audit).await? {
                    continue;
                }
                // Saved: the command is in the record and must not be applied twice.
                command = None;
                decided.extend(decision.transitions.iter().cloned());
                performed = next.outbox.actions.len();
                current = match self.flush(next.clone()).await? {
                    Some((flushed, refused)) => {
                        deferred = refused.or(deferred);
                        flushed
                    }
                    // Another invocation performed this outbox too and moved on (the actions
                    // are convergent, so doing them twice is harmless): its record stands.
                    None => {
                        let done = report(&next, decided, performed, deferred, None);
                        return Ok(Outcome::Reconciled(Box::new(done)));
                    }
                };
                // AWS refused an action just now: decide on it at once rather than at the next
                // wake-up (bounded: a refusal ends the deployment within two decisions).
                // Likewise a hook to ask now: it is asked at once, not at the next wake-up.
                let ask_now = current.deployment.hook_call(self.clock.now()).is_some();
                if (current.deployment.trouble.refused.is_some() || ask_now)
                    && !current.deployment.is_final()
                    && rounds < MAX_ROUNDS
                {
                    rounds += 1;
                    continue;
                }
                if current.deployment.is_final() {
                    self.archive(&current).await?;
                }
            }
            let wake_at = match (decision.wake_at, &deferred) {
                (Some(at), Some(_)) => {
                    Some(at.min(now.plus_secs(self.limits.in_progress_retry_secs)))
                }
                (at, _) => at,
            };
            if let Some(at) = wake_at {
                let held = if woken { None } else { current.wake_at };
                self.schedule_wake(&current, held, at, now).await;
            }
            let mut done = report(&current, decided, performed, deferred, wake_at);
            done.ignored = decision.ignored;
            return Ok(Outcome::Reconciled(Box::new(done)));
        }
        Err(DriverError::TooManyConflicts(self.limits.max_conflicts))
    }

    /// Gathers what the preflight checks look at (the endpoint, the named alarms and whether
    /// their metrics have recent data) and runs them; the caller has read the endpoint's fleet
    /// and its active deployment already.
    pub async fn preflight(
        &self,
        plan: &Plan,
        fleet: &Fleet,
        active_deployment: Option<String>,
    ) -> PortResult<Preflight> {
        let endpoint = self
            .throttled(|| self.endpoints.describe(&plan.endpoint_name))
            .await?;
        let named: Vec<&str> = plan
            .watched_alarms
            .iter()
            .filter(|a| a.green_template.is_none())
            .map(|a| a.alarm_name.as_str())
            .collect();
        let alarms = if named.is_empty() {
            BTreeMap::new()
        } else {
            self.throttled(|| self.alarms.definitions(&named)).await?
        };
        let now = self.clock.now();
        let since = now.minus_secs(RECENT_DATA_SECS);
        let mut alarms_with_recent_data = Vec::new();
        for (name, definition) in &alarms {
            if self
                .throttled(|| self.alarms.has_data(definition, since, now))
                .await?
            {
                alarms_with_recent_data.push(name.clone());
            }
        }
        let e = &self.endpoints;
        let model_exists = self
            .throttled(|| e.model_exists(&plan.green.model_name))
            .await?;
        let endpoint_tags = self
            .throttled(|| e.endpoint_tags(&plan.endpoint_name))
            .await?;
        let kind = self
            .throttled(|| e.endpoint_kind(&plan.blue_config_name))
            .await?;
        let mut quotas = BTreeMap::new();
        for instance_type in [&plan.blue.instance_type, &plan.green.instance_type] {
            if instance_type.is_empty() || quotas.contains_key(instance_type) {
                continue;
            }
            if let Some(q) = self.throttled(|| e.instance_quota(instance_type)).await? {
                quotas.insert(instance_type.clone(), q);
            }
        }
        let scaling = self
            .throttled(|| e.scalable_target(&plan.endpoint_name, &plan.blue.variant_name))
            .await?;
        let look = Look {
            scaling,
            endpoint,
            fleet: Some(fleet.clone()),
            alarms,
            alarms_with_recent_data,
            active_deployment,
            model_exists,
            endpoint_tags,
            kind,
            quotas,
        };
        Ok(preflight::check(plan, &look))
    }

    /// Asks Scheduler for a wake-up at `at` unless the one it holds for this deployment
    /// (`held`) comes no later (`wake::needed`); records what it holds once it said yes. A wake-up that cannot
    /// be scheduled is not worth failing the invocation for: the one-minute sweep reconciles
    /// every active deployment anyway.
    async fn schedule_wake(
        &self,
        current: &Stored,
        held: Option<Timestamp>,
        at: Timestamp,
        now: Timestamp,
    ) {
        let plan = &current.deployment.plan;
        let (endpoint, id) = (plan.endpoint_name.as_str(), plan.deployment_id.as_str());
        let Some(replace) = crate::wake::needed(held, at, now) else {
            return;
        };
        match self
            .throttled(|| self.waker.wake_at(endpoint, id, at, replace))
            .await
        {
            Ok(()) => {
                if let Err(e) = self
                    .throttled(|| self.store.wake_scheduled(endpoint, id, at))
                    .await
                {
                    tracing_warn(&format!("wake-up of {endpoint} not recorded: {e}"));
                }
            }
            Err(e) => tracing_warn(&format!(
                "wake-up of {endpoint} not scheduled (the sweep will come): {e}"
            )),
        }
    }

    /// DescribeEndpoint and the watched alarms' states (from `snapshot` when it holds them all
    /// and is recent); a call that fails makes the look `unseen`, with the API and AWS's
    /// answer, instead of an error.
    async fn observe(
        &self,
        deployment: &Deployment,
        now: Timestamp,
        snapshot: Option<&AlarmSnapshot>,
    ) -> Observation {
        let plan = &deployment.plan;
        let unseen = |e: PortError, api: &str| {
            let api = if e.api.is_empty() { api } else { &e.api };
            Observation::unseen(api, &e.message, e.kind == ErrorKind::Refused)
        };
        let endpoint = match self
            .throttled(|| self.endpoints.describe(&plan.endpoint_name))
            .await
        {
            Ok(endpoint) => endpoint,
            Err(e) => return unseen(e, "sagemaker:DescribeEndpoint"),
        };
        let names: Vec<&str> = plan.watched_alarm_names().collect();
        // While rolling back alarms decide nothing: a rollback must not depend on being
        // allowed to read them. (Removing blue reads them to know the final fleet's exist.)
        let alarms = if deployment.watches_alarms() {
            match snapshot.and_then(|s| s.states_of(&names, now)) {
                Some(alarms) => alarms,
                None => match self.throttled(|| self.alarms.states(&names)).await {
                    Ok(alarms) => alarms,
                    Err(e) => return unseen(e, "cloudwatch:DescribeAlarms"),
                },
            }
        } else {
            BTreeMap::new()
        };
        // A native deployment's outcome depends on whether an alarm fired while SageMaker ran
        // it, however briefly: read the alarms' history once SageMaker has stopped working.
        let settled = endpoint.as_ref().is_some_and(|e| !e.status.is_busy());
        let alarms_fired =
            if plan.engine == Engine::Native && settled && deployment.watches_alarms() {
                match self
                    .throttled(|| self.alarms.fired_since(&names, deployment.started_at))
                    .await
                {
                    Ok(fired) => fired,
                    Err(e) => return unseen(e, "cloudwatch:DescribeAlarmHistory"),
                }
            } else {
                BTreeMap::new()
            };
        let judged = match deployment.judging_window(now) {
            Some((from, to, period_secs)) => match self.counts(plan, from, to, period_secs).await {
                Ok(series) => Some(series),
                Err(e) => return unseen(e, "cloudwatch:GetMetricData"),
            },
            None => None,
        };
        // The hook is asked last: only once everything else is seen, so that an answer is
        // never lost to a look that failed after it.
        let hook = match deployment.hook_call(now) {
            Some(call) => match self.throttled(|| self.hooks.ask(&call)).await {
                Ok(answer) => Some(answer),
                Err(e) => return unseen(e, "lambda:InvokeFunction"),
            },
            None => None,
        };
        Observation {
            endpoint,
            alarms,
            alarms_fired,
            judged,
            hook,
            unseen: None,
        }
    }

    /// The judge's counts of every comparison of the plan's analysis, in its order.
    async fn counts(
        &self,
        plan: &Plan,
        from: Timestamp,
        to: Timestamp,
        period_secs: u32,
    ) -> PortResult<Vec<Vec<crate::core::Sample>>> {
        let mut series = Vec::new();
        for comparison in plan.analysis.iter().flat_map(|a| &a.compare) {
            let query = CountsQuery {
                endpoint_name: &plan.endpoint_name,
                blue_variant: &plan.blue.variant_name,
                green_variant: &plan.green.variant_name,
                fleets: fleets(plan),
                metric: &comparison.metric,
                period_secs,
                from,
                to,
            };
            series.push(self.throttled(|| self.metrics.counts(&query)).await?);
        }
        Ok(series)
    }

    /// The blast radius of `deployment`, which has just ended: green's and blue's requests and
    /// 5xx responses since green first served, read once. A failed read is noted in it, never
    /// an error: a deployment ends whatever CloudWatch answers.
    async fn blast_radius(&self, deployment: &Deployment, now: Timestamp) -> BlastRadius {
        let Some((from, to, period_secs)) = deployment.blast_window(now) else {
            return deployment.blast_radius(None, 60);
        };
        let plan = &deployment.plan;
        let fleets = fleets(plan);
        let metric = ComparedMetric::ErrorRate { include_4xx: false };
        let query = CountsQuery {
            endpoint_name: &plan.endpoint_name,
            blue_variant: &plan.blue.variant_name,
            green_variant: &plan.green.variant_name,
            fleets,
            metric: &metric,
            period_secs,
            from,
            to,
        };
        let read = self
            .throttled(|| self.metrics.counts(&query))
            .await
            .map_err(|e| e.to_string());
        deployment.blast_radius(Some(read), period_secs)
    }

    /// Performs the outbox and saves the record without it. An action SageMaker refuses as in
    /// progress is dropped (the core decides it again). An action AWS refuses for good is
    /// recorded as a refusal, and the rest of the outbox is dropped: the core decides on it. A
    /// failure worth retrying keeps the outbox and is counted; past the bound it counts as a
    /// refusal. Events AWS refuses (or that keep failing past the bound) are dropped and noted.
    async fn flush(&self, stored: Stored) -> Result<Flushed, DriverError> {
        if stored.outbox.is_empty() {
            return Ok(Some((stored, None)));
        }
        let endpoint = stored.deployment.plan.endpoint_name.clone();
        let mut deployment = stored.deployment.clone();
        let mut deferred = None;
        let mut retry: Option<PortError> = None;
        for action in &stored.outbox.actions {
            match self.perform(&endpoint, action).await {
                Ok(()) => {
                    if let Action::UpdateEndpoint { config_name, .. } = action {
                        deployment = deployment.update_accepted(config_name, self.clock.now());
                    }
                }
                Err(e) if e.kind == ErrorKind::InProgress => {
                    deferred = Some(e.message);
                    break;
                }
                Err(e) if e.kind == ErrorKind::Refused => {
                    let api = if e.api.is_empty() {
                        action.api()
                    } else {
                        &e.api
                    };
                    deployment = deployment.refused(api, &e.message);
                    // Once the deployment has ended, each clean-up action stands on its own.
                    if !deployment.is_final() {
                        break;
                    }
                }
                Err(e) => {
                    let api = if e.api.is_empty() {
                        action.api()
                    } else {
                        &e.api
                    };
                    let now = self.clock.now();
                    deployment = deployment.call_failed(api, &e.message, now);
                    // Within the bound, try the outbox again later; past it, the failure was
                    // recorded as a refusal (or, after the end, as something left undone).
                    if !deployment.retries_exhausted(now) {
                        retry = Some(e);
                    }
                    break;
                }
            }
        }
        let events = &stored.outbox.events;
        if retry.is_none() && !events.is_empty() {
            match self.throttled(|| self.bus.publish(events)).await {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::Refused => {
                    deployment = deployment.events_dropped(events.len(), &e.to_string());
                }
                Err(e) => {
                    let now = self.clock.now();
                    let counted = deployment.call_failed("events:PutEvents", &e.message, now);
                    if counted.retries_exhausted(now) {
                        // Past the bound: the events are dropped, the deployment goes on.
                        deployment = deployment.events_dropped(events.len(), &e.to_string());
                    } else {
                        deployment = counted;
                        retry = Some(e);
                    }
                }
            }
        }
        if let Some(e) = retry {
            // Keep the outbox for the next invocation, with the failure counted.
            let kept = Stored {
                deployment,
                version: stored.version + 1,
                transitions: stored.transitions,
                outbox: stored.outbox.clone(),
                wake_at: stored.wake_at,
            };
            self.save(&kept, stored.version, &[]).await?;
            return Err(e.into());
        }
        if deployment.trouble.refused.is_none() {
            deployment = deployment.calls_succeeded();
        }
        let next = Stored {
            deployment,
            version: stored.version + 1,
            transitions: stored.transitions,
            outbox: Outbox::default(),
            wake_at: stored.wake_at,
        };
        let saved = self.save(&next, stored.version, &[]).await?;
        Ok(saved.then_some((next, deferred)))
    }

    async fn perform(&self, endpoint: &str, action: &Action) -> PortResult<()> {
        let e = &self.endpoints;
        match action {
            Action::CreateEndpointConfig {
                config_name,
                from_config,
                variants,
            } => {
                self.throttled(|| e.create_config(config_name, from_config, variants))
                    .await
            }
            Action::UpdateEndpoint {
                config_name,
                deployment_config,
                retain_variant_properties,
            } => {
                self.throttled(|| {
                    e.update_endpoint(
                        endpoint,
                        config_name,
                        deployment_config.as_ref(),
                        *retain_variant_properties,
                    )
                })
                .await
            }
            Action::SetScaling {
                variant_name,
                suspended,
            } => {
                self.throttled(|| e.set_scaling(endpoint, variant_name, *suspended))
                    .await
            }
            Action::SetWeights {
                blue_variant,
                green_variant,
                green_share,
            } => {
                self.throttled(|| {
                    e.set_weights(endpoint, blue_variant, green_variant, *green_share)
                })
                .await
            }
            Action::SetInstanceCount {
                variant_name,
                instance_count,
            } => {
                self.throttled(|| e.set_instance_count(endpoint, variant_name, *instance_count))
                    .await
            }
            Action::PutGreenAlarm {
                alarm_name,
                endpoint_name,
                variant_name,
                template,
            } => {
                let alarm = GreenAlarm {
                    alarm_name,
                    endpoint_name,
                    variant_name,
                    template,
                };
                self.throttled(|| self.alarms.put_green_alarm(alarm.clone()))
                    .await
            }
            Action::RaiseAlarm { alarm_name, reason } => {
                self.throttled(|| self.alarms.raise(alarm_name, reason))
                    .await
            }
            Action::DeleteAlarms { alarm_names } => {
                self.throttled(|| self.alarms.delete_alarms(alarm_names))
                    .await
            }
            Action::DeleteEndpointConfig { config_name } => {
                self.throttled(|| e.delete_config(config_name)).await
            }
        }
    }

    /// `true` when saved, `false` when another invocation changed the record first.
    async fn save(
        &self,
        record: &Stored,
        expected_version: u64,
        audit: &[AuditEntry],
    ) -> Result<bool, DriverError> {
        match self
            .throttled(|| self.store.save(record, expected_version, audit))
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.kind == ErrorKind::Conflict => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn archive(&self, record: &Stored) -> Result<bool, DriverError> {
        match self
            .throttled(|| self.store.archive(record, record.version))
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.kind == ErrorKind::Conflict => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Calls `call`, backing off and retrying while it is throttled (bounded).
    async fn throttled<'a, T, F, Fut>(&'a self, mut call: F) -> PortResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = PortResult<T>> + 'a,
    {
        let mut backoff = self.limits.throttle_backoff;
        let mut attempt = 0;
        loop {
            match call().await {
                Err(e)
                    if e.kind == ErrorKind::Throttled
                        && attempt < self.limits.max_throttle_retries =>
                {
                    attempt += 1;
                    self.clock.sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
                other => return other,
            }
        }
    }
}

/// Under the native engine both fleets serve under one variant name: CloudWatch tells them
/// apart by their config (`EndpointConfigName`), blue's and green's.
fn fleets(plan: &Plan) -> Option<(&str, &str)> {
    (plan.engine == Engine::Native).then_some((
        plan.blue_config_name.as_str(),
        plan.green_config_name.as_str(),
    ))
}

/// The record after `decision`, with its actions and events in the outbox, and its audit.
fn next_record(
    stored: &Stored,
    decision: &crate::core::Decision,
    green: Option<Share>,
) -> (Stored, Vec<AuditEntry>) {
    let deployment = decision.deployment.clone();
    let id = deployment.plan.deployment_id.clone();
    let mut audit = Vec::new();
    let mut events = Vec::new();
    for (i, transition) in decision.transitions.iter().enumerate() {
        let sequence = stored.transitions + i as u64;
        events.push(StateChange::new(&deployment, transition, sequence, green));
        audit.push(AuditEntry {
            deployment_id: id.clone(),
            sequence,
            transition: transition.clone(),
            observed_green_percent: green.map(|g| g.fraction() * 100.0),
            judgement: deployment
                .judgement
                .clone()
                .filter(|j| j.at == transition.at),
        });
    }
    let next = Stored {
        deployment,
        version: stored.version + 1,
        transitions: stored.transitions + decision.transitions.len() as u64,
        outbox: Outbox {
            actions: decision.actions.clone(),
            events,
        },
        wake_at: stored.wake_at,
    };
    (next, audit)
}

/// Green's share of requests as observed; unknown for the native engine, where the new fleet
/// keeps blue's variant name and SageMaker splits traffic inside it. On the final config the
/// new model serves every request, under blue's variant name.
fn observed_green(observation: &Observation, deployment: &Deployment) -> Option<Share> {
    let plan = &deployment.plan;
    if plan.engine == Engine::Native {
        return None;
    }
    observation.endpoint.as_ref().map(|e| {
        if e.config_name == plan.green_config_name && !e.status.is_busy() {
            Share::FULL
        } else {
            Share::nearest(e.share_of(&plan.green.variant_name))
        }
    })
}

fn report(
    stored: &Stored,
    transitions: Vec<Transition>,
    actions_performed: usize,
    deferred: Option<String>,
    wake_at: Option<Timestamp>,
) -> Report {
    Report {
        deployment_id: stored.deployment.plan.deployment_id.clone(),
        endpoint_name: stored.deployment.plan.endpoint_name.clone(),
        phase: stored.deployment.phase.clone(),
        ended: ended(stored, &transitions),
        transitions,
        actions_performed,
        deferred,
        wake_at,
        ignored: None,
    }
}

/// How `stored` ended, if one of `transitions` (just saved) ended it.
fn ended(stored: &Stored, transitions: &[Transition]) -> Option<crate::metrics::Ended> {
    let last = transitions.iter().rev().find(|t| t.to.is_final())?;
    let d = &stored.deployment;
    let outcome = crate::events::PhaseKind::of(&last.to);
    // From the first bad signal (else the rollback's decision): `core::BlastRadius`.
    let secs_to_blue = d
        .blast_radius
        .as_ref()
        .and_then(|b| b.seconds_to_blue)
        .filter(|_| matches!(last.to, Phase::RolledBack { .. }));
    Some(crate::metrics::Ended {
        engine: d.plan.engine,
        outcome,
        secs_to_blue,
    })
}
