//! The ports on the AWS SDK: one module per service. Conversions between SDK types and ours
//! live here and nowhere else. Clients come from `aws_config::load_defaults`, so endpoints,
//! region and credentials come from the environment (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_SAGEMAKER`, ... on the local stack): there is no test-only branch.

pub mod clock;
pub mod cloudwatch;
pub mod dynamodb;
pub mod eventbridge;
pub mod sagemaker;
pub mod scheduler;
pub mod sns;
pub mod wiring;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::ports::{ErrorKind, PortError};

/// Classifies an SDK error by what the caller should do about it.
pub(crate) fn classify<E>(error: &SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = error.code().unwrap_or_default();
    let message = error.message().unwrap_or_default().to_owned();
    let kind = match (error, code) {
        (
            _,
            "ThrottlingException"
            | "Throttling"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException",
        ) => ErrorKind::Throttled,
        (_, "ValidationException") if message.contains("Cannot update in-progress") => {
            ErrorKind::InProgress
        }
        (_, "ConditionalCheckFailedException" | "TransactionCanceledException") => {
            ErrorKind::Conflict
        }
        (SdkError::ServiceError(e), _) if e.raw().status().is_server_error() => {
            ErrorKind::Transient
        }
        (SdkError::ServiceError(_), _) => ErrorKind::Invalid,
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
    PortError::new(kind, message)
}
