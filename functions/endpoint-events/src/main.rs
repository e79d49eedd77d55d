//! `endpoint-events`: SageMaker endpoint (deployment) state changes -> reconcile that endpoint.
//! Builds the clients once, then hands each event to `guardrails::handlers`.

use guardrails::handlers::endpoint_events;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    guardrails::aws::wiring::init_logging();
    let driver = guardrails::aws::wiring::driver().await?;
    let settings = guardrails::aws::wiring::event_settings()?;
    let (driver, settings) = (&driver, &settings);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let result = endpoint_events(driver, settings, &event.payload).await;
        guardrails::aws::wiring::emit(
            "endpoint-events",
            driver.clock.as_ref(),
            &guardrails::handlers::measures_of(result.as_ref()),
        );
        let handled = result?;
        Ok::<Value, Error>(serde_json::to_value(handled)?)
    }))
    .await
}
