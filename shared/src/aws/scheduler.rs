//! `Waker` on EventBridge Scheduler: one one-shot schedule per endpoint, replaced by each new
//! wake-up and deleted by Scheduler once it has fired. Its target (the bake-watcher function on
//! AWS, an SQS queue on the local stack) receives `{"endpoint": ..., "deploymentId": ...}`.

use async_trait::async_trait;
use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, Target,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::classify;
use crate::ports::{ErrorKind, PortError, PortResult, Waker};
use crate::units::Timestamp;

/// Schedule names are at most 64 characters.
const MAX_NAME_CHARS: usize = 64;

/// Where wake-ups go.
#[derive(Debug, Clone)]
pub struct SchedulerWaker {
    client: Client,
    group: String,
    target_arn: String,
    role_arn: String,
}

impl SchedulerWaker {
    pub fn new(client: Client, group: &str, target_arn: &str, role_arn: &str) -> SchedulerWaker {
        SchedulerWaker {
            client,
            group: group.to_owned(),
            target_arn: target_arn.to_owned(),
            role_arn: role_arn.to_owned(),
        }
    }
}

/// `guardrails-<endpoint>`, cut to 64 characters (endpoint names are unique per account and
/// region, and their first 53 characters almost always are).
pub fn schedule_name(endpoint: &str) -> String {
    let mut name = format!("guardrails-{endpoint}");
    name.truncate(MAX_NAME_CHARS);
    name
}

/// `at(2026-11-27T08:52:00)`, Scheduler's one-time expression (UTC, whole seconds, rounded up
/// so that the wake-up is never early).
pub fn at_expression(at: Timestamp) -> String {
    let up = if at.epoch_ms().rem_euclid(1_000) > 0 {
        1
    } else {
        0
    };
    let t = at.plus_secs(up).utc();
    format!(
        "at({:04}-{:02}-{:02}T{:02}:{:02}:{:02})",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[async_trait]
impl Waker for SchedulerWaker {
    async fn wake_at(
        &self,
        endpoint: &str,
        deployment_id: &str,
        at: Timestamp,
        replace: bool,
    ) -> PortResult<()> {
        let name = schedule_name(endpoint);
        let input =
            serde_json::json!({ "endpoint": endpoint, "deploymentId": deployment_id }).to_string();
        let target = Target::builder()
            .arn(&self.target_arn)
            .role_arn(&self.role_arn)
            .input(input)
            .build()
            .map_err(|e| PortError::new(ErrorKind::Refused, e.to_string()))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| PortError::new(ErrorKind::Refused, e.to_string()))?;
        let expression = at_expression(at);
        let create = || {
            self.client
                .create_schedule()
                .name(&name)
                .group_name(&self.group)
                .schedule_expression(&expression)
                .flexible_time_window(window.clone())
                .target(target.clone())
                .action_after_completion(ActionAfterCompletion::Delete)
                .send()
        };
        let update = || {
            self.client
                .update_schedule()
                .name(&name)
                .group_name(&self.group)
                .schedule_expression(&expression)
                .flexible_time_window(window.clone())
                .target(target.clone())
                .action_after_completion(ActionAfterCompletion::Delete)
                .send()
        };
        // The pending one is updated, or a new one created; when the belief was wrong (it had
        // fired, or one was still there), the other call does it.
        if replace {
            match update().await {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some("ResourceNotFoundException") => create()
                    .await
                    .map(|_| ())
                    .map_err(|e| classify("scheduler:CreateSchedule", &e)),
                Err(e) => Err(classify("scheduler:UpdateSchedule", &e)),
            }
        } else {
            match create().await {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some("ConflictException") => update()
                    .await
                    .map(|_| ())
                    .map_err(|e| classify("scheduler:UpdateSchedule", &e)),
                Err(e) => Err(classify("scheduler:CreateSchedule", &e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_ups_are_whole_utc_seconds_never_early() {
        assert_eq!(
            at_expression(Timestamp::from_epoch_ms(1_570_035_880_000)),
            "at(2019-10-02T17:04:40)"
        );
        assert_eq!(
            at_expression(Timestamp::from_epoch_ms(1_570_035_880_001)),
            "at(2019-10-02T17:04:41)"
        );
    }

    #[test]
    fn schedule_names_fit_in_64_characters() {
        assert_eq!(schedule_name("fraud"), "guardrails-fraud");
        assert_eq!(schedule_name(&"e".repeat(63)).len(), 64);
    }
}
