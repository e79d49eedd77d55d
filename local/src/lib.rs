//! The project's own emulator of the two AWS services moto cannot serve here: SageMaker (moto
//! lacks `UpdateEndpoint` and asynchronous status changes) and CloudWatch (the current SDK speaks
//! Smithy RPC v2 CBOR, which moto does not; moto never evaluates alarms). One HTTP server on
//! 127.0.0.1 answers both protocols, plus a small control API to inject faults and set how
//! models behave. It plays AWS, so it has a real clock; Guardrails' own code does not.

// The emulator stands in for AWS and reads the wall clock, which only Guardrails' core and
// driver must never do.
#![allow(clippy::disallowed_methods)]
// Metric arithmetic mixes counts and floats the way CloudWatch does.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

pub mod cbor;
pub mod cloudwatch;
mod control;
pub mod events;
pub mod fixtures;
mod gateway;
pub mod iam;
pub mod lambda;
pub mod protocol;
pub mod proxy;
pub mod rollout;
pub mod sagemaker;
pub mod servicequotas;
pub mod stack;
pub mod traffic;
pub mod wiring;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::cloudwatch::CloudWatch;
use crate::events::{Outgoing, Publisher};
use crate::iam::Iam;
use crate::proxy::Forwarder;
use crate::sagemaker::{Delays, SageMaker};
use crate::traffic::Behaviour;

/// The repository's root folder (where `infra/` and `.venv/` are), wherever the binary runs.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch.
pub type Ms = i64;

pub fn now_ms() -> Ms {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Ms)
}

/// Epoch seconds, the unit of timestamps in SageMaker's JSON.
pub fn secs(ms: Ms) -> f64 {
    ms as f64 / 1_000.0
}

/// `2019-10-02T17:04:40.989+0000`, the form of timestamps in CloudWatch alarm events.
pub fn iso8601(ms: Ms) -> String {
    let t = guardrails::units::Timestamp::from_epoch_ms(ms).utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millisecond
    )
}

/// An error as an AWS service returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new("ValidationException", message)
    }

    /// The HTTP status AWS answers this error with.
    pub fn status(&self) -> StatusCode {
        match self.code.as_str() {
            "AccessDenied"
            | "AccessDeniedException"
            | "InvalidClientTokenId"
            | "MissingAuthenticationToken" => StatusCode::FORBIDDEN,
            "ResourceNotFound" | "ResourceNotFoundException" => StatusCode::NOT_FOUND,
            "InternalFailure" | "InternalServiceError" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Everything the emulator knows.
#[derive(Debug, Default)]
pub struct Emulator {
    pub sagemaker: SageMaker,
    pub cloudwatch: CloudWatch,
    pub behaviours: BTreeMap<String, Behaviour>,
    /// Calls still to be refused with a throttling error.
    pub throttle_next: u32,
    /// Every event sent, oldest first.
    pub events: Vec<Outgoing>,
    pub requests_per_tick: u32,
    /// The traffic's seeded noise.
    pub noise: traffic::Noise,
    /// Who may call what (`iam`): the administrator, and each function's role.
    pub iam: Iam,
}

/// How to run the emulator.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to send state-change events; `None` keeps them in the log only.
    pub publisher: Option<Publisher>,
    pub delays: Delays,
    /// How often traffic is recorded, alarms evaluated and pending changes finished.
    pub tick: Duration,
    /// Requests per tick for each serving endpoint.
    pub requests_per_tick: u32,
    /// Who may call what; the default is the administrator alone.
    pub iam: Iam,
    /// moto (`http://127.0.0.1:<port>`), where requests for the services it serves go once
    /// authorized.
    pub moto: Option<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            publisher: None,
            delays: Delays::default(),
            tick: Duration::from_millis(250),
            requests_per_tick: 50,
            iam: Iam::admin_only(),
            moto: None,
        }
    }
}

#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) emulator: Arc<Mutex<Emulator>>,
    pub(crate) publisher: Option<Publisher>,
    pub(crate) forwarder: Forwarder,
    pub(crate) functions: lambda::Functions,
}

pub(crate) fn lock(emulator: &Mutex<Emulator>) -> MutexGuard<'_, Emulator> {
    emulator.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running emulator; it stops when dropped or with `stop`.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub emulator: Arc<Mutex<Emulator>>,
    /// Where function URL requests go, once the functions run (`serve_functions`).
    functions: lambda::Functions,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Running {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Hands function URL requests to `functions` from now on.
    pub fn serve_functions(&self, functions: Arc<dyn wiring::Invoker>) {
        self.functions.set(functions);
    }

    pub fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts the emulator on `addr` (port 0 picks a free one).
pub async fn start(addr: SocketAddr, config: Config) -> std::io::Result<Running> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let mut emulator = Emulator {
        requests_per_tick: config.requests_per_tick,
        iam: config.iam.clone(),
        ..Emulator::default()
    };
    emulator.sagemaker.delays = config.delays;
    let emulator = Arc::new(Mutex::new(emulator));
    let functions = lambda::Functions::default();
    let shared = Shared {
        emulator: emulator.clone(),
        publisher: config.publisher.clone(),
        forwarder: Forwarder::new(config.moto.clone()),
        functions: functions.clone(),
    };
    let app = Router::new()
        .route("/control/models/{model}", post(control::set_behaviour))
        .route(
            "/control/endpoints/{endpoint}/next-update",
            post(control::next_update),
        )
        .route("/control/throttle", post(control::throttle))
        .route("/control/delays", post(control::set_delays))
        .route("/control/events", get(control::list_events))
        .route("/control/iam", get(control::list_decisions))
        .route("/control/quotas", post(control::set_quota))
        .route(
            "/control/endpoints/{endpoint}/fleets",
            get(control::endpoint_fleets),
        )
        .fallback(gateway::gateway)
        .with_state(shared.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let (tick_tx, mut tick_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        let _ = serve.await;
        let _ = tick_tx.send(());
    });
    let ticker = shared;
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(config.tick);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = &mut tick_rx => break,
            }
            let events = {
                let mut emulator = lock(&ticker.emulator);
                let now = now_ms();
                let mut events = Vec::new();
                let emulator = &mut *emulator;
                let cloudwatch = &emulator.cloudwatch;
                let in_alarm = |name: &str| cloudwatch.state_of(name) == Some("ALARM");
                emulator.sagemaker.tick(now, &in_alarm, &mut events);
                traffic::tick(
                    &emulator.sagemaker,
                    &mut emulator.cloudwatch,
                    &emulator.behaviours,
                    emulator.requests_per_tick,
                    &mut emulator.noise,
                    now,
                );
                emulator.cloudwatch.evaluate(now, &mut events);
                emulator.events.extend(events.iter().cloned());
                events
            };
            if let (Some(publisher), false) = (&ticker.publisher, events.is_empty()) {
                publisher.publish(&events).await;
            }
        }
    });
    Ok(Running {
        addr,
        emulator,
        functions,
        shutdown: Some(tx),
    })
}

/// Takes one throttling token, if any: the call is then refused.
pub(crate) fn throttled(emulator: &mut Emulator) -> bool {
    if emulator.throttle_next > 0 {
        emulator.throttle_next -= 1;
        return true;
    }
    false
}

pub(crate) fn cbor_response(status: StatusCode, value: &ciborium::Value) -> Response {
    let mut response = (status, cbor::encode(value)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/cbor"),
    );
    headers.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_like_cloudwatch_events() {
        assert_eq!(iso8601(1_570_035_880_989), "2019-10-02T17:04:40.989+0000");
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000+0000");
    }
}
