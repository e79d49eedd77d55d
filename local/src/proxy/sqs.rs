//! SQS: the JSON protocol the current SDKs speak (`X-Amz-Target: AmazonSQS.<Operation>`,
//! `awsQueryCompatible`) or the query protocol of older clients. Queue actions are authorized
//! against the queue (from `QueueUrl`, or `QueueName` for CreateQueue and GetQueueUrl).
//! Refusals are `AccessDenied`, HTTP 403.

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::{Service, form, json, target_operation};
use crate::iam::{Ask, Resource, arn};
use crate::protocol::Protocol;

pub(super) fn read(headers: &HeaderMap, body: &[u8]) -> Service {
    let json_protocol = headers.contains_key("x-amz-target");
    let (op, url, name) = if json_protocol {
        let input = json(body);
        let get = |f: &str| input.get(f).and_then(Value::as_str).map(str::to_owned);
        (target_operation(headers), get("QueueUrl"), get("QueueName"))
    } else {
        let f = form(body);
        (
            f.get("Action").cloned().unwrap_or_default(),
            f.get("QueueUrl").cloned(),
            f.get("QueueName").cloned(),
        )
    };
    let queue = url
        .and_then(|u| u.rsplit('/').next().map(str::to_owned))
        .or(name);
    let resources = queue
        .map(|q| vec![Resource::new("sqs:queue", arn("sqs", &q))])
        .unwrap_or_default();
    let protocol = if json_protocol {
        Protocol::Json {
            version: "1.0",
            query_compatible: true,
        }
    } else {
        Protocol::Query {
            xmlns: "http://queue.amazonaws.com/doc/2012-11-05/",
        }
    };
    Service {
        protocol,
        asks: vec![Ask::new(&format!("sqs:{op}"), resources)],
        denied: "AccessDenied",
        denied_status: StatusCode::FORBIDDEN,
        unknown_key: "InvalidClientTokenId",
    }
}
