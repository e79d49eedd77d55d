//! `rollback-notifier`: our "Guardrails Deployment State Change" events for rollbacks and
//! failures (successes too if configured) -> exactly one SNS page per outcome, recorded in the
//! store. Builds the clients once, then hands each event to `guardrails::handlers`.

use guardrails::aws::clock::SystemClock;
use guardrails::handlers::rollback_notifier;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    guardrails::aws::wiring::init_logging();
    // One configuration (credentials, HTTPS client) for every client.
    let sdk = guardrails::aws::http::sdk_config().await;
    let names = guardrails::aws::wiring::Names::from_env();
    let settings = guardrails::aws::wiring::settings_with(&sdk)?;
    let store = guardrails::aws::wiring::store_with(&sdk, &names);
    let pager = guardrails::aws::wiring::pager_with(&sdk, &names)?;
    let (settings, store, pager) = (&settings, &store, &pager);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let result = rollback_notifier(store, pager, &SystemClock, settings, &event.payload).await;
        guardrails::aws::wiring::emit(
            "rollback-notifier",
            &SystemClock,
            &guardrails::handlers::measures_of(result.as_ref()),
        );
        let handled = result?;
        Ok::<Value, Error>(serde_json::to_value(handled)?)
    }))
    .await
}
