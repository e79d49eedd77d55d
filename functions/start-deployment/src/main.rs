//! `start-deployment`: Deployment requests and approved model packages -> a new deployment (or a published refusal).
//! Builds the clients once, then hands each event to `guardrails::handlers`.

use guardrails::handlers::start_deployment;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    guardrails::aws::wiring::init_logging();
    let driver = guardrails::aws::wiring::driver().await?;
    let settings = guardrails::aws::wiring::settings().await?;
    let driver = &driver;
    let settings = &settings;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let handled = start_deployment(driver, settings, &event.payload).await?;
        Ok::<Value, Error>(serde_json::to_value(handled)?)
    }))
    .await
}
