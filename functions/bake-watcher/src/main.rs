//! `bake-watcher`: Alarm state changes, one-shot wake-ups, approvals and aborts, and the one-minute sweep -> reconcile.
//! Builds the clients once, then hands each event to `guardrails::handlers`.

use guardrails::handlers::bake_watcher;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    guardrails::aws::wiring::init_logging();
    let driver = guardrails::aws::wiring::driver().await?;
    let settings = guardrails::aws::wiring::event_settings()?;
    let (driver, settings) = (&driver, &settings);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let result = bake_watcher(driver, settings, &event.payload).await;
        guardrails::aws::wiring::emit(
            "bake-watcher",
            driver.clock.as_ref(),
            &guardrails::handlers::measures_of(result.as_ref()),
        );
        let handled = result?;
        Ok::<Value, Error>(serde_json::to_value(handled)?)
    }))
    .await
}
