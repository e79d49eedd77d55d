//! The ports on the AWS SDK: one module per service. Conversions between SDK types and ours
//! live here and nowhere else. Clients come from `aws_config`'s defaults (on `http`'s client), so endpoints,
//! region and credentials come from the environment (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_SAGEMAKER`, ... on the local stack): there is no test-only branch.

pub mod autoscaling;
pub mod clock;
pub mod cloudwatch;
pub mod dynamodb;
pub mod endpoint_config;
pub mod eventbridge;
pub mod http;
pub mod lambda;
pub mod sagemaker;
pub mod scheduler;
pub mod sns;
pub mod ssm;
pub mod wiring;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::ports::{ErrorKind, PortError};

/// Error codes that mean "slow down": back off and try again.
const THROTTLING: [&str; 7] = [
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottledException",
];

/// Error codes of AWS's own trouble, worth trying again later (besides any 5xx status).
const TRANSIENT: [&str; 5] = [
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ExpiredTokenException",
];

/// Classifies an SDK error of the call `api` (IAM's name for it, `sagemaker:UpdateEndpoint`)
/// by what the caller should do about it: back off (throttled), wait for the endpoint (in
/// progress), reload (conflict), try again later (5xx, network, timeouts), or stop trying
/// (refused: every other answer of the service, such as access denied, a validation error or
/// a quota of zero, which no retry can change).
pub(crate) fn classify<E>(api: &str, error: &SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = error.code().unwrap_or_default();
    let message = error.message().unwrap_or_default().to_owned();
    let kind = match (error, code) {
        (_, code) if THROTTLING.contains(&code) => ErrorKind::Throttled,
        (_, "ValidationException") if message.contains("Cannot update in-progress") => {
            ErrorKind::InProgress
        }
        (_, "ConditionalCheckFailedException" | "TransactionCanceledException") => {
            ErrorKind::Conflict
        }
        (_, code) if TRANSIENT.contains(&code) => ErrorKind::Transient,
        (SdkError::ServiceError(e), _) if e.raw().status().is_server_error() => {
            ErrorKind::Transient
        }
        (SdkError::ServiceError(_), _) => ErrorKind::Refused,
        (SdkError::ResponseError(e), _) if e.raw().status().is_server_error() => {
            ErrorKind::Transient
        }
        // A response that could not be read: the same call would give the same answer.
        (SdkError::ResponseError(_), _) => ErrorKind::Refused,
        // Not sent, timed out, or the connection broke: may pass.
        _ => ErrorKind::Transient,
    };
    let message = if message.is_empty() {
        format!(
            "{}",
            aws_smithy_types::error::display::DisplayErrorContext(error)
        )
    } else {
        format!("{code}: {message}")
    };
    PortError::new(kind, message).from_api(api)
}
