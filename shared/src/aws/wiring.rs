//! What every function builds once at start-up: the SDK clients from the environment, the
//! driver on them, the settings, and JSON logs. Configuration comes from environment variables
//! (the SAM template sets them; `guardrails-local up` prints the endpoint ones):
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `GUARDRAILS_TABLE` | the DynamoDB table | `guardrails` |
//! | `GUARDRAILS_EVENT_BUS` | where our events go | `default` |
//! | `GUARDRAILS_SCHEDULE_GROUP` | the Scheduler group of wake-ups | `default` |
//! | `GUARDRAILS_WAKE_TARGET_ARN` | what a wake-up invokes (bake-watcher) | required by functions that schedule |
//! | `GUARDRAILS_SCHEDULER_ROLE_ARN` | the role Scheduler assumes to invoke it | required likewise |
//! | `GUARDRAILS_PACKAGE_TARGETS_PATH` | Parameter Store path of the package targets (`<path><group>`: `{endpointName, policy, ...}`) | `/guardrails/package-targets/` |
//! | `GUARDRAILS_MODEL_ROLE_ARN` | execution role of models created from packages | none |
//! | `GUARDRAILS_TOPIC_ARN` | the SNS topic pages go to (rollback-notifier) | required there |
//! | `GUARDRAILS_NOTIFY_SUCCESSES` | `true` to page on successes too | `false` |
//! | `GUARDRAILS_ACCOUNT_ID` | this stack's account: events from others are refused | required |
//! | `GUARDRAILS_DEPLOY_PRINCIPALS`, `..._APPROVE_...`, `..._ABORT_...`, `..._READ_...` | who may send each command, and read deployments (comma-separated IAM ARN patterns; `access`) | nobody |

use std::sync::Arc;

use aws_config::SdkConfig;

use super::clock::SystemClock;
use super::cloudwatch::CloudWatchAlarms;
use super::dynamodb::DynamoStore;
use super::eventbridge::EventBridgeBus;
use super::sagemaker::SageMakerEndpoints;
use super::scheduler::SchedulerWaker;
use super::ssm::ParameterTargets;
use crate::driver::{Driver, Limits};
use crate::handlers::Settings;

/// A configuration problem found at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn var_or(name: &str, default: &str) -> String {
    var(name).unwrap_or_else(|| default.to_owned())
}

/// JSON log lines (one per decision), level from `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .try_init();
}

/// Writes what one invocation counts as EMF lines on stdout, which Lambda sends to CloudWatch
/// Logs, where they become metrics (`crate::metrics`).
pub fn emit(function: &str, clock: &dyn crate::ports::Clock, measures: &[crate::metrics::Measure]) {
    use std::io::Write;
    if measures.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    for line in crate::metrics::lines(function, measures, clock.now().epoch_ms()) {
        let _ = writeln!(out, "{line}");
    }
}

/// Where the package targets are in Parameter Store, unless `GUARDRAILS_PACKAGE_TARGETS_PATH`
/// says otherwise.
pub const PACKAGE_TARGETS_PATH: &str = "/guardrails/package-targets/";

/// The settings from the environment.
pub async fn settings() -> Result<Settings, ConfigError> {
    let sdk = super::http::sdk_config().await;
    settings_with(&sdk)
}

/// The settings from the environment, with clients of `sdk`.
pub fn settings_with(sdk: &SdkConfig) -> Result<Settings, ConfigError> {
    if var("GUARDRAILS_PACKAGE_TARGETS").is_some() {
        return Err(ConfigError(
            "GUARDRAILS_PACKAGE_TARGETS is no longer read: put each target in Parameter Store \
             under GUARDRAILS_PACKAGE_TARGETS_PATH (README, \"Model packages\")"
                .to_owned(),
        ));
    }
    let path = var_or("GUARDRAILS_PACKAGE_TARGETS_PATH", PACKAGE_TARGETS_PATH);
    Ok(Settings {
        package_targets: Arc::new(ParameterTargets::new(aws_sdk_ssm::Client::new(sdk), &path)),
        model_role_arn: var("GUARDRAILS_MODEL_ROLE_ARN"),
        notify_successes: var("GUARDRAILS_NOTIFY_SUCCESSES").is_some_and(|v| v == "true"),
        ..event_settings()?
    })
}

/// The settings every function needs to read events and commands (no clients): the account,
/// who may send commands, the table's name.
pub fn event_settings() -> Result<Settings, ConfigError> {
    event_settings_from(var)
}

