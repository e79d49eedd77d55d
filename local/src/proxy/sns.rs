//! SNS (the query protocol: `Action=<Operation>` form bodies, XML answers). Topic actions are
//! authorized against the topic (`TopicArn`, or `TargetArn` for Publish; CreateTopic against
//! the topic it names). Refusals are `AuthorizationError`, HTTP 403, as SNS answers them.

use axum::http::StatusCode;

use super::{Service, form};
use crate::iam::{Ask, Resource, arn};
use crate::protocol::Protocol;

pub(super) fn read(body: &[u8]) -> Service {
    let fields = form(body);
    let op = fields.get("Action").cloned().unwrap_or_default();
    let action = format!("sns:{op}");
    let topic = match op.as_str() {
        "CreateTopic" => fields.get("Name").map(|n| arn("sns", n)),
        "Publish" => fields
            .get("TopicArn")
            .or_else(|| fields.get("TargetArn"))
            .cloned(),
        _ => fields.get("TopicArn").cloned(),
    };
    let resources = topic
        .map(|t| vec![Resource::new("sns:topic", t)])
        .unwrap_or_default();
    Service {
        protocol: Protocol::Query {
            xmlns: "http://sns.amazonaws.com/doc/2010-03-31/",
        },
        asks: vec![Ask::new(&action, resources)],
        denied: "AuthorizationError",
        denied_status: StatusCode::FORBIDDEN,
        unknown_key: "InvalidClientTokenId",
    }
}
