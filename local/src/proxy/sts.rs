//! STS's GetCallerIdentity (the query protocol), answered with the caller the local IAM knows:
//! the local administrator, or a function's assumed role. It needs no permission (STS API
//! reference: "No permissions are required to perform this operation").

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::form;
use crate::iam::{ACCOUNT, Denied};
use crate::protocol::{Protocol, request_id, xml_escape};

const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

pub(super) fn answer(body: &Bytes, caller: Result<String, Denied>) -> Response {
    let protocol = Protocol::Query { xmlns: XMLNS };
    let op = form(body).get("Action").cloned().unwrap_or_default();
    let arn = match caller {
        Ok(arn) => arn,
        Err(Denied::Unsigned) => {
            return protocol.error(
                StatusCode::FORBIDDEN,
                "MissingAuthenticationToken",
                &Denied::Unsigned.message(),
            );
        }
        Err(denied) => {
            return protocol.error(
                StatusCode::FORBIDDEN,
                "InvalidClientTokenId",
                &denied.message(),
            );
        }
    };
    if op != "GetCallerIdentity" {
        let message = format!("the local STS answers GetCallerIdentity only, not {op}");
        return protocol.error(StatusCode::BAD_REQUEST, "InvalidAction", &message);
    }
    let body = format!(
        "<GetCallerIdentityResponse xmlns=\"{XMLNS}\"><GetCallerIdentityResult><Arn>{}</Arn><UserId>LOCAL</UserId><Account>{ACCOUNT}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
        xml_escape(&arn),
        request_id()
    );
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}
