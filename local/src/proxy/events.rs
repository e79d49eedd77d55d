//! EventBridge (awsJson1_1, `X-Amz-Target: AWSEvents.<Operation>`). PutEvents is authorized
//! against each entry's event bus (`EventBusName`, a name or an ARN; `default` when absent),
//! with `events:source` and `events:detail-type`; rule actions against the rule (on the default
//! bus `rule/<name>`, on another `rule/<bus>/<name>`). Refusals are `AccessDeniedException`.

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::{Service, json, target_operation};
use crate::iam::{Ask, Resource, arn};
use crate::protocol::Protocol;

fn bus_arn(bus: &str) -> String {
    if bus.starts_with("arn:") {
        bus.to_owned()
    } else {
        arn("events", &format!("event-bus/{bus}"))
    }
}

pub(super) fn read(headers: &HeaderMap, body: &[u8]) -> Service {
    let op = target_operation(headers);
    let input = json(body);
    let action = format!("events:{op}");
    let text = |v: &Value, f: &str| v.get(f).and_then(Value::as_str).map(str::to_owned);
    let asks = match op.as_str() {
        "PutEvents" => input
            .get("Entries")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|entry| {
                let bus = text(entry, "EventBusName").unwrap_or_else(|| "default".to_owned());
                Ask::new(
                    &action,
                    vec![Resource::new("events:event-bus", bus_arn(&bus))],
                )
                .with("events:source", text(entry, "Source").into_iter().collect())
                .with(
                    "events:detail-type",
                    text(entry, "DetailType").into_iter().collect(),
                )
            })
            .collect(),
        _ => {
            let rule = text(&input, "Name").or_else(|| text(&input, "Rule"));
            let bus = text(&input, "EventBusName").filter(|b| b != "default");
            let resources = match (rule, bus) {
                (Some(rule), None) => vec![Resource::new(
                    "events:rule-on-default-event-bus",
                    arn("events", &format!("rule/{rule}")),
                )],
                (Some(rule), Some(bus)) => vec![Resource::new(
                    "events:rule-on-custom-event-bus",
                    arn("events", &format!("rule/{bus}/{rule}")),
                )],
                (None, _) => Vec::new(),
            };
            vec![Ask::new(&action, resources)]
        }
    };
    Service {
        protocol: Protocol::Json {
            version: "1.1",
            query_compatible: false,
        },
        asks,
        denied: "AccessDeniedException",
        denied_status: StatusCode::BAD_REQUEST,
        unknown_key: "UnrecognizedClientException",
    }
}
