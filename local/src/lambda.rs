//! Lambda function URLs with the `AWS_IAM` auth type, as the local stack's front door for
//! Guardrails' commands: `POST <stack>/lambda-url/<function>/`, SigV4-signed for the `lambda`
//! service. As on AWS (Lambda Developer Guide, "Control access to Lambda function URLs"), the
//! caller needs both `lambda:InvokeFunctionUrl` (condition key `lambda:FunctionUrlAuthType`) and,
//! for URLs created since October 2025, `lambda:InvokeFunction` (condition key
//! `lambda:InvokedViaFunctionUrl`); a refused or unsigned request is answered `403 Forbidden`
//! and the function never runs. An authorized request reaches the function as payload format
//! 2.0 ("Invoking Lambda function URLs", "Request payload format") with the caller in
//! `requestContext.authorizer.iam`, and the function's answer goes back as the "Response payload
//! format" says: a JSON object with `statusCode` gives that status, headers and body; anything
//! else is a 200 with the returned JSON as its body; a failed invocation is a 502.
//!
//! `call` is the client side: a SigV4-signed request, as `awscurl` or a signed `requests` call
//! sends one.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::iam::{self, ACCOUNT, Ask, Denied, REGION, Resource};
use crate::wiring::Invoker;

/// Where function URLs live on the local stack.
pub const URL_PATH: &str = "/lambda-url/";

/// The functions that have a URL: those with a `FunctionUrlConfig` in `infra/template.yaml`
/// (checked by a test), by binary.
pub const FUNCTIONS_WITH_URLS: &[&str] = &["start-deployment"];

/// The local URL of function `binary` on the stack at `stack` (`http://127.0.0.1:<port>`).
pub fn url_of(stack: &str, binary: &str) -> String {
    format!("{}{URL_PATH}{binary}/", stack.trim_end_matches('/'))
}

/// The log group Lambda writes function `binary`'s output to (`/aws/lambda/<function name>`).
pub fn log_group(binary: &str) -> String {
    format!("/aws/lambda/{}-{binary}", iam::template::STACK)
}

/// What function `binary` wrote, line by line, as Lambda sends it to CloudWatch Logs: each
/// line is a log event of its log group, and CloudWatch extracts the metrics of the EMF ones.
pub fn function_output(emulator: &Mutex<crate::Emulator>, binary: &str, lines: &[String]) {
    let group = log_group(binary);
    let now = crate::now_ms();
    let mut e = crate::lock(emulator);
    for line in lines {
        e.cloudwatch.log_event(&group, line, now);
    }
}

/// The function's ARN as the template names it (`<stack>-<binary>`).
pub fn function_arn(binary: &str) -> String {
    iam::arn(
        "lambda",
        &format!("function:{}-{binary}", iam::template::STACK),
    )
}

/// Where the stack hands authorized requests: set once the functions run.
#[derive(Clone, Default)]
pub struct Functions(Arc<Mutex<Option<Arc<dyn Invoker>>>>);

impl std::fmt::Debug for Functions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Functions")
    }
}

impl Functions {
    pub fn set(&self, functions: Arc<dyn Invoker>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(functions);
    }

    fn get(&self) -> Option<Arc<dyn Invoker>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The request as the function receives it (payload format 2.0), from `caller`.
pub fn url_request(caller: &str, request_id: &str, body: &str, now_ms: i64) -> Value {
    let url_id = "local";
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": { "content-type": "application/json" },
        "requestContext": {
            // The function's account (AWS's IAM-auth sample); "anonymous" is for NONE auth.
            "accountId": ACCOUNT,
            "apiId": url_id,
            "authorizer": { "iam": {
                "accessKey": "local",
                "accountId": ACCOUNT,
                "callerId": "local",
                "cognitoIdentity": null,
                "principalOrgId": null,
                "userArn": caller,
                "userId": "local",
            }},
            "domainName": format!("{url_id}.lambda-url.{REGION}.on.aws"),
            "domainPrefix": url_id,
            "http": {
                "method": "POST", "path": "/", "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1", "userAgent": "guardrails-local",
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": crate::iso8601(now_ms),
            "timeEpoch": now_ms,
        },
        "body": body,
        "isBase64Encoded": false,
    })
}

