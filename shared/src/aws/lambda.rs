//! Lambda's `Invoke`, for the hooks the policy names (`core::hooks`): `RequestResponse`, the
//! hook's answer in the response payload, `X-Amz-Function-Error` when its function raised.

use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::config::timeout::TimeoutConfig;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_smithy_runtime_api::client::result::SdkError;

use super::classify;
use crate::core::{HOOK_CALL_SECS, HookAnswer, HookCall};
use crate::ports::{ErrorKind, Hooks, PortError, PortResult};

const API: &str = "lambda:InvokeFunction";

/// Lambda's answers that say "not now" rather than "never" (Lambda API reference, "Invoke",
/// Errors): the function is being created or updated, or its ENIs are not ready.
const NOT_YET: [&str; 3] = [
    "ResourceConflictException",
    "ResourceNotReadyException",
    "EC2ThrottledException",
];

/// Hooks, through the SDK.
#[derive(Debug, Clone)]
pub struct LambdaHooks {
    client: Client,
}

impl LambdaHooks {
    pub fn new(client: Client) -> LambdaHooks {
        LambdaHooks { client }
    }
}

#[async_trait::async_trait]
impl Hooks for LambdaHooks {
    async fn ask(&self, call: &HookCall) -> PortResult<HookAnswer> {
        let payload = serde_json::to_vec(&call.payload)
            .map_err(|e| PortError::new(ErrorKind::Refused, e.to_string()).from_api(API))?;
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(Duration::from_secs(u64::from(HOOK_CALL_SECS)))
            .build();
        let sent = self
            .client
            .invoke()
            .function_name(&call.function_name)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(payload))
            .customize()
            .config_override(aws_sdk_lambda::Config::builder().timeout_config(timeouts))
            .send()
            .await;
        match sent {
            Ok(out) => Ok(HookAnswer::from_invocation(
                out.payload().map(Blob::as_ref).unwrap_or_default(),
                out.function_error(),
            )),
            Err(SdkError::TimeoutError(_)) => Ok(HookAnswer::no_answer()),
            Err(e) => {
                let mut error = classify("lambda:InvokeFunction", &e);
                if NOT_YET.iter().any(|code| error.message.starts_with(code)) {
                    error.kind = ErrorKind::Transient;
                }
                Err(error)
            }
        }
    }
}
