//! Every event a Guardrails function receives, parsed into one typed form: EventBridge
//! envelopes (`aws_lambda_events`' `EventBridgeEvent`) with our own typed details where AWS's
//! crate has none (SageMaker endpoint and model package events, CloudWatch alarm state changes,
//! our requests), and the Scheduler's wake-up input. A malformed event gets an error that says
//! which event and which field; it never panics.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::events::{DETAIL_TYPE as STATE_CHANGE, StateChange};

/// The `detail-type` of a deployment request.
pub const DEPLOYMENT_REQUESTED: &str = "Guardrails Deployment Requested";
/// The `detail-type` of an approval or abort sent by a person.
pub const DEPLOYMENT_COMMAND: &str = "Guardrails Deployment Command";

/// A request to deploy a model to an endpoint (`source: guardrails`,
/// `detail-type: "Guardrails Deployment Requested"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentRequest {
    pub endpoint_name: String,
    /// An existing SageMaker model; or give `modelPackageArn`.
    #[serde(default)]
    pub model_name: Option<String>,
    /// A model package to create the model from.
    #[serde(default)]
    pub model_package_arn: Option<String>,
    /// Green's instance type; default: blue's.
    #[serde(default)]
    pub instance_type: Option<String>,
    /// Green's instances at full traffic; default: blue's.
    #[serde(default)]
    pub instance_count: Option<u32>,
    /// Green's variant name; default: derived from the model name.
    #[serde(default)]
    pub green_variant: Option<String>,
    /// The policy document (JSON object, or YAML/JSON text).
    pub policy: Value,
    /// Who asked, for the audit trail.
    #[serde(default)]
    pub requested_by: Option<String>,
    /// A deployment id of the caller's choosing (idempotency); default: derived from the event.
    #[serde(default)]
    pub deployment_id: Option<String>,
    /// Plan and run the preflight checks, change nothing, and answer with the plan.
    #[serde(default)]
    pub dry_run: bool,
}

/// A person's approval or abort (`detail-type: "Guardrails Deployment Command"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentCommand {
    pub endpoint_name: String,
    pub deployment_id: String,
    /// `approve` or `abort`.
    pub command: String,
    pub by: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// "SageMaker Endpoint State Change" and "... Deployment State Change": only the endpoint's name
/// matters, because every invocation re-observes the endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct EndpointDetail {
    #[serde(rename = "EndpointName")]
    endpoint_name: String,
}

/// "SageMaker Model Package State Change".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPackageChange {
    #[serde(rename = "ModelPackageGroupName")]
    pub group_name: String,
    #[serde(rename = "ModelPackageVersion", default)]
    pub version: Option<u64>,
    #[serde(rename = "ModelPackageArn")]
    pub arn: String,
    #[serde(rename = "ModelApprovalStatus")]
    pub approval_status: String,
    /// `Pending`, `InProgress`, `Completed`, `Failed`, `Deleting`.
    #[serde(rename = "ModelPackageStatus", default)]
    pub status: Option<String>,
    /// What the change updated (`ModelApprovalStatus`, `ModelLifeCycle`,
    /// `CustomerMetadataProperties`, ...); absent when a version is created.
    #[serde(rename = "UpdatedModelPackageFields", default)]
    pub updated_fields: Vec<String>,
}

impl ModelPackageChange {
    /// Why this change does not deploy the version, if it does not: only a change of
    /// `ModelApprovalStatus` to `Approved` of a `Completed` version does (SageMaker also sends
    /// this event for metadata, lifecycle and description updates, and for new versions).
    pub fn not_an_approval(&self) -> Option<String> {
        let arn = &self.arn;
        if self.approval_status != "Approved" {
            return Some(format!(
                "model package {arn} is {}, not Approved",
                self.approval_status
            ));
        }
        if self.status.as_deref() != Some("Completed") {
            return Some(format!(
                "model package {arn} is {}, not Completed",
                self.status.as_deref().unwrap_or("of no ModelPackageStatus")
            ));
        }
        if !self
            .updated_fields
            .iter()
            .any(|f| f == "ModelApprovalStatus")
        {
            let what = if self.updated_fields.is_empty() {
                "nothing (a new version)".to_owned()
            } else {
                self.updated_fields.join(", ")
            };
            return Some(format!(
                "model package {arn} changed {what}, not its approval: only an approval deploys"
            ));
        }
        None
    }
}

/// "CloudWatch Alarm State Change" (`aws_lambda_events` has no type for this detail).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmChange {
    pub alarm_name: String,
    pub state: AlarmStateDetail,
    #[serde(default)]
    pub previous_state: Option<AlarmStateDetail>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmStateDetail {
    pub value: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// The Scheduler's wake-up input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WakeUp {
    pub endpoint: String,
    pub deployment_id: String,
}

/// An inbound event, by what it asks of Guardrails.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    DeploymentRequested(Box<DeploymentRequest>),
    Command(DeploymentCommand),
    ModelPackageChanged(ModelPackageChange),
    EndpointChanged {
        endpoint_name: String,
    },
    AlarmChanged(AlarmChange),
    WakeUp(WakeUp),
    /// The one-minute sweep (an EventBridge "Scheduled Event").
    Sweep,
    StateChanged(Box<StateChange>),
    /// A well-formed event Guardrails does not handle (named by its source and detail-type).
    Other {
        source: String,
        detail_type: String,
    },
}

