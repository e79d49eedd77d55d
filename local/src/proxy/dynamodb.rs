//! DynamoDB (awsJson1_0, `X-Amz-Target: DynamoDB_20120810.<Operation>`). Item and table actions
//! are authorized against the table, `Query` and `Scan` of an index against the index; a
//! transaction has no action of its own: each item in it is authorized as the PutItem,
//! UpdateItem, DeleteItem, ConditionCheckItem or GetItem it is, with
//! `dynamodb:EnclosingOperation` set ("Using IAM with DynamoDB transactions", DynamoDB
//! developer guide). Refusals are `AccessDeniedException`, HTTP 400.

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::{Service, json, target_operation};
use crate::iam::{Ask, Resource, arn};
use crate::protocol::Protocol;

fn table(name: &str) -> Resource {
    Resource::new("dynamodb:table", arn("dynamodb", &format!("table/{name}")))
}

fn index(table: &str, index: &str) -> Resource {
    Resource::new(
        "dynamodb:index",
        arn("dynamodb", &format!("table/{table}/index/{index}")),
    )
}

fn name(v: &Value) -> &str {
    v.get("TableName")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub(super) fn read(headers: &HeaderMap, body: &[u8]) -> Service {
    let op = target_operation(headers);
    let input = json(body);
    let action = format!("dynamodb:{op}");
    let asks = match op.as_str() {
        "Query" | "Scan" => {
            let resource = match input.get("IndexName").and_then(Value::as_str) {
                Some(i) => index(name(&input), i),
                None => table(name(&input)),
            };
            vec![Ask::new(&action, vec![resource])]
        }
        "BatchGetItem" | "BatchWriteItem" => input
            .get("RequestItems")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(t, _)| Ask::new(&action, vec![table(t)]))
            .collect(),
        "TransactWriteItems" | "TransactGetItems" => input
            .get("TransactItems")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let (kind, spec) = item.as_object()?.iter().next()?;
                let underlying = match kind.as_str() {
                    "Put" => "dynamodb:PutItem",
                    "Update" => "dynamodb:UpdateItem",
                    "Delete" => "dynamodb:DeleteItem",
                    "ConditionCheck" => "dynamodb:ConditionCheckItem",
                    "Get" => "dynamodb:GetItem",
                    _ => return None,
                };
                Some(
                    Ask::new(underlying, vec![table(name(spec))])
                        .with("dynamodb:EnclosingOperation", vec![op.clone()]),
                )
            })
            .collect(),
        "ListTables" => vec![Ask::new(&action, Vec::new())],
        _ if !name(&input).is_empty() => vec![Ask::new(&action, vec![table(name(&input))])],
        _ => vec![Ask::new(&action, Vec::new())],
    };
    Service {
        protocol: Protocol::Json {
            version: "1.0",
            query_compatible: false,
        },
        asks,
        denied: "AccessDeniedException",
        denied_status: StatusCode::BAD_REQUEST,
        unknown_key: "UnrecognizedClientException",
    }
}
