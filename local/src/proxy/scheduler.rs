//! EventBridge Scheduler (restJson1: `POST|PUT|GET|DELETE /schedules/<name>`). Schedule actions
//! are authorized against `schedule/<group>/<name>` (the group from the body, or `groupName` in
//! the query; `default` when absent); creating or updating one passes its target's role, which
//! needs `iam:PassRole` on that role (the reference lists it as a dependent action). Refusals are
//! `AccessDeniedException`, HTTP 403.

use axum::http::{Method, StatusCode, Uri};
use serde_json::Value;

use super::{Service, json};
use crate::iam::{Ask, Resource, arn};
use crate::protocol::Protocol;

pub(super) fn read(method: &Method, uri: &Uri, body: &[u8]) -> Service {
    let input = json(body);
    let query: Vec<(String, String)> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let from_query = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.clone());
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let asks = match (method.as_str(), segments.as_slice()) {
        (m, ["schedules", name]) => {
            let op = match m {
                "POST" => "CreateSchedule",
                "PUT" => "UpdateSchedule",
                "GET" => "GetSchedule",
                "DELETE" => "DeleteSchedule",
                _ => "UnknownOperation",
            };
            let group = input
                .get("GroupName")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| from_query("groupName"))
                .unwrap_or_else(|| "default".to_owned());
            let name = form_urlencoded::parse(name.as_bytes())
                .next()
                .map_or_else(|| (*name).to_owned(), |(k, _)| k.into_owned());
            let schedule = Resource::new(
                "scheduler:schedule",
                arn("scheduler", &format!("schedule/{group}/{name}")),
            );
            let mut asks = vec![Ask::new(&format!("scheduler:{op}"), vec![schedule])];
            if let Some(role) = input.pointer("/Target/RoleArn").and_then(Value::as_str) {
                asks.push(
                    Ask::new("iam:PassRole", vec![Resource::new("iam:role", role)]).with(
                        "iam:PassedToService",
                        vec!["scheduler.amazonaws.com".to_owned()],
                    ),
                );
            }
            asks
        }
        ("GET", ["schedules"]) => vec![Ask::new("scheduler:ListSchedules", Vec::new())],
        (_, [first, ..]) => vec![Ask::new(&format!("scheduler:{first}"), Vec::new())],
        _ => vec![Ask::new("scheduler:Unknown", Vec::new())],
    };
    Service {
        protocol: Protocol::RestJson,
        asks,
        denied: "AccessDeniedException",
        denied_status: StatusCode::FORBIDDEN,
        unknown_key: "UnrecognizedClientException",
    }
}
