//! Fuzzing that keeps running: every parser and every handler entry point, fed inputs made by
//! mutating the `events/` samples, the command bodies and the example policies (structure-aware
//! mutations of their JSON, byte-level and YAML-token mutations of their text, and hostile
//! values: wrong types, nulls, huge and non-ASCII text, extreme numbers, deep nesting, alias
//! bombs). Each input must get an answer (accepted, or refused with a message), never a panic,
//! never take more than `MAX_SECONDS_PER_INPUT`, never publish an event over EventBridge's
//! 256 KiB, and, when it is refused or ignored, never change the stored deployment.
//!
//! The budget and the seed are fixed, so a run is repeatable: `GUARDRAILS_FUZZ_CASES` inputs
//! per target (default `DEFAULT_CASES`), from `GUARDRAILS_FUZZ_SEED`. The long run (README,
//! "Fuzzing"): `GUARDRAILS_FUZZ_CASES=100000 cargo test --release -p guardrails-tests --test fuzz
//! -- --nocapture`. A finding prints its target, case and input (cut to 2,000 characters) and is
//! written whole to `target/fuzz-findings/`.
//!
//! Not coverage-guided: cargo-fuzz and libFuzzer need a nightly toolchain, which this machine
//! does not have; the mutations start from every sample and hostile dictionary instead.

// Tests fail loudly on purpose; the harness times every input on the wall clock (the bound
// on each input is part of what it checks).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::time::{Duration, Instant};

use guardrails::handlers::{self, Handled, Settings};
use guardrails::ports::Store;
use guardrails_tests::harness::Harness;
use guardrails_tests::world::World;
use guardrails_tests::{T0, repo_root};
use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};
use serde_json::{Map, Value, json};

const DEFAULT_CASES: usize = 300;
const DEFAULT_SEED: u64 = 0x6775_6172_6472_6169;
/// The longest any one input may take (they take milliseconds; the quadratic YAML of issue 12
/// took 61 s).
const MAX_SECONDS_PER_INPUT: u64 = 5;
/// EventBridge's largest event (PutEvents: 256 KiB for the whole entry).
const MAX_EVENT_BYTES: usize = 256 * 1024;
/// The longest policy error: `MAX_PROBLEMS` problems of a few hundred characters.
const MAX_POLICY_ERROR_BYTES: usize = 64 * 1024;

