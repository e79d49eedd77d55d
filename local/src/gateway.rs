//! The local stack's one front door (`AWS_ENDPOINT_URL`): every request is read for its
//! signer and service (the SigV4 `Authorization` header's credential scope), authorized by the
//! local IAM, then answered by the emulated service (SageMaker, CloudWatch, Service Quotas, the
//! function URLs of `lambda`) or forwarded to moto (`proxy`). A refused request gets the service's own error, in its
//! protocol.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::cloudwatch::wire;
use crate::iam::{self, Ask, Denied};
use crate::protocol::Protocol;
use crate::{ApiError, Shared, cbor, lock, now_ms, proxy, servicequotas};

/// The service a request is for: the one it is signed for, or, unsigned, the one its target or
/// path names (it will be refused as unsigned, in that service's words).
fn service_of(signed: Option<&(String, String)>, headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some((_, service)) = signed {
        return Some(service.clone());
    }
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let by_target = [
        ("SageMaker.", "sagemaker"),
        ("GraniteServiceVersion20100801.", "monitoring"),
        ("DynamoDB_", "dynamodb"),
        ("AWSEvents.", "events"),
        ("AmazonSQS.", "sqs"),
        ("ServiceQuotasV20190624.", "servicequotas"),
        ("AmazonSSM.", "ssm"),
        ("AnyScaleFrontendService.", "application-autoscaling"),
    ];
    by_target
        .iter()
        .find(|(prefix, _)| target.starts_with(prefix))
        .map(|(_, s)| (*s).to_owned())
        .or_else(|| {
            uri.path()
                .starts_with("/service/GraniteServiceVersion20100801")
                .then(|| "monitoring".to_owned())
        })
}

/// Every AWS request the local stack receives.
pub(crate) async fn gateway(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signed = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(iam::signer);
    let key = signed.as_ref().map(|(k, _)| k.clone());
    let authorize = |asks: &[Ask]| lock(&shared.emulator).iam.authorize(key.as_deref(), asks);
    if uri.path().starts_with(crate::lambda::URL_PATH) {
        return crate::lambda::handle(&shared.functions, authorize, &uri, &body).await;
    }
    if uri.path().starts_with(crate::lambda::INVOKE_PATH) {
        let invocation_type = headers
            .get("x-amz-invocation-type")
            .and_then(|v| v.to_str().ok());
        return crate::lambda::invoke_api(
            &shared.functions,
            authorize,
            &uri,
            invocation_type,
            &body,
        )
        .await;
    }
    match service_of(signed.as_ref(), &headers, &uri).as_deref() {
        Some("sagemaker") => sagemaker(&shared, authorize, &headers, &body).await,
        Some("monitoring") => cloudwatch(&shared, authorize, &uri, &headers, &body).await,
        Some("servicequotas") => servicequotas::handle(&shared, authorize, &headers, &body),
        Some(other) => {
            let other = other.to_owned();
            // SageMaker refuses updates that remove or retype a registered variant
            // (`sagemaker::scaling`), so it learns which ones Application Auto Scaling took.
            let scaling = (other == "application-autoscaling")
                .then(|| (proxy::target_operation(&headers), proxy::json(&body)));
            let response = proxy::handle(
                &shared.forwarder,
                &other,
                (method, uri, headers, body),
                authorize,
            )
            .await;
            if let Some((operation, input)) = scaling
                && response.status() == StatusCode::OK
            {
                lock(&shared.emulator)
                    .sagemaker
                    .scaling_changed(&operation, &input);
            }
            response
        }
        None => (
            StatusCode::BAD_REQUEST,
            "the local stack cannot tell which AWS service this request is for: sign it (SigV4)",
        )
            .into_response(),
    }
}

/// The error for `denied` in a JSON or CBOR service's words (`denied` is its access-denied
/// code).
pub(crate) fn refusal(
    protocol: Protocol,
    denied: &Denied,
    denied_code: &str,
    status: StatusCode,
) -> Response {
    let (status, code) = match denied {
        Denied::Unsigned => (StatusCode::FORBIDDEN, "MissingAuthenticationTokenException"),
        Denied::UnknownKey(_) => (StatusCode::FORBIDDEN, "UnrecognizedClientException"),
        Denied::NotAuthorized { .. } => (status, denied_code),
    };
    protocol.error(status, code, &denied.message())
}