/// What a function URL answers a request IAM refuses or that is unsigned: 403 and this body
/// (Lambda Developer Guide, "Invoking Lambda function URLs": the caller lacks
/// `lambda:InvokeFunctionUrl`). A URL that does not exist is a 404 (not documented further:
/// the function is never invoked).
fn forbidden() -> Response {
    let mut response = (StatusCode::FORBIDDEN, r#"{"Message":"Forbidden"}"#).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A request to a function URL.
pub(crate) async fn handle(
    functions: &Functions,
    authorize: impl FnOnce(&[Ask]) -> Result<String, Denied>,
    uri: &Uri,
    body: &Bytes,
) -> Response {
    let binary = uri
        .path()
        .strip_prefix(URL_PATH)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    if !FUNCTIONS_WITH_URLS.contains(&binary) {
        return (StatusCode::NOT_FOUND, r#"{"Message":null}"#).into_response();
    }
    let function = Resource::new("lambda:function", function_arn(binary));
    let asks = [
        Ask::new("lambda:InvokeFunctionUrl", vec![function.clone()])
            .with("lambda:FunctionUrlAuthType", vec!["AWS_IAM".to_owned()]),
        Ask::new("lambda:InvokeFunction", vec![function])
            .with("lambda:InvokedViaFunctionUrl", vec!["true".to_owned()]),
    ];
    let caller = match authorize(&asks) {
        Ok(caller) => caller,
        Err(_) => return forbidden(),
    };
    let Some(invoker) = functions.get() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"Message":"the local stack runs no functions (guardrails-local up --lambda)"}"#,
        )
            .into_response();
    };
    let now = crate::now_ms();
    let request_id = crate::protocol::request_id();
    let text = String::from_utf8_lossy(body);
    let event = url_request(&caller, &request_id, &text, now);
    match invoker.invoke(binary, &event.to_string()).await {
        Ok((200..=299, answer)) => response_of(&answer),
        Ok((status, answer)) => {
            eprintln!("guardrails-local: {binary} (function URL) answered {status}: {answer}");
            (
                StatusCode::BAD_GATEWAY,
                r#"{"Message":"Internal Server Error"}"#,
            )
                .into_response()
        }
        Err(e) => {
            eprintln!("guardrails-local: {e}");
            (
                StatusCode::BAD_GATEWAY,
                r#"{"Message":"Internal Server Error"}"#,
            )
                .into_response()
        }
    }
}

/// Where Lambda's Invoke API lives (API reference, "Invoke": `POST
/// /2015-03-31/functions/FunctionName/invocations`).
pub const INVOKE_PATH: &str = "/2015-03-31/functions/";

/// The functions of the template, by binary (the sample hook, `guardrails-hook-green-ready`,
/// is deployed on the local stack).
const FUNCTIONS: [&str; 5] = [
    "start-deployment",
    "endpoint-events",
    "bake-watcher",
    "rollback-notifier",
    "hook-green-ready",
];

/// The binary `FunctionName` names: a name (`guardrails-bake-watcher`), a partial ARN
/// (`123456789012:function:guardrails-bake-watcher`) or an ARN, with or without the `$LATEST`
/// qualifier (API reference, "Invoke", `FunctionName`).
fn binary_named(function_name: &str) -> Option<&'static str> {
    let name = function_name
        .strip_suffix(":$LATEST")
        .unwrap_or(function_name);
    let name = name.rsplit(":function:").next().unwrap_or(name);
    let binary = name.strip_prefix(&format!("{}-", iam::template::STACK))?;
    FUNCTIONS.iter().copied().find(|f| *f == binary)
}

/// Lambda's REST-JSON error, as Lambda sends it: the code in `x-amzn-ErrorType`, the body
/// `{"Type": "User", "Message": ...}` (API reference, "Invoke", Errors; botocore reads the
/// message from `Message` or `message`).
fn lambda_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "Type": "User", "Message": message }).to_string();
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(code) = HeaderValue::from_str(code) {
        h.insert("x-amzn-errortype", code);
    }
    response
}

