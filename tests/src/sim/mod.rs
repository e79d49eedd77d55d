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

mod checks;
mod ports;

use checks::{check, check_alarm_rule};
use ports::State;
pub use ports::{Counts, DENIABLE, Faults, Mutation, Refusals, Rng, Sim};

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use guardrails::core::{Cause, Phase, SETTLE_SECS};
use guardrails::driver::{Driver, Limits};
use guardrails::events::StateChange;
use guardrails::handlers::{self, Handled, Settings};
use guardrails::memory::{MemoryBus, MemoryPager, MemoryStore, VirtualClock};
use guardrails::ports::{Clock, Store};
use guardrails::units::Timestamp;
use serde_json::{Value, json};

use crate::world::World;
use crate::{T0, repo_root};
/// EventBridge Scheduler's precision: "all schedule types invoke their targets with 60 second
/// precision".
const SCHEDULER_PRECISION_SECS: u32 = 60;

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
    /// A share of the sweep it published for another invocation.
    SweepShard(guardrails::events::SweepShard),
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
/// Steps a violation shows, unless `GUARDRAILS_SIM_TRACE` says how many.
const TRACE_LINES: usize = 30;

fn trace_lines() -> usize {
    std::env::var("GUARDRAILS_SIM_TRACE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(TRACE_LINES)
}
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
        // Fleets of two or more are registered with Application Auto Scaling (decided without
        // drawing from the generator, so that every seed plays as before).
        if instances >= 2 {
            w = w.with_scaling_target(1, 8);
        }
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
            refusals: Refusals::pick(seed, n_endpoints, T0),
            now: T0,
        })),
        store: store.clone(),
    };
    let bus = Arc::new(MemoryBus::default());
    let driver = Driver {
        endpoints: Arc::new(sim.clone()),
        alarms: Arc::new(sim.clone()),
        // The simulation's policies do not ask for the judge: nothing is ever read.
        metrics: Arc::new(guardrails::memory::MemoryMetrics::default()),
        // Nor hooks: a call would be a bug, and answers yes.
        hooks: Arc::new(guardrails::memory::MemoryHooks::default()),
        store: Arc::new(sim.clone()),
        bus: bus.clone(),
        waker: Arc::new(sim.clone()),
        clock: clock.clone(),
        // One endpoint a shard: with two or three endpoints, the sweep fans out (and its
        // shard events are lost, duplicated and delayed like any event).
        limits: Limits {
            sweep_shard_size: 1,
            ..Limits::default()
        },
    };
    let pager = MemoryPager::default();
    let settings = Settings {
        table: "guardrails".to_owned(),
        ..crate::flow::local_settings()
    };
    let mut trace: VecDeque<String> = VecDeque::new();
    let mut fingerprints: BTreeMap<String, String> = BTreeMap::new();
    let mut published = 0usize;
    let mut event_seq = 0u64;
    let mut approvals = 0u64;
    let fault_end = T0.plus_secs(FAULTY_SECS);
    // Every deployment must end this long after the faults stop: its longest timeout (bakes
    // plus provisioning), the final switch, the final fleet's bake and a rollback from it (two
    // settle budgets and the longest bake), and a few sweeps.
    let end = fault_end.plus_secs(28_800 + 2 * SETTLE_SECS + 28_800 + 3 * SWEEP_SECS);
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
        sim.state().now = now;
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
            // one replaces the pending one. It fires "with 60 second precision" (EventBridge
            // Scheduler User Guide, "Schedule types"); where in that minute is not
            // documented, so the strictest plausible: anywhere from a minute early to a minute
            // late, never before it was asked for.
            for (endpoint, at) in std::mem::take(&mut s.wake_ups) {
                queue.retain(|_, d| *d != Delivery::WakeUp(endpoint.clone()));
                let fires = at
                    .minus_secs(SCHEDULER_PRECISION_SECS)
                    .plus_secs(s.rng.below(2 * u64::from(SCHEDULER_PRECISION_SECS)) as u32);
                push(&mut queue, fires.max(now), Delivery::WakeUp(endpoint));
            }
            let events = bus.events();
            for e in &events[published..] {
                if e.outcome.is_some() {
                    produced.push(Delivery::Notify(Box::new(e.clone())));
                }
            }
            published = events.len();
            produced.extend(bus.take_shards().into_iter().map(Delivery::SweepShard));
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
        // Done once the faults are over, every request and every outcome was delivered,
        // nothing is active and no rollback or failure waits for its page (the sweep publishes
        // those again, so the run goes on until they are paged).
        let pending = queue
            .values()
            .any(|d| matches!(d, Delivery::Request { .. } | Delivery::Notify(_)));
        if now >= fault_end
            && !pending
            && store
                .active_endpoints()
                .await
                .unwrap_or_default()
                .is_empty()
            && store
                .unpaged(Timestamp::from_epoch_ms(i64::MAX))
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
            sim.state().now = next;
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
                if trace.len() > trace_lines() {
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
            let ended_by = match &done.deployment.phase {
                Phase::RolledBack { cause } | Phase::Failed { cause } => match cause {
                    Cause::Refused { .. } => Some("ended by a refusal"),
                    Cause::Aborted { .. } | Cause::RollbackAborted { .. } => {
                        Some("ended by an abort")
                    }
                    _ => None,
                },
                _ => None,
            };
            if let Some(key) = ended_by {
                *counts.outcomes.entry(key.to_owned()).or_default() += 1;
            }
            let paged = pages
                .iter()
                .filter(|p| p.attributes.get("deploymentId") == Some(id))
                .count();
            let must_page = matches!(
                done.deployment.phase,
                Phase::RolledBack { .. } | Phase::Failed { .. }
            );
            let audit = store.audit(&endpoint, id).await.unwrap_or_default();
            if must_page && paged != 1 {
                let trail: Vec<String> = audit
                    .iter()
                    .map(|a| {
                        format!(
                            "\n    t+{:>6}s {} -> {}: {}",
                            a.transition.at.secs_since(T0),
                            a.transition.from.label(),
                            a.transition.to.label(),
                            a.transition.cause
                        )
                    })
                    .collect();
                return Err(violation(
                    &trace,
                    format!(
                        "pages: deployment {id} on {endpoint} ended {} and paged {paged} times; its audit trail:{}",
                        done.deployment.phase.label(),
                        trail.concat()
                    ),
                ));
            }
            // Liveness: ended within its deadline (or the end of the faults, if later) plus the
            // final switch, the final fleet's bake and a rollback from it (two settle budgets
            // and that bake), and three sweeps.
            let bound = done.deployment.deadline.max(fault_end).plus_secs(
                2 * SETTLE_SECS + done.deployment.plan.cutover_bake_secs + 3 * SWEEP_SECS,
            );
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
    // A command as the function URL delivers it, from the operator the settings allow.
    let command = |body: &Value, request_id: &str| {
        guardrails_local::lambda::url_request(
            guardrails_local::iam::OPERATOR_ARN,
            request_id,
            &body.to_string(),
            0,
        )
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
            let body = json!({ "command": "deploy", "endpointName": endpoint, "modelName": model, "policy": text });
            (
                format!("request {model} -> {endpoint} ({policy})"),
                handlers::command(driver, settings, &command(&body, &id))
                    .await
                    .map(|a| a.handled),
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
                handlers::endpoint_events(driver, settings, &event).await,
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
                handlers::bake_watcher(driver, settings, &event).await,
            )
        }
        Delivery::WakeUp(e) => {
            let event = json!({ "endpoint": e, "deploymentId": "any" });
            (
                format!("wake-up {e}"),
                handlers::bake_watcher(driver, settings, &event).await,
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
            let swept = handlers::bake_watcher(driver, settings, &event).await;
            for endpoint in driver.store.active_endpoints().await.unwrap_or_default() {
                // Now and then a person aborts, whatever the phase: the deployment must end.
                if let Ok(Some(s)) = driver.store.load(&endpoint).await
                    && sim.state().aborts()
                {
                    let body = json!({ "endpointName": endpoint, "deploymentId": s.deployment.plan.deployment_id, "command": "abort", "reason": "looks wrong" });
                    let aborted =
                        handlers::command(driver, settings, &command(&body, "abort")).await;
                    if aborted.is_ok() {
                        *sim.state().counts.faults.entry("abort").or_default() += 1;
                    }
                    continue;
                }
                if let Ok(Some(s)) = driver.store.load(&endpoint).await
                    && matches!(s.deployment.phase, Phase::AwaitingApproval { .. })
                {
                    let body = json!({ "endpointName": endpoint, "deploymentId": s.deployment.plan.deployment_id, "command": "approve" });
                    let _ = handlers::command(driver, settings, &command(&body, "cmd")).await;
                }
            }
            ("sweep".to_owned(), swept)
        }
        Delivery::SweepShard(shard) => {
            let event = envelope(
                guardrails::events::SWEEP_SHARD_DETAIL_TYPE,
                "guardrails",
                serde_json::to_value(shard).unwrap_or_default(),
                "shard".to_owned(),
            );
            (
                format!("sweep shard {:?}", shard.endpoints),
                handlers::bake_watcher(driver, settings, &event).await,
            )
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