/// `event_settings` with each variable read by `var` (the tests give the local stack's).
pub fn event_settings_from(var: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let account = var("GUARDRAILS_ACCOUNT_ID").ok_or_else(|| {
        ConfigError(
            "GUARDRAILS_ACCOUNT_ID is not set: events are read only from this stack's account"
                .to_owned(),
        )
    })?;
    let list = |name: &str| crate::access::patterns(&var(name).unwrap_or_default());
    Ok(Settings {
        table: var("GUARDRAILS_TABLE").unwrap_or_else(|| "guardrails".to_owned()),
        account: Some(account),
        principals: crate::access::Principals {
            deploy: list("GUARDRAILS_DEPLOY_PRINCIPALS"),
            approve: list("GUARDRAILS_APPROVE_PRINCIPALS"),
            abort: list("GUARDRAILS_ABORT_PRINCIPALS"),
            read: list("GUARDRAILS_READ_PRINCIPALS"),
        },
        ..Settings::default()
    })
}

/// What the functions read from their environment besides the SDK's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub table: String,
    pub event_bus: String,
    pub schedule_group: String,
    pub wake_target_arn: Option<String>,
    pub scheduler_role_arn: Option<String>,
    pub topic_arn: Option<String>,
}

impl Names {
    /// From `GUARDRAILS_*` (the SAM template sets them; `guardrails-local up` writes them).
    pub fn from_env() -> Names {
        Names {
            table: var_or("GUARDRAILS_TABLE", "guardrails"),
            event_bus: var_or("GUARDRAILS_EVENT_BUS", "default"),
            schedule_group: var_or("GUARDRAILS_SCHEDULE_GROUP", "default"),
            wake_target_arn: var("GUARDRAILS_WAKE_TARGET_ARN"),
            scheduler_role_arn: var("GUARDRAILS_SCHEDULER_ROLE_ARN"),
            topic_arn: var("GUARDRAILS_TOPIC_ARN"),
        }
    }
}

/// The driver on the AWS SDK, configured from the environment.
pub async fn driver() -> Result<Driver, ConfigError> {
    let sdk = super::http::sdk_config().await;
    driver_with(&sdk, &Names::from_env())
}

/// The driver on clients of `sdk`, with `names`.
pub fn driver_with(sdk: &SdkConfig, names: &Names) -> Result<Driver, ConfigError> {
    let wake_target = names
        .wake_target_arn
        .clone()
        .ok_or_else(|| ConfigError("GUARDRAILS_WAKE_TARGET_ARN is not set".to_owned()))?;
    let scheduler_role = names
        .scheduler_role_arn
        .clone()
        .ok_or_else(|| ConfigError("GUARDRAILS_SCHEDULER_ROLE_ARN is not set".to_owned()))?;
    let cloudwatch = aws_sdk_cloudwatch::Client::new(sdk);
    Ok(Driver {
        endpoints: Arc::new(
            SageMakerEndpoints::new(aws_sdk_sagemaker::Client::new(sdk))
                .with_quotas(aws_sdk_servicequotas::Client::new(sdk))
                .with_scaling(aws_sdk_applicationautoscaling::Client::new(sdk)),
        ),
        alarms: Arc::new(CloudWatchAlarms::new(cloudwatch.clone())),
        metrics: Arc::new(CloudWatchAlarms::new(cloudwatch)),
        hooks: Arc::new(super::lambda::LambdaHooks::new(
            aws_sdk_lambda::Client::new(sdk),
        )),
        store: Arc::new(store_with(sdk, names)),
        bus: Arc::new(EventBridgeBus::new(
            aws_sdk_eventbridge::Client::new(sdk),
            names.event_bus.clone(),
        )),
        waker: Arc::new(SchedulerWaker::new(
            aws_sdk_scheduler::Client::new(sdk),
            &names.schedule_group,
            &wake_target,
            &scheduler_role,
        )),
        clock: Arc::new(SystemClock),
        limits: Limits::default(),
    })
}

/// The SNS topic pages go to.
pub async fn pager() -> Result<super::sns::SnsTopic, ConfigError> {
    let sdk = super::http::sdk_config().await;
    pager_with(&sdk, &Names::from_env())
}

/// The pages topic on clients of `sdk`.
pub fn pager_with(sdk: &SdkConfig, names: &Names) -> Result<super::sns::SnsTopic, ConfigError> {
    let topic = names
        .topic_arn
        .clone()
        .ok_or_else(|| ConfigError("GUARDRAILS_TOPIC_ARN is not set".to_owned()))?;
    Ok(super::sns::SnsTopic::new(
        aws_sdk_sns::Client::new(sdk),
        topic,
    ))
}

/// The deployments table alone (the notifier reads the audit trail and records its pages).
pub async fn store() -> DynamoStore {
    let sdk = super::http::sdk_config().await;
    store_with(&sdk, &Names::from_env())
}

/// The deployments table on clients of `sdk`.
pub fn store_with(sdk: &SdkConfig, names: &Names) -> DynamoStore {
    DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), names.table.clone())
}
