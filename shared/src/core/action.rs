//! What the core asks the driver to do, and why a deployment changed phase.
//!
//! Actions are convergent: each states the world it wants ("green at 10% of requests"), not a
//! change ("add 10%"), so performing one twice, or after a crash, is harmless.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::plan::Suspended;
use crate::policy::{AlarmTemplate, DeploymentConfig};
use crate::units::{Share, Timestamp};

/// One thing to do in the world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action")]
pub enum Action {
    /// Create `config_name` (if absent) holding `variants`, with every other setting of
    /// `from_config` (the user's config: data capture, KMS key, asynchronous inference, tags...).
    CreateEndpointConfig {
        config_name: String,
        from_config: String,
        variants: Vec<ConfigVariant>,
    },
    /// The endpoint must serve `config_name` (UpdateEndpoint), rolled out by SageMaker under
    /// `deployment_config` when one is given (native engine).
    UpdateEndpoint {
        config_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deployment_config: Option<DeploymentConfig>,
        /// `RetainAllVariantProperties`: variants that keep their name keep their current
        /// instance count (a rollback lands on blue at the capacity it has now, not at its
        /// config's `InitialInstanceCount`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        retain_variant_properties: bool,
    },
    /// Green must receive `green_share` of requests and blue the rest
    /// (UpdateEndpointWeightsAndCapacities: blue weight `1 - share`, green weight `share`).
    SetWeights {
        blue_variant: String,
        green_variant: String,
        green_share: Share,
    },
    /// `variant_name` must run `instance_count` instances (UpdateEndpointWeightsAndCapacities).
    SetInstanceCount {
        variant_name: String,
        instance_count: u32,
    },
    /// The alarm `alarm_name` must exist, built from `template` and scoped to the green
    /// variant (dimensions `EndpointName` and `VariantName`).
    PutGreenAlarm {
        alarm_name: String,
        endpoint_name: String,
        variant_name: String,
        template: AlarmTemplate,
    },
    /// The variant's scalable target must have `suspended` as its `SuspendedState`
    /// (Application Auto Scaling's RegisterScalableTarget).
    SetScaling {
        variant_name: String,
        suspended: Suspended,
    },
    /// Guardrails' own alarm `alarm_name` must be in ALARM, saying `reason` (CloudWatch's
    /// SetAlarmState): the judge's alarm under the native engine, which SageMaker watches and
    /// rolls back on. Its metric never has data and it keeps its state on missing data, so it
    /// stays in ALARM until it is deleted.
    RaiseAlarm { alarm_name: String, reason: String },
    /// These alarms must not exist.
    DeleteAlarms { alarm_names: Vec<String> },
    /// This endpoint config must not exist.
    DeleteEndpointConfig { config_name: String },
}

impl Action {
    /// IAM's name of the call that performs this action.
    pub fn api(&self) -> &'static str {
        match self {
            Action::CreateEndpointConfig { .. } => "sagemaker:CreateEndpointConfig",
            Action::UpdateEndpoint { .. } => "sagemaker:UpdateEndpoint",
            Action::SetWeights { .. } | Action::SetInstanceCount { .. } => {
                "sagemaker:UpdateEndpointWeightsAndCapacities"
            }
            Action::PutGreenAlarm { .. } => "cloudwatch:PutMetricAlarm",
            Action::SetScaling { .. } => "application-autoscaling:RegisterScalableTarget",
            Action::RaiseAlarm { .. } => "cloudwatch:SetAlarmState",
            Action::DeleteAlarms { .. } => "cloudwatch:DeleteAlarms",
            Action::DeleteEndpointConfig { .. } => "sagemaker:DeleteEndpointConfig",
        }
    }
}

/// A production variant of a config Guardrails creates, taken from a variant of the action's
/// `from_config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source")]
pub enum ConfigVariant {
    /// `variant_name` unchanged, but for its initial weight and, when given, its instance
    /// count (blue at the capacity it serves with now).
    Copy {
        variant_name: String,
        initial_weight: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance_count: Option<u32>,
    },
    /// The new model: every setting of the variant `like` (volume size, timeouts, routing,
    /// serverless settings...) but its name, model, instance type and count and weight. An
    /// empty `instance_type` keeps `like`'s (a serverless variant has none).
    New {
        like: String,
        variant_name: String,
        model_name: String,
        instance_type: String,
        instance_count: u32,
        initial_weight: f64,
    },
}