/// Lambda's Invoke API, for the functions of the template: IAM asks `lambda:InvokeFunction` on
/// the function (without `lambda:InvokedViaFunctionUrl`, so the operator's URL-only grant does
/// not allow it). `RequestResponse` (the default) answers 200 with what the function returned,
/// with `X-Amz-Function-Error: Unhandled` when it failed; `Event` answers 202 (on AWS the
/// function runs later; here it has run, once, when the answer comes: the retries and the
/// on-failure destination of asynchronous invocations are the router's, `wiring::route`);
/// `DryRun` answers 204 without running it.
pub(crate) async fn invoke_api(
    functions: &Functions,
    authorize: impl FnOnce(&[Ask]) -> Result<String, Denied>,
    uri: &Uri,
    invocation_type: Option<&str>,
    body: &Bytes,
) -> Response {
    let name = uri
        .path()
        .strip_prefix(INVOKE_PATH)
        .and_then(|rest| rest.strip_suffix("/invocations"))
        .map(percent_decoded)
        .unwrap_or_default();
    let Some(binary) = binary_named(&name) else {
        return lambda_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!(
                "Function not found: {}",
                iam::arn("lambda", &format!("function:{name}"))
            ),
        );
    };
    let function = Resource::new("lambda:function", function_arn(binary));
    if let Err(denied) = authorize(&[Ask::new("lambda:InvokeFunction", vec![function])]) {
        return lambda_error(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            &denied.message(),
        );
    }
    let event = match invocation_type.unwrap_or("RequestResponse") {
        "DryRun" => return StatusCode::NO_CONTENT.into_response(),
        "Event" => true,
        "RequestResponse" => false,
        other => {
            return lambda_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                &format!("Unsupported InvocationType: {other}"),
            );
        }
    };
    let Some(invoker) = functions.get() else {
        return lambda_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceException",
            "the local stack runs no functions (guardrails-local up --lambda)",
        );
    };
    let payload = String::from_utf8_lossy(body);
    let (failed, answer) = match invoker.invoke(binary, &payload).await {
        Ok((200..=299, answer)) => (false, answer),
        Ok((_, answer)) => (
            true,
            json!({ "errorType": "Unhandled", "errorMessage": answer }).to_string(),
        ),
        Err(e) => (
            true,
            json!({ "errorType": "Unhandled", "errorMessage": e }).to_string(),
        ),
    };
    let mut response = if event {
        StatusCode::ACCEPTED.into_response()
    } else {
        (StatusCode::OK, answer).into_response()
    };
    let h = response.headers_mut();
    h.insert(
        "x-amz-executed-version",
        HeaderValue::from_static("$LATEST"),
    );
    if failed && !event {
        h.insert(
            "x-amz-function-error",
            HeaderValue::from_static("Unhandled"),
        );
    }
    response
}

/// `%3A` and the like in a path segment, decoded (a function ARN's colons).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The HTTP response for what the function returned.
fn response_of(answer: &str) -> Response {
    let value: Value = serde_json::from_str(answer).unwrap_or(Value::Null);
    let shaped = value.get("statusCode").and_then(Value::as_u64);
    let (status, headers, body) = match shaped {
        Some(status) => (
            u16::try_from(status).unwrap_or(500),
            value.get("headers").cloned().unwrap_or_default(),
            value
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ),
        None => (
            200,
            json!({ "content-type": "application/json" }),
            answer.to_owned(),
        ),
    };
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
        .into_response();
    if let Some(map) = headers.as_object() {
        for (name, value) in map {
            if let (Ok(name), Some(Ok(value))) = (
                header::HeaderName::from_bytes(name.as_bytes()),
                value.as_str().map(HeaderValue::from_str),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}

/// POSTs `body` to the function URL `url`, signed with SigV4 for `lambda` as the holder of
/// `access_key`; returns the status and the body.
pub async fn call(
    url: &str,
    access_key: &str,
    secret_key: &str,
    body: &str,
) -> Result<(u16, String), String> {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_smithy_runtime_api::client::identity::Identity;
    let identity: Identity = Credentials::new(access_key, secret_key, None, None, "local").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("lambda")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("signing: {e}"))?
        .into();
    let uri: Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let host = uri.authority().map(ToString::to_string).unwrap_or_default();
    let base = format!("http://{host}");
    let path = uri.path().to_owned();
    let unsigned = [
        ("host", host.as_str()),
        ("content-type", "application/json"),
    ];
    let signable = SignableRequest::new(
        "POST",
        url,
        unsigned.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| format!("signing: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("signing: {e}"))?
        .into_parts();
    let headers: Vec<(String, String)> = instructions
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    crate::wiring::send("POST", &base, &path, &headers, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_shaped_as_the_response_payload_format_says() {
        let shaped = response_of(
            r#"{"statusCode":409,"headers":{"content-type":"application/json"},"body":"{}"}"#,
        );
        assert_eq!(shaped.status(), StatusCode::CONFLICT);
        let bare = response_of(r#"{"handled":"ignored"}"#);
        assert_eq!(bare.status(), StatusCode::OK);
    }

    #[test]
    fn the_request_names_the_caller_where_lambda_does() {
        let arn = "arn:aws:sts::123456789012:assumed-role/ml-release/alice";
        let request = url_request(arn, "r-1", "{}", 0);
        assert_eq!(
            request["requestContext"]["authorizer"]["iam"]["userArn"],
            arn
        );
        let typed: aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest =
            serde_json::from_value(request).unwrap_or_default();
        assert_eq!(typed.request_context.request_id.as_deref(), Some("r-1"));
    }
}
