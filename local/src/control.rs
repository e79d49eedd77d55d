//! The control API: how tests, the demo and people set up the emulated world (model behaviour,
//! the outcome of the next update, throttling, delays) and read the events it sent.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::sagemaker::Outcome;
use crate::traffic::Behaviour;
use crate::{Shared, lock};

pub(crate) async fn set_behaviour(
    State(shared): State<Shared>,
    Path(model): Path<String>,
    axum::Json(behaviour): axum::Json<Behaviour>,
) -> impl IntoResponse {
    lock(&shared.emulator).behaviours.insert(model, behaviour);
    StatusCode::NO_CONTENT
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct NextUpdate {
    /// `fail-to-old-config` (back on the old config with `reason`; empty for the silent case),
    /// `fail` (the endpoint goes to Failed), `rollback-fails` (a SageMaker-run deployment that
    /// rolls back ends `UpdateRollbackFailed`) or `succeed`.
    outcome: String,
    #[serde(default)]
    reason: String,
}

pub(crate) async fn next_update(
    State(shared): State<Shared>,
    Path(endpoint): Path<String>,
    axum::Json(next): axum::Json<NextUpdate>,
) -> Response {
    let outcome = match next.outcome.as_str() {
        "fail-to-old-config" => Outcome::ReturnsToOldConfig(next.reason),
        "fail" => Outcome::Fails(next.reason),
        "rollback-fails" => Outcome::RollbackFails(next.reason),
        "succeed" => Outcome::Succeeds,
        other => {
            let message = format!(
                "outcome {other:?}: use fail-to-old-config, fail, rollback-fails or succeed"
            );
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    lock(&shared.emulator)
        .sagemaker
        .next_outcome
        .insert(endpoint, outcome);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct Throttle {
    calls: u32,
}

pub(crate) async fn throttle(
    State(shared): State<Shared>,
    axum::Json(t): axum::Json<Throttle>,
) -> impl IntoResponse {
    lock(&shared.emulator).throttle_next = t.calls;
    StatusCode::NO_CONTENT
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct DelaysMs {
    create_ms: Option<i64>,
    update_ms: Option<i64>,
    weights_ms: Option<i64>,
}

pub(crate) async fn set_delays(
    State(shared): State<Shared>,
    axum::Json(d): axum::Json<DelaysMs>,
) -> impl IntoResponse {
    let mut emulator = lock(&shared.emulator);
    let delays = &mut emulator.sagemaker.delays;
    delays.create_ms = d.create_ms.unwrap_or(delays.create_ms);
    delays.update_ms = d.update_ms.unwrap_or(delays.update_ms);
    delays.weights_ms = d.weights_ms.unwrap_or(delays.weights_ms);
    StatusCode::NO_CONTENT
}

pub(crate) async fn list_events(State(shared): State<Shared>) -> impl IntoResponse {
    axum::Json(lock(&shared.emulator).events.clone())
}

/// Every decision the local IAM took for a function (the administrator is not logged):
/// `[{"principal", "action", "resource", "allowed"}]`, oldest first.
pub(crate) async fn list_decisions(State(shared): State<Shared>) -> impl IntoResponse {
    let log: Vec<serde_json::Value> = lock(&shared.emulator)
        .iam
        .log
        .iter()
        .map(|(principal, action, resource, allowed)| {
            serde_json::json!({
                "principal": principal, "action": action, "resource": resource, "allowed": allowed
            })
        })
        .collect();
    axum::Json(log)
}

/// The fleets of an endpoint (SageMaker provisions one per variant of every config it deploys):
/// each with its instances and when it ran, the instances running over time, the peak and the
/// instance-seconds so far.
pub(crate) async fn endpoint_fleets(
    State(shared): State<Shared>,
    Path(endpoint): Path<String>,
) -> Response {
    let emulator = lock(&shared.emulator);
    match emulator.sagemaker.fleets(&endpoint) {
        Some(fleets) => {
            let now = crate::now_ms();
            axum::Json(serde_json::json!({
                "fleets": fleets.fleets,
                "timeline": fleets.timeline,
                "peakInstances": fleets.peak(),
                "runningInstances": fleets.running(),
                "instanceSeconds": fleets.instance_secs(now),
            }))
            .into_response()
        }
        None => (StatusCode::NOT_FOUND, format!("no endpoint {endpoint}")).into_response(),
    }
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct Quota {
    instance_type: String,
    instances: u32,
}

/// Sets the account's quota of one instance type for endpoints (Service Quotas' value).
pub(crate) async fn set_quota(
    State(shared): State<Shared>,
    axum::Json(q): axum::Json<Quota>,
) -> impl IntoResponse {
    lock(&shared.emulator)
        .sagemaker
        .quotas
        .insert(q.instance_type, q.instances);
    StatusCode::NO_CONTENT
}
