//! Application Auto Scaling (awsJson1_1, `X-Amz-Target: AnyScaleFrontendService.<Operation>`).
//! A scalable target's ARN holds an id AWS assigns (`scalable-target/<id>`); locally the id is
//! derived from the service namespace, resource id and dimension, the same on every call, so
//! that a policy naming one target's ARN means that target. Requests carry
//! `application-autoscaling:service-namespace` and `...:scalable-dimension`. Describe calls
//! have no resource type (the reference) and are asked on `*`. Refusals are
//! `AccessDeniedException`, HTTP 400.

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::{Service, json, target_operation};
use crate::iam::{Ask, Resource, arn};
use crate::protocol::Protocol;

/// The local id of a scalable target (FNV-1a, 64 bits, as hex).
fn target_id(namespace: &str, resource_id: &str, dimension: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{namespace}|{resource_id}|{dimension}").bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

pub(super) fn read(headers: &HeaderMap, body: &[u8]) -> Service {
    let op = target_operation(headers);
    let input = json(body);
    let action = format!("application-autoscaling:{op}");
    let text = |f: &str| input.get(f).and_then(Value::as_str).unwrap_or_default();
    let (namespace, resource_id, dimension) = (
        text("ServiceNamespace"),
        text("ResourceId"),
        text("ScalableDimension"),
    );
    let resources = match op.as_str() {
        "RegisterScalableTarget"
        | "DeregisterScalableTarget"
        | "PutScalingPolicy"
        | "DeleteScalingPolicy"
        | "PutScheduledAction"
        | "DeleteScheduledAction" => vec![Resource::new(
            "application-autoscaling:ScalableTarget",
            arn(
                "application-autoscaling",
                &format!(
                    "scalable-target/{}",
                    target_id(namespace, resource_id, dimension)
                ),
            ),
        )],
        _ => Vec::new(),
    };
    let mut ask = Ask::new(&action, resources);
    if !namespace.is_empty() {
        ask = ask.with(
            "application-autoscaling:service-namespace",
            vec![namespace.to_owned()],
        );
    }
    if !dimension.is_empty() {
        ask = ask.with(
            "application-autoscaling:scalable-dimension",
            vec![dimension.to_owned()],
        );
    }
    Service {
        protocol: Protocol::Json {
            version: "1.1",
            query_compatible: false,
        },
        asks: vec![ask],
        denied: "AccessDeniedException",
        denied_status: StatusCode::BAD_REQUEST,
        unknown_key: "UnrecognizedClientException",
    }
}
