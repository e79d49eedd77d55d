//! How AWS's protocols carry an answer and an error, for the services the local stack answers
//! itself or refuses in front of moto (the Smithy protocol specifications and botocore's
//! parsers: `awsJson1_0`/`awsJson1_1` read `__type` or `x-amzn-ErrorType`, the query protocol
//! reads `<ErrorResponse><Error><Code>`, `restJson1` reads `x-amzn-ErrorType`, RPC v2 CBOR reads
//! `__type`; services marked `awsQueryCompatible`, like CloudWatch, also send
//! `x-amzn-query-error: <Code>;Sender` for clients that map codes the query way).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::cbor;

/// The wire protocol of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `X-Amz-Target: <prefix>.<Operation>`, `application/x-amz-json-<version>`.
    Json {
        version: &'static str,
        query_compatible: bool,
    },
    /// Smithy RPC v2 CBOR (`/service/<service>/operation/<Operation>`).
    Cbor,
    /// A form-encoded `Action=<Operation>` body with an XML answer.
    Query { xmlns: &'static str },
    /// REST with JSON bodies (EventBridge Scheduler).
    RestJson,
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// XML text with its five special characters escaped.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A request id in AWS's shape.
pub fn request_id() -> String {
    let n = crate::now_ms();
    format!("{:08x}-0000-4000-8000-{:012x}", n & 0xffff_ffff, n)
}

impl Protocol {
    /// The protocol of a request, from its headers and path.
    pub fn of(headers: &HeaderMap, path: &str) -> Protocol {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        if path.starts_with("/service/") || get("smithy-protocol") == "rpc-v2-cbor" {
            return Protocol::Cbor;
        }
        let content_type = get("content-type");
        if !get("x-amz-target").is_empty() {
            let version = if content_type.contains("1.1") {
                "1.1"
            } else {
                "1.0"
            };
            let query_compatible = get("x-amzn-query-mode") == "true"
                || get("x-amz-target").starts_with("GraniteServiceVersion20100801.");
            return Protocol::Json {
                version,
                query_compatible,
            };
        }
        if content_type.starts_with("application/x-www-form-urlencoded") {
            return Protocol::Query { xmlns: "" };
        }
        Protocol::RestJson
    }

    /// An error answer: `code` as the service names it, AWS's `message`.
    pub fn error(&self, status: StatusCode, code: &str, message: &str) -> Response {
        match self {
            Protocol::Json {
                version,
                query_compatible,
            } => {
                let body = json!({ "__type": code, "message": message }).to_string();
                let mut response = (status, body).into_response();
                let h = response.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    header_value(&format!("application/x-amz-json-{version}")),
                );
                h.insert("x-amzn-errortype", header_value(code));
                if *query_compatible {
                    h.insert(
                        "x-amzn-query-error",
                        header_value(&format!("{code};Sender")),
                    );
                }
                response
            }
            Protocol::Cbor => {
                let body = cbor::map(vec![
                    ("__type", cbor::text(code)),
                    ("message", cbor::text(message)),
                ]);
                let mut response = (status, cbor::encode(&body)).into_response();
                let h = response.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/cbor"),
                );
                h.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
                let plain = code.rsplit('#').next().unwrap_or(code);
                h.insert(
                    "x-amzn-query-error",
                    header_value(&format!("{plain};Sender")),
                );
                response
            }
            Protocol::Query { xmlns } => {
                let ns = if xmlns.is_empty() {
                    String::new()
                } else {
                    format!(" xmlns=\"{xmlns}\"")
                };
                let body = format!(
                    "<ErrorResponse{ns}><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
                    xml_escape(code),
                    xml_escape(message),
                    request_id()
                );
                let mut response = (status, body).into_response();
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
                response
            }
            Protocol::RestJson => {
                let body = json!({ "Message": message }).to_string();
                let mut response = (status, body).into_response();
                let h = response.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                h.insert("x-amzn-errortype", header_value(code));
                response
            }
        }
    }
}