/// Why an event could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed event{}: {message}", self.id.as_ref().map(|id| format!(" {id}")).unwrap_or_default())]
pub struct InboundError {
    /// The EventBridge event id, when there was one.
    pub id: Option<String>,
    pub message: String,
}

/// The longest name of a person or principal a command or request may carry (`by`,
/// `requestedBy`): IAM's ARNs are at most 2,048 characters, user and role names 64.
pub const MAX_NAME_CHARS: usize = 256;
/// The longest reason an abort may give. Every free text Guardrails keeps is bounded, so that
/// its records and events fit DynamoDB's 400 KB items and EventBridge's 256 KiB entries.
pub const MAX_REASON_CHARS: usize = 1_024;

/// `text` (the detail's `field`) is at most `max` characters.
fn bounded(
    event: &EventBridgeEvent<Value>,
    field: &str,
    text: &str,
    max: usize,
) -> Result<(), InboundError> {
    let chars = text.chars().count();
    if chars > max {
        return Err(InboundError {
            id: event.id.clone(),
            message: format!("detail.{field}: {chars} characters; at most {max} are accepted"),
        });
    }
    Ok(())
}

fn detail<T: DeserializeOwned>(
    event: &EventBridgeEvent<Value>,
    what: &str,
) -> Result<T, InboundError> {
    // The field a wrong type or a null is in, named as a missing one is:
    // `detail.instanceCount: invalid type: string "four", expected u32`.
    serde_path_to_error::deserialize(event.detail.clone()).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!(".{path}")
        };
        InboundError {
            id: event.id.clone(),
            message: format!("\"{what}\" detail{at}: {}", e.inner()),
        }
    })
}

/// The envelope as EventBridge sends it, from one as AWS's documentation sometimes prints it:
/// the SageMaker samples give `time` as epoch milliseconds in a string (`"1583831889050"`),
/// where EventBridge sends RFC 3339 (EventBridge User Guide, "EventBridge events"); such a time
/// is read as what it says rather than refused.
fn as_eventbridge_sends_it(value: &Value) -> Value {
    let mut event = value.clone();
    let epoch_ms = event
        .get("time")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.len() <= 16 && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<i64>().ok());
    if let (Some(ms), Value::Object(map)) = (epoch_ms, &mut event) {
        let t = crate::units::Timestamp::from_epoch_ms(ms).utc();
        let rfc3339 = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year, t.month, t.day, t.hour, t.minute, t.second, t.millisecond
        );
        map.insert("time".to_owned(), Value::String(rfc3339));
    }
    event
}

/// Reads any event a Guardrails function may receive.
pub fn parse(value: &Value) -> Result<Inbound, InboundError> {
    if value.get("detail-type").is_none() {
        return serde_json::from_value(value.clone())
            .map(Inbound::WakeUp)
            .map_err(|e| InboundError {
                id: None,
                message: format!(
                    "neither an EventBridge event (no \"detail-type\") nor a wake-up: {e}"
                ),
            });
    }
    let event: EventBridgeEvent<Value> = serde_json::from_value(as_eventbridge_sends_it(value))
        .map_err(|e| InboundError {
            id: value.get("id").and_then(Value::as_str).map(str::to_owned),
            message: format!("not an EventBridge event: {e}"),
        })?;
    let source = event.source.clone();
    let detail_type = event.detail_type.clone();
    Ok(match (source.as_str(), detail_type.as_str()) {
        ("guardrails", DEPLOYMENT_REQUESTED) => {
            let request: DeploymentRequest = detail(&event, DEPLOYMENT_REQUESTED)?;
            if let Some(by) = &request.requested_by {
                bounded(&event, "requestedBy", by, MAX_NAME_CHARS)?;
            }
            Inbound::DeploymentRequested(Box::new(request))
        }
        ("guardrails", DEPLOYMENT_COMMAND) => {
            let command: DeploymentCommand = detail(&event, DEPLOYMENT_COMMAND)?;
            bounded(&event, "by", &command.by, MAX_NAME_CHARS)?;
            if let Some(reason) = &command.reason {
                bounded(&event, "reason", reason, MAX_REASON_CHARS)?;
            }
            Inbound::Command(command)
        }
        ("guardrails", STATE_CHANGE) => {
            Inbound::StateChanged(Box::new(detail(&event, STATE_CHANGE)?))
        }
        (
            "aws.sagemaker",
            kind @ ("SageMaker Endpoint State Change"
            | "SageMaker Endpoint Deployment State Change"),
        ) => {
            let d: EndpointDetail = detail(&event, kind)?;
            Inbound::EndpointChanged {
                endpoint_name: d.endpoint_name,
            }
        }
        ("aws.sagemaker", kind @ "SageMaker Model Package State Change") => {
            Inbound::ModelPackageChanged(detail(&event, kind)?)
        }
        ("aws.cloudwatch", kind @ "CloudWatch Alarm State Change") => {
            Inbound::AlarmChanged(detail(&event, kind)?)
        }
        ("aws.events", "Scheduled Event") => Inbound::Sweep,
        _ => Inbound::Other {
            source,
            detail_type,
        },
    })
}