fn cases() -> usize {
    std::env::var("GUARDRAILS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

fn rng(target: &str) -> TestRng {
    let seed = std::env::var("GUARDRAILS_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    for (i, b) in target.bytes().enumerate() {
        bytes[8 + i % 24] ^= b;
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

fn below(rng: &mut TestRng, n: usize) -> usize {
    usize::try_from(rng.next_u64() % (n.max(1) as u64)).unwrap_or(0)
}

fn pick<'a, T>(rng: &mut TestRng, items: &'a [T]) -> &'a T {
    &items[below(rng, items.len())]
}

// ---- the corpus ------------------------------------------------------------------------------

fn samples() -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

fn command_bodies() -> Vec<String> {
    let mut bodies: Vec<String> = samples()
        .iter()
        .filter_map(|s| s["body"].as_str().map(str::to_owned))
        .collect();
    bodies.push(
        json!({ "command": "abort", "endpointName": "fraud-scorer", "reason": "bad" }).to_string(),
    );
    bodies
}

fn policies() -> Vec<String> {
    let dir = repo_root().join("examples");
    let mut files: Vec<_> = std::fs::read_dir(dir.join("policies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.push(dir.join("broken-policy.yaml"));
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

// ---- mutations -------------------------------------------------------------------------------

const KEYS: &[&str] = &[
    "account",
    "detail-type",
    "source",
    "detail",
    "EndpointName",
    "EndpointStatus",
    "endpointName",
    "deploymentId",
    "requestedBy",
    "by",
    "command",
    "reason",
    "policy",
    "modelName",
    "modelPackageArn",
    "instanceCount",
    "instanceType",
    "dryRun",
    "alarmName",
    "state",
    "value",
    "outcome",
    "requestContext",
    "authorizer",
    "iam",
    "userArn",
    "body",
    "isBase64Encoded",
    "DeploymentConfig",
    "Guardrails",
    "Alarms",
    "AlarmName",
    "TrafficRoutingConfiguration",
    "WaitIntervalInSeconds",
    "ModelPackageArn",
    "ModelApprovalStatus",
    "endpoint",
    "wakeUp",
    "version",
    "id",
    "time",
    "resources",
];

fn hostile_string(rng: &mut TestRng) -> String {
    match below(rng, 14) {
        0 => String::new(),
        1 => "é".repeat(1 + below(rng, 3_000)),
        2 => "José Müller: 田中太郎 🚀".to_owned(),
        3 => "a".repeat(1 + below(rng, 300_000)),
        4 => "\u{0}\u{1b}[31m\r\n\t".to_owned(),
        5 => "arn:aws:iam::999999999999:role/mallory".to_owned(),
        6 => "${AWS::AccountId}*?[".to_owned(),
        7 => "999999999999".to_owned(),
        8 => "-1".to_owned(),
        9 => "1e999".to_owned(),
        10 => " fraud-scorer ".to_owned(),
        11 => "fraud-scorer".to_owned(),
        12 => "ALARM".to_owned(),
        _ => "..".repeat(1 + below(rng, 40)) + "/",
    }
}

fn hostile_value(rng: &mut TestRng) -> Value {
    match below(rng, 12) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!(u64::MAX),
        4 => json!(i64::MIN),
        5 => json!(1e308),
        6 => json!(0.5),
        7 => json!(4_294_967_296_u64),
        8 => json!([]),
        9 => json!({}),
        10 => {
            let mut v = json!(1);
            for _ in 0..below(rng, 200) {
                v = json!([v]);
            }
            v
        }
        _ => Value::String(hostile_string(rng)),
    }
}

/// Every node of `v` as a JSON pointer.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                pointers(
                    child,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// One structure-aware mutation of `v`.
fn mutate_value(v: &mut Value, rng: &mut TestRng) {
    let mut all = Vec::new();
    pointers(v, String::new(), &mut all);
    let at = pick(rng, &all).clone();
    let donor = v
        .pointer(pick(rng, &all).as_str())
        .cloned()
        .unwrap_or(Value::Null);
    let Some(node) = v.pointer_mut(&at) else {
        return;
    };
    match below(rng, 7) {
        0 | 1 => *node = hostile_value(rng),
        2 => match node {
            Value::Object(map) if !map.is_empty() => {
                let key = map.keys().nth(below(rng, map.len())).cloned().unwrap();
                map.remove(&key);
            }
            Value::Array(items) if !items.is_empty() => {
                items.remove(below(rng, items.len()));
            }
            other => *other = Value::Null,
        },
        3 => {
            let key = (*pick(rng, KEYS)).to_owned();
            let value = hostile_value(rng);
            match node {
                Value::Object(map) => {
                    map.insert(key, value);
                }
                Value::Array(items) => items.push(value),
                other => {
                    let mut map = Map::new();
                    map.insert(key, value);
                    *other = Value::Object(map);
                }
            }
        }
        // A subtree of the same input elsewhere (a detail where a string was...).
        4 => *node = donor,
        5 => {
            if let Value::String(s) = node {
                *s = mutate_text(s, rng);
            } else {
                *node = Value::String(hostile_string(rng));
            }
        }
        _ => {
            if let Value::String(s) = node {
                s.push_str(&hostile_string(rng));
            } else {
                *node = json!([node.clone()]);
            }
        }
    }
}

const TOKENS: &[&str] = &[
    "&a ",
    "*a",
    "<<: *a",
    "[",
    "]",
    "{",
    "}",
    "\t",
    "- ",
    ": ",
    "!!binary ",
    "!Ref ",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "? ",
    "|\n",
    ">\n",
    "\"",
    "'",
    "#",
    ",",
    "\\u0000",
    "~",
    "null",
    "1e999",
    "-0",
    "0x1F",
    ".inf",
    "\u{feff}",
    "\r\n",
    "é",
    "田",
    "🚀",
];

/// One byte-level or token mutation of `text`, kept valid UTF-8 (the events and URL bodies
/// Guardrails receives are text).
fn mutate_text(text: &str, rng: &mut TestRng) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let at = below(rng, bytes.len() + 1);
    match below(rng, 8) {
        0 if !bytes.is_empty() => {
            let i = below(rng, bytes.len());
            bytes[i] ^= 1 << below(rng, 8);
        }
        1 => {
            let token = pick(rng, TOKENS).as_bytes();
            bytes.splice(at..at, token.iter().copied());
        }
        2 if !bytes.is_empty() => {
            let end = (at + below(rng, 64)).min(bytes.len());
            bytes.drain(at.min(end)..end);
        }
        3 if !bytes.is_empty() => {
            let start = below(rng, bytes.len());
            let end = (start + below(rng, 256)).min(bytes.len());
            let chunk: Vec<u8> = bytes[start..end].to_vec();
            for _ in 0..1 + below(rng, 8) {
                bytes.splice(at..at, chunk.iter().copied());
            }
        }
        // Deep nesting, in flow style or by indentation.
        4 => {
            let n = 1 + below(rng, 100_000);
            let nested = if below(rng, 2) == 0 {
                format!("{}1{}", "[".repeat(n), "]".repeat(n))
            } else {
                (0..n.min(2_000))
                    .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                    .collect()
            };
            bytes.splice(at..at, nested.into_bytes());
        }
        // An alias bomb: every level names the one before it ten times.
        5 => {
            let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
            for i in 1..=1 + below(rng, 12) {
                let prev = format!("*a{}", i - 1);
                bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
            }
            bytes = bomb.into_bytes();
        }
        6 => {
            let s = hostile_string(rng);
            bytes.splice(at..at, s.into_bytes());
        }
        _ => {
            let token = pick(rng, TOKENS).as_bytes();
            let i = below(rng, bytes.len() + 1);
            bytes.splice(i..i, token.iter().copied());
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

// ---- the findings ----------------------------------------------------------------------------

#[derive(Default)]
struct Run {
    target: &'static str,
    inputs: usize,
    slowest: Duration,
    started: Option<Instant>,
    findings: Vec<String>,
}

impl Run {
    fn new(target: &'static str) -> Run {
        Run {
            target,
            started: Some(Instant::now()),
            ..Run::default()
        }
    }

    fn timed(&mut self, took: Duration, case: usize, input: &str) {
        self.inputs += 1;
        if took > self.slowest {
            self.slowest = took;
            // Kept, to look into what takes longest.
            let dir = repo_root().join("target/fuzz-findings");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join(format!("slowest-{}.txt", self.target)), input);
        }
        if took > Duration::from_secs(MAX_SECONDS_PER_INPUT) {
            self.finding(case, input, &format!("took {took:?}"));
        }
    }

    fn finding(&mut self, case: usize, input: &str, what: &str) {
        let dir = repo_root().join("target/fuzz-findings");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(format!("{}-{case}.txt", self.target)), input);
        let shown: String = input.chars().take(2_000).collect();
        self.findings.push(format!(
            "{} case {case}: {what}\n  input: {shown}",
            self.target
        ));
    }

    fn finish(self) {
        let took = self.started.map(|s| s.elapsed()).unwrap_or_default();
        println!(
            "fuzz {}: {} inputs in {:.1} s, slowest {} ms, {} findings",
            self.target,
            self.inputs,
            took.as_secs_f64(),
            self.slowest.as_millis(),
            self.findings.len()
        );
        assert!(self.findings.is_empty(), "{}", self.findings.join("\n"));
    }
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".to_owned())
}

/// Runs `f` on `input`, catching a panic as a finding and timing it.
fn check<T>(run: &mut Run, case: usize, input: &str, f: impl FnOnce() -> T) -> Option<T> {
    let start = Instant::now();
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    run.timed(start.elapsed(), case, input);
    match out {
        Ok(v) => Some(v),
        Err(e) => {
            run.finding(
                case,
                input,
                &format!("panicked: {}", panic_text(e.as_ref())),
            );
            None
        }
    }
}

// ---- the parsers -----------------------------------------------------------------------------

#[test]
fn policies_as_text_and_as_json_are_accepted_or_refused_with_their_problems() {
    let corpus = policies();
    let mut run = Run::new("policy-text");
    let mut r = rng(run.target);
    for case in 0..cases() {
        let mut text = pick(&mut r, &corpus).clone();
        for _ in 0..1 + below(&mut r, 4) {
            text = mutate_text(&text, &mut r);
        }
        if let Some(Err(e)) = check(&mut run, case, &text, || {
            guardrails::policy::Policy::parse(&text)
        }) {
            let message = e.to_string();
            let limit = guardrails::policy::limits::MAX_PROBLEMS + 1;
            if e.problems.is_empty()
                || e.problems.len() > limit
                || message.len() > MAX_POLICY_ERROR_BYTES
            {
                run.finding(
                    case,
                    &text,
                    &format!("{} problems, {} bytes", e.problems.len(), message.len()),
                );
            }
        }
    }
    run.finish();

    let mut run = Run::new("policy-json");
    let mut r = rng(run.target);
    let documents: Vec<Value> = corpus
        .iter()
        .filter_map(|t| serde_yaml_ng::from_str(t).ok())
        .collect();
    for case in 0..cases() {
        let mut doc = pick(&mut r, &documents).clone();
        for _ in 0..1 + below(&mut r, 4) {
            mutate_value(&mut doc, &mut r);
        }
        let input = doc.to_string();
        if let Some(Err(e)) = check(&mut run, case, &input, || {
            guardrails::policy::Policy::from_value(&doc)
        }) {
            let message = e.to_string();
            if e.problems.is_empty() || message.len() > MAX_POLICY_ERROR_BYTES {
                run.finding(
                    case,
                    &input,
                    &format!("{} problems, {} bytes", e.problems.len(), message.len()),
                );
            }
        }
    }
    run.finish();
}

#[test]
fn command_bodies_and_events_parse_to_an_answer() {
    let bodies = command_bodies();
    let mut run = Run::new("command-parser");
    let mut r = rng(run.target);
    for case in 0..cases() {
        let mut body = pick(&mut r, &bodies).clone();
        if below(&mut r, 2) == 0 {
            if let Ok(mut v) = serde_json::from_str::<Value>(&body) {
                for _ in 0..1 + below(&mut r, 3) {
                    mutate_value(&mut v, &mut r);
                }
                body = v.to_string();
            }
        } else {
            body = mutate_text(&body, &mut r);
        }
        if let Some(Err(e)) = check(&mut run, case, &body, || {
            guardrails::inbound::command(&body)
        }) && e.to_string().is_empty()
        {
            run.finding(case, &body, "refused without a message");
        }
    }
    run.finish();

    let corpus = samples();
    let mut run = Run::new("event-parser");
    let mut r = rng(run.target);
    for case in 0..cases() {
        let mut event = pick(&mut r, &corpus).clone();
        for _ in 0..1 + below(&mut r, 4) {
            mutate_value(&mut event, &mut r);
        }
        let input = event.to_string();
        if let Some(Err(e)) = check(&mut run, case, &input, || {
            guardrails::inbound::parse(&event, Some(guardrails_local::iam::ACCOUNT))
        }) && e.to_string().is_empty()
        {
            run.finding(case, &input, "refused without a message");
        }
    }
    run.finish();
}

// ---- the handlers ----------------------------------------------------------------------------

fn settings() -> Settings {
    Settings {
        table: "guardrails".to_owned(),
        ..guardrails_tests::flow::local_settings()
    }
}

/// A world with a deployment baking on `fraud-scorer`, started by the operator's command.
async fn with_a_deployment() -> Harness {
    let h = Harness::new(
        World::serving(T0, "fraud-scorer-v1", "AllTraffic", "fraud-scorer-v1", 4)
            .with_endpoint_alarm("fraud-scorer-5xx"),
    );
    let request: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("events/command-deploy.json")).unwrap(),
    )
    .unwrap();
    let answer = handlers::command(&h.driver, &settings(), &request)
        .await
        .unwrap();
    assert_eq!(answer.status_code, 200, "{}", answer.body);
    h
}

/// What the table holds for the endpoint: the active record's version and its audit length.
async fn state(h: &Harness) -> (Option<u64>, usize) {
    let active = h.store.load("fraud-scorer").await.unwrap();
    let audit = match &active {
        Some(s) => h
            .store
            .audit("fraud-scorer", &s.deployment.plan.deployment_id)
            .await
            .unwrap()
            .len(),
        None => 0,
    };
    (active.map(|s| s.version), audit)
}

/// One input to one function, in a fresh world: its answer, and whether it changed the table.
async fn handle(function: usize, event: Value) -> Result<String, String> {
    let h = with_a_deployment().await;
    let before = state(&h).await;
    let s = settings();
    let answer: Result<Handled, String> = match function {
        0 if event.get("requestContext").is_some() => {
            match handlers::command(&h.driver, &s, &event).await {
                Ok(a) => {
                    if a.body.len() > 1024 * 1024 {
                        return Err(format!("a {} byte answer", a.body.len()));
                    }
                    Ok(a.handled)
                }
                Err(e) => Err(e.to_string()),
            }
        }
        0 => handlers::start_deployment(&h.driver, &s, &event)
            .await
            .map_err(|e| e.to_string()),
        1 => handlers::endpoint_events(&h.driver, &s, &event)
            .await
            .map_err(|e| e.to_string()),
        2 => handlers::bake_watcher(&h.driver, &s, &event)
            .await
            .map_err(|e| e.to_string()),
        _ => {
            let pager = guardrails::memory::MemoryPager::default();
            handlers::rollback_notifier(h.store.as_ref(), &pager, h.clock.as_ref(), &s, &event)
                .await
                .map_err(|e| e.to_string())
        }
    };
    for published in h
        .bus
        .events()
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .chain(
            h.bus
                .refusals()
                .iter()
                .map(|e| serde_json::to_string(e).unwrap()),
        )
    {
        if published.len() > MAX_EVENT_BYTES {
            return Err(format!("published a {} byte event", published.len()));
        }
    }
    let after = state(&h).await;
    match answer {
        Ok(Handled::Ignored { .. } | Handled::Refused { .. } | Handled::Planned { .. })
            if after != before =>
        {
            Err(format!(
                "refused or ignored, yet changed the table: {before:?} -> {after:?}"
            ))
        }
        Ok(handled) => Ok(serde_json::to_string(&handled).unwrap()),
        Err(e) if e.is_empty() => Err("an error without a message".to_owned()),
        Err(e) => Ok(e),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_answers_every_input_and_refusals_change_nothing() {
    const FUNCTIONS: [&str; 4] = [
        "start-deployment",
        "endpoint-events",
        "bake-watcher",
        "rollback-notifier",
    ];
    let corpus = samples();
    let mut run = Run::new("handlers");
    let mut r = rng(run.target);
    for case in 0..cases() {
        let mut event = pick(&mut r, &corpus).clone();
        // A URL request's body is text: mutate it as the command it holds.
        if let Some(body) = event.get("body").and_then(Value::as_str).map(str::to_owned)
            && below(&mut r, 2) == 0
        {
            event["body"] = Value::String(mutate_text(&body, &mut r));
        } else {
            for _ in 0..1 + below(&mut r, 4) {
                mutate_value(&mut event, &mut r);
            }
        }
        // As Lambda delivers it: JSON text, parsed by the runtime (which refuses what serde_json
        // cannot read, before any handler runs).
        let Ok(event) = serde_json::from_str::<Value>(&event.to_string()) else {
            continue;
        };
        let function = below(&mut r, FUNCTIONS.len());
        let input = format!("{} <- {event}", FUNCTIONS[function]);
        let start = Instant::now();
        let out = tokio::spawn(handle(function, event)).await;
        run.timed(start.elapsed(), case, &input);
        match out {
            Ok(Ok(_)) => {}
            Ok(Err(what)) => run.finding(case, &input, &what),
            Err(e) if e.is_panic() => {
                let text = panic_text(e.into_panic().as_ref());
                run.finding(case, &input, &format!("panicked: {text}"));
            }
            Err(e) => run.finding(case, &input, &e.to_string()),
        }
    }
    run.finish();
}
