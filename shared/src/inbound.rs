//! Every event a Guardrails function receives, parsed into one typed form: EventBridge
//! envelopes (`aws_lambda_events`' `EventBridgeEvent`) with our own typed details where AWS's
//! crate has none (SageMaker endpoint and model package events, CloudWatch alarm state changes,
//! our state changes), the Scheduler's wake-up input, and the commands people send through the
//! function URL (`command`). A malformed event gets an error that says which event and which
//! field; it never panics.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::access::Verb;
use crate::events::{DETAIL_TYPE as STATE_CHANGE, StateChange};

/// The `detail-type` deployment requests had when anyone who could put events on the default
/// bus could send them; they are refused now (commands come through the function URL).
pub const DEPLOYMENT_REQUESTED: &str = "Guardrails Deployment Requested";
/// Likewise, approvals and aborts.
pub const DEPLOYMENT_COMMAND: &str = "Guardrails Deployment Command";

/// A request to deploy a model to an endpoint (the body of a `deploy` command, or what an
/// approved model package asks for).
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
    /// Who asked, for the audit trail: the authenticated caller, or the approved package. Never
    /// read from a request (the signer is who asked).
    #[serde(skip_deserializing)]
    pub requested_by: Option<String>,
    /// A deployment id of the caller's choosing (idempotency: a retried request with the same
    /// id is recognised); default: derived from the request's id.
    #[serde(default)]
    pub deployment_id: Option<String>,
    /// Plan and run the preflight checks, change nothing, and answer with the plan.
    #[serde(default)]
    pub dry_run: bool,
}

/// The body of an `approve` or `abort` command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandBody {
    pub endpoint_name: String,
    /// The deployment meant; the command is refused if another one is active. Default: the
    /// endpoint's active deployment.
    #[serde(default)]
    pub deployment_id: Option<String>,
    /// Why (aborts).
    #[serde(default)]
    pub reason: Option<String>,
}

/// The body of a read: `status` (every active deployment, or the endpoint's), `history` (the
/// endpoint's past deployments, newest first), `show` (one deployment, by id).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadBody {
    #[serde(default)]
    pub endpoint_name: Option<String>,
    #[serde(default)]
    pub deployment_id: Option<String>,
    /// `history`: how many, newest first (1 to `MAX_HISTORY`, default `DEFAULT_HISTORY`).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// The most past deployments one `history` returns, and how many by default.
pub const MAX_HISTORY: usize = 100;
pub const DEFAULT_HISTORY: usize = 20;

/// A command as sent to the function URL: `{"command": "deploy" | "approve" | "abort" |
/// "status" | "history" | "show", ...}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    Deploy(Box<DeploymentRequest>),
    Approve(CommandBody),
    Abort(CommandBody),
    Status(ReadBody),
    History(ReadBody),
    Show(ReadBody),
}

/// The commands, as the `command` field names them.
const COMMANDS: &str = "\"deploy\", \"approve\", \"abort\", \"status\", \"history\", \"show\"";

impl Sent {
    pub fn verb(&self) -> Verb {
        match self {
            Sent::Deploy(_) => Verb::Deploy,
            Sent::Approve(_) => Verb::Approve,
            Sent::Abort(_) => Verb::Abort,
            Sent::Status(_) | Sent::History(_) | Sent::Show(_) => Verb::Read,
        }
    }

    pub fn endpoint_name(&self) -> &str {
        match self {
            Sent::Deploy(r) => &r.endpoint_name,
            Sent::Approve(c) | Sent::Abort(c) => &c.endpoint_name,
            Sent::Status(r) | Sent::History(r) | Sent::Show(r) => {
                r.endpoint_name.as_deref().unwrap_or_default()
            }
        }
    }
}

/// The largest command body read: a policy is at most 64 KiB (`policy::limits`), the rest of a
/// request a few hundred bytes. A function URL accepts up to 6 MB (Lambda quotas); anything
/// past this is refused before it is parsed.
pub const MAX_COMMAND_BYTES: usize = 96 * 1024;

/// Why a command could not be read: `what` names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    /// The endpoint the command named, when it could be read.
    pub endpoint_name: Option<String>,
    pub message: String,
}

fn command_error(endpoint: Option<&str>, message: String) -> CommandError {
    CommandError {
        endpoint_name: endpoint.map(str::to_owned),
        message,
    }
}