async fn sagemaker(
    shared: &Shared,
    authorize: impl FnOnce(&[Ask]) -> Result<String, Denied>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let protocol = Protocol::Json {
        version: "1.1",
        query_compatible: false,
    };
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(operation) = target.strip_prefix("SageMaker.") else {
        let message = format!("unexpected X-Amz-Target {target:?}");
        return protocol.error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &message,
        );
    };
    let input: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return protocol.error(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                &e.to_string(),
            );
        }
    };
    let asks = lock(&shared.emulator).sagemaker.asks(operation, &input);
    if let Err(denied) = authorize(&asks) {
        return refusal(
            protocol,
            &denied,
            "AccessDeniedException",
            StatusCode::BAD_REQUEST,
        );
    }
    let (result, events) = {
        let mut emulator = lock(&shared.emulator);
        if crate::throttled(&mut emulator) {
            return protocol.error(
                StatusCode::BAD_REQUEST,
                "ThrottlingException",
                "Rate exceeded",
            );
        }
        let mut events = Vec::new();
        let result = emulator
            .sagemaker
            .call(operation, &input, now_ms(), &mut events);
        emulator.events.extend(events.iter().cloned());
        (result, events)
    };
    if let (Some(publisher), false) = (&shared.publisher, events.is_empty()) {
        publisher.publish(&events).await;
    }
    match result {
        Ok(output) => json_answer(&output, "1.1"),
        Err(e) => protocol.error(e.status(), &e.code, &e.message),
    }
}

pub(crate) fn json_answer(output: &Value, version: &str) -> Response {
    let mut response = output.to_string().into_response();
    let content_type = format!("application/x-amz-json-{version}");
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type)
            .unwrap_or(HeaderValue::from_static("application/json")),
    );
    response
}

async fn cloudwatch(
    shared: &Shared,
    authorize: impl FnOnce(&[Ask]) -> Result<String, Denied>,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let mut protocol = Protocol::of(headers, uri.path());
    if let Protocol::Query { .. } = protocol {
        protocol = Protocol::Query { xmlns: wire::XMLNS };
    }
    let decoded = match protocol {
        Protocol::Cbor => {
            let operation: String = uri.path().rsplit('/').next().unwrap_or_default().to_owned();
            cbor::decode(body).map(|input| (operation, input))
        }
        Protocol::Json { .. } => {
            let operation = proxy::target_operation(headers);
            wire::from_json(body).map(|input| (operation, input))
        }
        Protocol::Query { .. } => Ok(wire::from_query(body)),
        Protocol::RestJson => Err("CloudWatch has no REST protocol".to_owned()),
    };
    let (operation, input) = match decoded {
        Ok(decoded) => decoded,
        Err(e) => return cloudwatch_error(protocol, &ApiError::new("SerializationException", e)),
    };
    if let Err(denied) = authorize(&crate::cloudwatch::iam::asks(&operation, &input)) {
        let code = match denied {
            Denied::Unsigned => "MissingAuthenticationToken",
            Denied::UnknownKey(_) => "InvalidClientTokenId",
            Denied::NotAuthorized { .. } => "AccessDenied",
        };
        return cloudwatch_error(protocol, &ApiError::new(code, denied.message()));
    }
    let (result, events) = {
        let mut emulator = lock(&shared.emulator);
        if crate::throttled(&mut emulator) {
            drop(emulator);
            return cloudwatch_error(protocol, &ApiError::new("Throttling", "Rate exceeded"));
        }
        let mut events = Vec::new();
        let result = emulator
            .cloudwatch
            .call(&operation, &input, now_ms(), &mut events);
        emulator.events.extend(events.iter().cloned());
        (result, events)
    };
    if let (Some(publisher), false) = (&shared.publisher, events.is_empty()) {
        publisher.publish(&events).await;
    }
    match result {
        Ok(output) => match protocol {
            Protocol::Cbor => crate::cbor_response(StatusCode::OK, &output),
            Protocol::Query { .. } => {
                let mut response = wire::to_query(&operation, &output).into_response();
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
                response
            }
            _ => json_answer(&wire::to_json(&output), "1.0"),
        },
        Err(e) => cloudwatch_error(protocol, &e),
    }
}

fn cloudwatch_error(protocol: Protocol, e: &ApiError) -> Response {
    match protocol {
        // The Rust SDK reads the shape id of RPC v2 CBOR errors.
        Protocol::Cbor => protocol.error(
            e.status(),
            &format!("com.amazonaws.cloudwatch#{}", e.code),
            &e.message,
        ),
        _ => protocol.error(e.status(), &e.code, &e.message),
    }
}
