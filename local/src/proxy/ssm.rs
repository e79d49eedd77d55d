//! Systems Manager Parameter Store (awsJson1_1, `X-Amz-Target: AmazonSSM.<Operation>`).
//! Parameter actions are authorized against `parameter/<name>` (the name without its leading
//! `/`, as the reference's ARN format has it). Refusals are `AccessDeniedException`, HTTP 400.

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::{Service, json, target_operation};
use crate::iam::{Ask, Resource, arn};
use crate::protocol::Protocol;

pub(super) fn read(headers: &HeaderMap, body: &[u8]) -> Service {
    let op = target_operation(headers);
    let input = json(body);
    let action = format!("ssm:{op}");
    let names: Vec<String> = match input.get("Names").and_then(Value::as_array) {
        Some(names) => names
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        None => input
            .get("Name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .into_iter()
            .collect(),
    };
    let resources = names
        .iter()
        .map(|name| {
            Resource::new(
                "ssm:parameter",
                arn(
                    "ssm",
                    &format!("parameter/{}", name.trim_start_matches('/')),
                ),
            )
        })
        .collect();
    Service {
        protocol: Protocol::Json {
            version: "1.1",
            query_compatible: false,
        },
        asks: vec![Ask::new(&action, resources)],
        denied: "AccessDeniedException",
        denied_status: StatusCode::BAD_REQUEST,
        unknown_key: "UnrecognizedClientException",
    }
}
