//! `guardrails-hook-green-ready`: the sample hook's function. Builds its SageMaker client once,
//! then answers each call (`hook_green_ready::check`).

use hook_green_ready::{Answer, Payload, check};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_sagemaker::Client::new(&sdk);
    let client = &client;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Payload>| async move {
        Ok::<Answer, Error>(check(client, &event.payload).await)
    }))
    .await
}
