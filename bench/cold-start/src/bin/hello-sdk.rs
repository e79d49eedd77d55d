//! The SDK's defaults: `aws_config::load_defaults` and the clients a Guardrails function
//! builds, before answering its event (what the functions did before their trust roots were
//! compiled in).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let clients = (
        aws_sdk_sagemaker::Client::new(&sdk),
        aws_sdk_cloudwatch::Client::new(&sdk),
        aws_sdk_dynamodb::Client::new(&sdk),
        aws_sdk_eventbridge::Client::new(&sdk),
        aws_sdk_scheduler::Client::new(&sdk),
        aws_sdk_sns::Client::new(&sdk),
    );
    let clients = &clients;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let _ = clients;
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