/// Why a deployment moved from one phase to another: kept in the audit log and sent in our
/// state-change events, so every decision can be explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cause")]
pub enum Cause {
    /// The deployment was created, at the request of `by` (the authenticated caller, or the
    /// approved model package).
    Started {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// The endpoint serves blue and green, green at weight 0, and green's alarms exist.
    GreenProvisioned,
    /// Green serves the step's share of requests; the bake starts.
    Shifted {
        step: usize,
        green_share: Share,
    },
    /// The bake after `step` ended with no watched alarm in ALARM.
    BakePassed {
        step: usize,
    },
    /// The last shift waits for a person.
    ApprovalRequired,
    Approved {
        by: String,
    },
    /// The serving weights no longer match the step (changed outside Guardrails); the shift is
    /// made again and its bake restarts.
    WeightsChanged {
        green_share: Share,
    },
    /// The judge found green worse than blue (`step` is the step being judged).
    GreenWorse {
        step: usize,
        summary: String,
    },
    /// The bake after `step` passed: the judge found green no worse than blue.
    JudgedNoWorse {
        step: usize,
        summary: String,
    },
    /// The bake after `step` ended and the judge could not tell (the policy's
    /// `WhenInconclusive` says what follows: a hold, or a rollback).
    Inconclusive {
        step: usize,
        summary: String,
    },
    /// The bake after `step` ended with no verdict, and the policy says to go on
    /// (`WhenInconclusive: Pass`).
    PassedWithoutVerdict {
        step: usize,
        summary: String,
    },
    /// The hook said yes.
    HookPassed {
        hook: crate::policy::HookPoint,
        function: String,
        reason: String,
    },
    /// The hook said no, raised, or answered what is not an answer: green must not go on.
    HookFailed {
        hook: crate::policy::HookPoint,
        function: String,
        reason: String,
    },
    /// The hook said neither yes nor no within its `TimeoutInSeconds`; `went_on` when the
    /// policy's `OnTimeout` is `Continue` (else the deployment rolls back).
    HookTimedOut {
        hook: crate::policy::HookPoint,
        function: String,
        after_secs: u32,
        went_on: bool,
        /// What it said last, while it worked.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        last_said: String,
    },
    /// A watched alarm is in ALARM.
    AlarmFired {
        alarm_name: String,
        reason: String,
    },
    /// A watched alarm no longer exists: Guardrails will not bake blind.
    AlarmMissing {
        alarm_name: String,
    },
    /// The deployment's deadline passed before the final bake did.
    TimedOut {
        deadline: Timestamp,
    },
    Aborted {
        by: String,
        reason: String,
    },
    /// A person aborted the rollback itself: the deployment ends at once, unfinished.
    RollbackAborted {
        by: String,
        reason: String,
        /// What the endpoint is left with, and what to do.
        left_behind: String,
    },
    /// AWS refused a call it will never accept as it is (access denied, a validation error such
    /// as a missing model or an invalid instance type, a quota), or a call kept failing until
    /// Guardrails stopped retrying it.
    Refused {
        /// IAM's name of the call: `sagemaker:UpdateEndpoint`.
        api: String,
        /// What AWS said.
        message: String,
        /// When the deployment ends on it: what the endpoint is left with, and what to do.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        left_behind: String,
    },
    /// The update to the blue+green config ended with the endpoint back on blue.
    ProvisioningFailed {
        reason: String,
    },
    /// The endpoint cannot be used (Failed, OutOfService, Deleting, UpdateRollbackFailed).
    EndpointBroken {
        status: String,
        reason: String,
    },
    EndpointDeleted,
    /// The endpoint serves a config that Guardrails did not put there.
    ChangedOutsideGuardrails {
        config_name: String,
    },
    /// An UpdateEndpoint that removes a fleet failed too often.
    UpdateFailed {
        config_name: String,
        reason: String,
        attempts: u32,
    },
    /// Removing a fleet took longer than the settle budget.
    SettleTimedOut {
        config_name: String,
    },
    /// The stored record contradicts its own plan (a bug or a hand edit); nothing is touched.
    InvalidRecord {
        detail: String,
    },
    /// The endpoint serves the new model alone, under blue's variant name; its fleet bakes.
    BlueRemoved,
    /// The final fleet served its bake with no watched alarm in ALARM.
    FinalBakePassed,
    /// The endpoint serves the original config again.
    RollbackComplete,
    /// Native engine: what SageMaker reports doing (`VariantStatus`).
    SageMakerProgress {
        variant_name: String,
        status: String,
        message: String,
    },
    /// Native engine: SageMaker finished; the endpoint serves the new config.
    Deployed {
        config_name: String,
    },
    /// Native engine: SageMaker moved traffic back to the old config (no watched alarm was seen
    /// in ALARM; its FailureReason, or a note that it gave none).
    SageMakerRolledBack {
        reason: String,
    },
    /// Native engine: SageMaker's rollback failed (`UpdateRollbackFailed`).
    RollbackFailed {
        reason: String,
        recovery: String,
    },
}

/// `: its words`, or nothing when it said nothing.
fn said(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Started { by: None } => write!(f, "deployment started"),
            Cause::Started { by: Some(by) } => write!(f, "deployment started, requested by {by}"),
            Cause::GreenProvisioned => write!(f, "green provisioned at weight 0"),
            Cause::Shifted { step, green_share } => {
                write!(f, "green serves {green_share} (step {})", step + 1)
            }
            Cause::BakePassed { step } => write!(f, "bake after step {} passed", step + 1),
            Cause::ApprovalRequired => write!(f, "waiting for approval of the last shift"),
            Cause::Approved { by } => write!(f, "approved by {by}"),
            Cause::WeightsChanged { green_share } => write!(
                f,
                "weights changed outside Guardrails (green at {green_share}); shifting again"
            ),
            Cause::GreenWorse { step, summary } => write!(
                f,
                "the judge found green worse than blue at step {}: {summary}",
                step + 1
            ),
            Cause::JudgedNoWorse { step, summary } => write!(
                f,
                "bake after step {} passed; the judge found green no worse: {summary}",
                step + 1
            ),
            Cause::Inconclusive { step, summary } => write!(
                f,
                "the judge could not tell after step {}'s bake: {summary}",
                step + 1
            ),
            Cause::PassedWithoutVerdict { step, summary } => write!(
                f,
                "bake after step {} passed without a verdict (WhenInconclusive: Pass): {summary}",
                step + 1
            ),
            Cause::HookPassed {
                hook,
                function,
                reason,
            } => write!(f, "the {hook} hook {function} passed{}", said(reason)),
            Cause::HookFailed {
                hook,
                function,
                reason,
            } => write!(f, "the {hook} hook {function} failed{}", said(reason)),
            Cause::HookTimedOut {
                hook,
                function,
                after_secs,
                went_on,
                last_said,
            } => {
                let then = if *went_on {
                    "going on (OnTimeout: Continue)"
                } else {
                    "rolling back"
                };
                write!(
                    f,
                    "the {hook} hook {function} gave no answer in {after_secs} s{}; {then}",
                    said(last_said)
                )
            }
            Cause::AlarmFired { alarm_name, reason } => {
                write!(f, "alarm {alarm_name} in ALARM: {reason}")
            }
            Cause::AlarmMissing { alarm_name } => write!(f, "watched alarm {alarm_name} is gone"),
            Cause::TimedOut { deadline } => {
                write!(f, "deadline passed (epoch ms {})", deadline.epoch_ms())
            }
            Cause::Aborted { by, reason } => write!(f, "aborted by {by}: {reason}"),
            Cause::RollbackAborted { by, reason, .. } => {
                write!(f, "rollback aborted by {by}: {reason}")
            }
            Cause::Refused { api, message, .. } => write!(f, "{api} refused: {message}"),
            Cause::ProvisioningFailed { reason } => {
                write!(f, "green provisioning failed: {reason}")
            }
            Cause::EndpointBroken { status, reason } => {
                write!(f, "endpoint is {status}: {reason}")
            }
            Cause::EndpointDeleted => write!(f, "endpoint was deleted"),
            Cause::ChangedOutsideGuardrails { config_name } => {
                write!(
                    f,
                    "endpoint changed outside Guardrails (now on {config_name})"
                )
            }
            Cause::UpdateFailed {
                config_name,
                reason,
                attempts,
            } => write!(
                f,
                "update to {config_name} failed {attempts} times; last reason: {reason}"
            ),
            Cause::SettleTimedOut { config_name } => {
                write!(f, "update to {config_name} did not finish in time")
            }
            Cause::InvalidRecord { detail } => write!(f, "invalid deployment record: {detail}"),
            Cause::BlueRemoved => write!(
                f,
                "blue removed; the new model serves alone under blue's variant name"
            ),
            Cause::FinalBakePassed => write!(f, "the final fleet's bake passed"),
            Cause::RollbackComplete => write!(f, "endpoint back on its original config"),
            Cause::SageMakerProgress {
                variant_name,
                status,
                message,
            } => write!(f, "SageMaker: {status} ({variant_name}): {message}"),
            Cause::Deployed { config_name } => {
                write!(f, "SageMaker finished; the endpoint serves {config_name}")
            }
            Cause::SageMakerRolledBack { reason } => {
                write!(f, "SageMaker rolled the update back: {reason}")
            }
            Cause::RollbackFailed { reason, recovery } => write!(
                f,
                "SageMaker's rollback failed (UpdateRollbackFailed: {reason}); recovery: {recovery}"
            ),
        }
    }
}
