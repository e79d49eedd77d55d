//! `start-deployment`: commands signed by their sender (deploy, approve, abort) through the
//! function URL, and approved model packages from EventBridge -> a deployment moved on, or a
//! refusal answered and published. Builds the clients once, then hands each invocation to
//! `guardrails::handlers`.

use guardrails::aws::wiring::emit;
use guardrails::handlers::{command, measures_of, start_deployment};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    guardrails::aws::wiring::init_logging();
    // One configuration (credentials, HTTPS client) for every client.
    let sdk = guardrails::aws::http::sdk_config().await;
    let names = guardrails::aws::wiring::Names::from_env();
    let driver = guardrails::aws::wiring::driver_with(&sdk, &names)?;
    let settings = guardrails::aws::wiring::settings_with(&sdk)?;
    let driver = &driver;
    let settings = &settings;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // A function URL invocation carries `requestContext`; an EventBridge event does not.
        if event.payload.get("requestContext").is_some() {
            let result = command(driver, settings, &event.payload).await;
            let measures = measures_of(result.as_ref().map(|a| &a.handled));
            emit("start-deployment", driver.clock.as_ref(), &measures);
            return Ok::<Value, Error>(serde_json::to_value(result?)?);
        }
        let result = start_deployment(driver, settings, &event.payload).await;
        emit(
            "start-deployment",
            driver.clock.as_ref(),
            &measures_of(result.as_ref()),
        );
        let handled = result?;
        Ok::<Value, Error>(serde_json::to_value(handled)?)
    }))
    .await
}