/// Reads a command body (JSON text).
pub fn command(body: &str) -> Result<Sent, CommandError> {
    if body.len() > MAX_COMMAND_BYTES {
        return Err(command_error(
            None,
            format!(
                "the command is {} bytes; at most {MAX_COMMAND_BYTES} are read",
                body.len()
            ),
        ));
    }
    let value: Value = serde_json::from_str(body)
        .map_err(|e| command_error(None, format!("the command is not JSON: {e}")))?;
    let Value::Object(mut fields) = value else {
        return Err(command_error(
            None,
            "the command must be a JSON object: {\"command\": \"deploy\", ...}".to_owned(),
        ));
    };
    let endpoint = fields
        .get("endpointName")
        .and_then(Value::as_str)
        .filter(|e| e.chars().count() <= 63)
        .map(str::to_owned);
    let endpoint = endpoint.as_deref();
    for typed in ["requestedBy", "by"] {
        if fields.contains_key(typed) {
            return Err(command_error(
                endpoint,
                format!(
                    "{typed}: not accepted: who sent a command is who signed it, and that is \
                     recorded"
                ),
            ));
        }
    }
    let verb = match fields.remove("command") {
        Some(Value::String(verb)) => verb,
        Some(other) => {
            return Err(command_error(
                endpoint,
                format!("command: {other} is not one of {COMMANDS}"),
            ));
        }
        None => {
            return Err(command_error(
                endpoint,
                format!("command: missing: one of {COMMANDS}"),
            ));
        }
    };
    let rest = Value::Object(fields);
    let sent = match verb.as_str() {
        "deploy" => Sent::Deploy(Box::new(body_of(rest, &verb, endpoint)?)),
        "approve" => {
            let c: CommandBody = body_of(rest, &verb, endpoint)?;
            if c.reason.is_some() {
                return Err(command_error(
                    endpoint,
                    "reason: an approval takes none (aborts do)".to_owned(),
                ));
            }
            Sent::Approve(c)
        }
        "abort" => Sent::Abort(body_of(rest, &verb, endpoint)?),
        "status" => Sent::Status(read_body(rest, &verb, endpoint)?),
        "history" => {
            let r = read_body(rest, &verb, endpoint)?;
            if r.endpoint_name.is_none() {
                return Err(command_error(
                    None,
                    "endpointName: missing: history is of one endpoint".to_owned(),
                ));
            }
            Sent::History(r)
        }
        "show" => {
            let r = read_body(rest, &verb, endpoint)?;
            if r.deployment_id.is_none() {
                return Err(command_error(
                    endpoint,
                    "deploymentId: missing: show names the deployment".to_owned(),
                ));
            }
            Sent::Show(r)
        }
        other => {
            let other = crate::units::cut(other, 40);
            return Err(command_error(
                endpoint,
                format!("command: {other:?} is not one of {COMMANDS}"),
            ));
        }
    };
    if let Sent::Abort(CommandBody {
        reason: Some(reason),
        ..
    }) = &sent
    {
        let chars = reason.chars().count();
        if chars > MAX_REASON_CHARS {
            return Err(command_error(
                endpoint,
                format!("reason: {chars} characters; at most {MAX_REASON_CHARS} are accepted"),
            ));
        }
    }
    Ok(sent)
}

/// A read's body, its names and limit checked.
fn read_body(value: Value, verb: &str, endpoint: Option<&str>) -> Result<ReadBody, CommandError> {
    let r: ReadBody = body_of(value, verb, endpoint)?;
    if let Some(limit) = r.limit
        && !(1..=MAX_HISTORY).contains(&limit)
    {
        return Err(command_error(
            endpoint,
            format!("limit: {limit}; from 1 to {MAX_HISTORY}"),
        ));
    }
    for (field, name) in [
        ("endpointName", &r.endpoint_name),
        ("deploymentId", &r.deployment_id),
    ] {
        if let Some(name) = name
            && (name.is_empty() || name.chars().count() > 63)
        {
            return Err(command_error(
                endpoint,
                format!(
                    "{field}: {} characters; 1 to 63 are accepted",
                    name.chars().count()
                ),
            ));
        }
    }
    Ok(r)
}

fn body_of<T: DeserializeOwned>(
    value: Value,
    verb: &str,
    endpoint: Option<&str>,
) -> Result<T, CommandError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!("{path}: ")
        };
        command_error(
            endpoint,
            format!(
                "\"{verb}\" command: {at}{}",
                crate::units::cut(&e.inner().to_string(), 500)
            ),
        )
    })
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
    ModelPackageChanged(ModelPackageChange),
    EndpointChanged {
        endpoint_name: String,
    },
    AlarmChanged(AlarmChange),
    WakeUp(WakeUp),
    /// The one-minute sweep (an EventBridge "Scheduled Event").
    Sweep,
    /// One share of a sweep, which the sweep published for this invocation.
    SweepShard(crate::events::SweepShard),
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

/// Reads any event a Guardrails function may receive. `account` is this stack's: an
/// EventBridge event from any other account is refused (the rules match only this account's
/// events too; EventBridge User Guide, "Event patterns", `account`).
pub fn parse(value: &Value, account: Option<&str>) -> Result<Inbound, InboundError> {
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
    if let Some(account) = account
        && event.account.as_deref() != Some(account)
    {
        return Err(InboundError {
            id: event.id.clone(),
            message: format!(
                "from account {:?}: only this account's events ({account}) are read",
                crate::units::cut(event.account.as_deref().unwrap_or_default(), 20)
            ),
        });
    }
    let source = event.source.clone();
    let detail_type = event.detail_type.clone();
    Ok(match (source.as_str(), detail_type.as_str()) {
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
        ("guardrails", kind @ crate::events::SWEEP_SHARD_DETAIL_TYPE) => {
            let shard: crate::events::SweepShard = detail(&event, kind)?;
            if let Some(problem) = shard.problem() {
                return Err(InboundError {
                    id: event.id.clone(),
                    message: format!("\"{kind}\" detail: {problem}"),
                });
            }
            Inbound::SweepShard(shard)
        }
        _ => Inbound::Other {
            source,
            detail_type,
        },
    })
}
