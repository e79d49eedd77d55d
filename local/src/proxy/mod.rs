//! The services moto serves (DynamoDB, SNS, SQS, EventBridge, EventBridge Scheduler, Systems
//! Manager's Parameter Store, Application Auto Scaling), behind an
//! IAM check: each request is read for the actions and resources AWS authorizes it against
//! (one module per service, naming its source), decided on by `iam`, then forwarded to moto
//! unchanged, or refused in the service's own words. STS's GetCallerIdentity is answered here,
//! with the caller the local IAM knows.

mod autoscaling;
mod dynamodb;
mod events;
mod scheduler;
mod sns;
mod sqs;
mod ssm;
mod sts;

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::iam::{Ask, Denied};
use crate::protocol::Protocol;

/// What a service needs from a request to authorize it, and how it says no.
pub(crate) struct Service {
    pub protocol: Protocol,
    pub asks: Vec<Ask>,
    /// Its error code for a request IAM refuses.
    pub denied: &'static str,
    pub denied_status: StatusCode,
    /// Its error code for an access key it does not know.
    pub unknown_key: &'static str,
}

/// The form fields of a query-protocol body.
pub(crate) fn form(body: &[u8]) -> BTreeMap<String, String> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The JSON body of a request (empty or unreadable: `{}`; the service answers the syntax).
pub(crate) fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Object(serde_json::Map::new()))
}

/// The operation named by `X-Amz-Target: <prefix>.<Operation>`.
pub(crate) fn target_operation(headers: &HeaderMap) -> String {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit_once('.'))
        .map(|(_, op)| op.to_owned())
        .unwrap_or_default()
}

/// Reads the request of `service` (the SigV4 service name).
fn read(
    service: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Service> {
    Some(match service {
        "dynamodb" => dynamodb::read(headers, body),
        "sns" => sns::read(body),
        "sqs" => sqs::read(headers, body),
        "events" => events::read(headers, body),
        "scheduler" => scheduler::read(method, uri, body),
        "ssm" => ssm::read(headers, body),
        "application-autoscaling" => autoscaling::read(headers, body),
        _ => return None,
    })
}

/// The error a refused request gets.
pub(crate) fn refuse(service: &Service, denied: &Denied) -> Response {
    let (status, code) = match denied {
        Denied::Unsigned => (StatusCode::FORBIDDEN, "MissingAuthenticationTokenException"),
        Denied::UnknownKey(_) => (StatusCode::FORBIDDEN, service.unknown_key),
        Denied::NotAuthorized { .. } => (service.denied_status, service.denied),
    };
    service.protocol.error(status, code, &denied.message())
}

/// Forwards requests to moto.
#[derive(Debug, Clone)]
pub struct Forwarder {
    moto: Option<String>,
    client: Client<HttpConnector, Body>,
}

impl Forwarder {
    /// Forwarding to moto at `moto` (`http://127.0.0.1:<port>`); none: every such request is
    /// answered `ServiceUnavailable`.
    pub fn new(moto: Option<String>) -> Forwarder {
        Forwarder {
            moto,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn forward(
        &self,
        method: Method,
        uri: &Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let Some(base) = &self.moto else {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "no moto behind the local stack",
            )
                .into_response();
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"));
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        let Ok(request) = request.body(Body::from(body)) else {
            return (StatusCode::BAD_REQUEST, "unreadable request").into_response();
        };
        match self.client.request(request).await {
            Ok(answer) => {
                let (parts, body) = answer.into_parts();
                match body.collect().await {
                    Ok(bytes) => Response::from_parts(parts, Body::from(bytes.to_bytes())),
                    Err(e) => (StatusCode::BAD_GATEWAY, format!("moto: {e}")).into_response(),
                }
            }
            Err(e) => (StatusCode::BAD_GATEWAY, format!("moto: {e}")).into_response(),
        }
    }
}

/// A request for a service moto serves: authorized by `authorize`, then forwarded.
pub(crate) async fn handle(
    forwarder: &Forwarder,
    service: &str,
    (method, uri, headers, body): (Method, Uri, HeaderMap, Bytes),
    authorize: impl FnOnce(&[Ask]) -> Result<String, Denied>,
) -> Response {
    if service == "sts" {
        let caller = authorize(&[]);
        return sts::answer(&body, caller);
    }
    let Some(read) = read(service, &method, &uri, &headers, &body) else {
        // A service the local IAM has no reader for: only the administrator may use it.
        let unknown = Service {
            protocol: Protocol::of(&headers, uri.path()),
            asks: vec![Ask::new(&format!("{service}:*"), Vec::new())],
            denied: "AccessDeniedException",
            denied_status: StatusCode::FORBIDDEN,
            unknown_key: "UnrecognizedClientException",
        };
        return match authorize(&unknown.asks) {
            Ok(_) => forwarder.forward(method, &uri, headers, body).await,
            Err(denied) => refuse(&unknown, &denied),
        };
    };
    match authorize(&read.asks) {
        Ok(_) => forwarder.forward(method, &uri, headers, body).await,
        Err(denied) => refuse(&read, &denied),
    }
}
