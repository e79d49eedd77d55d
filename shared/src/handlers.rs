//! What each Lambda function does with an event, so that a function's `main.rs` only builds
//! clients and runs `lambda_runtime`. A malformed or unexpected event is logged and
//! acknowledged (`Handled::Ignored`: retrying would not help); a transient AWS error is returned
//! (`HandlerError`) so that Lambda and EventBridge retry. One log line per decision, with the
//! endpoint, the deployment and the cause.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::access::{Principals, Verb};
use crate::core::Command;
use crate::driver::{Driver, DriverError, Outcome, Report};
use crate::events::PhaseKind;
use crate::events::Refusal;
use crate::inbound::{CommandBody, DeploymentRequest, Inbound, Sent, parse};
use crate::metrics::Measure;
use crate::page;
use crate::plan::{GreenSpec, Plan};
use crate::policy::Policy;
use crate::ports::{
    Clock, ErrorKind, PackageTargets, PageClaim, Pager, PortError, SentPage, Store,
};
use crate::status;

pub use crate::ports::PackageTarget;

/// The functions' configuration beyond the clients.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Model package group name to the endpoint and policy its approved versions deploy with.
    pub package_targets: Arc<dyn PackageTargets>,
    /// The execution role of models created from model packages.
    pub model_role_arn: Option<String>,
    /// Page on successes too, not only on rollbacks and failures.
    pub notify_successes: bool,
    /// The deployments table, named in pages.
    pub table: String,
    /// This stack's account: events from any other are refused. `None` only in tests that
    /// build events without one; the functions require `GUARDRAILS_ACCOUNT_ID`.
    pub account: Option<String>,
    /// Who may deploy, approve and abort (the template's `*Principals` parameters).
    pub principals: Principals,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            package_targets: Arc::new(BTreeMap::<String, PackageTarget>::new()),
            model_role_arn: None,
            notify_successes: false,
            table: String::new(),
            account: None,
            principals: Principals::default(),
        }
    }
}

/// What a function did with one event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "handled", rename_all = "camelCase")]
pub enum Handled {
    /// Nothing to do (not ours, not for this function, or malformed); the reason is logged.
    Ignored {
        reason: String,
        /// The event could not be read (counted as refused in Guardrails' metrics).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        malformed: bool,
    },
    /// A request that changed nothing; published as a "Guardrails Deployment Refused" event.
    Refused { endpoint: String, reason: String },
    /// Deployments moved on, one entry per endpoint reconciled.
    Reconciled { deployments: Vec<Decided> },
    /// A dry run: the plan with its preflight checks; nothing was changed.
    Planned {
        endpoint: String,
        /// The plan as a person reads it.
        text: String,
        plan: Box<Plan>,
    },
    /// The active deployments (`status`).
    Status { deployments: Vec<status::Status> },
    /// The endpoint's past deployments, newest first (`history`).
    History {
        endpoint: String,
        deployments: Vec<status::Summary>,
    },
    /// One deployment: its summary, its status while active, its plan and its audit trail as
    /// our events (`show`).
    Shown(Box<status::Shown>),
    /// On-call was paged.
    Paged {
        endpoint: String,
        deployment_id: String,
        subject: String,
        message_id: String,
    },
}

/// One reconciled deployment, as logged.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decided {
    pub endpoint: String,
    pub deployment_id: String,
    pub phase: String,
    pub causes: Vec<String>,
    /// How the deployment ended, when this invocation ended it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<crate::metrics::Ended>,
}

/// What one invocation counts in Guardrails' metrics: its outcome's, or a function error.
pub fn measures_of(result: Result<&Handled, &HandlerError>) -> Vec<Measure> {
    match result {
        Ok(handled) => handled.measures(),
        Err(_) => vec![Measure::FunctionError],
    }
}

impl Handled {
    /// What this outcome counts in Guardrails' metrics.
    pub fn measures(&self) -> Vec<Measure> {
        match self {
            Handled::Reconciled { deployments } => deployments
                .iter()
                .filter_map(|d| {
                    d.ended.clone().map(|ended| Measure::Ended {
                        deployment_id: d.deployment_id.clone(),
                        ended,
                    })
                })
                .collect(),
            Handled::Refused { .. }
            | Handled::Ignored {
                malformed: true, ..
            } => {
                vec![Measure::Refused]
            }
            _ => Vec::new(),
        }
    }
}

/// An error worth retrying the invocation for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl From<DriverError> for HandlerError {
    fn from(e: DriverError) -> HandlerError {
        HandlerError(e.to_string())
    }
}

impl From<PortError> for HandlerError {
    fn from(e: PortError) -> HandlerError {
        HandlerError(e.to_string())
    }
}

fn ignored(reason: String) -> Handled {
    info!(reason = %reason, "ignored");
    Handled::Ignored {
        reason,
        malformed: false,
    }
}

fn decided(report: &Report) -> Decided {
    let causes: Vec<String> = report
        .transitions
        .iter()
        .map(|t| t.cause.to_string())
        .collect();
    info!(
        endpoint = %report.endpoint_name,
        deployment_id = %report.deployment_id,
        phase = %report.phase.label(),
        causes = ?causes,
        actions = report.actions_performed,
        deferred = report.deferred.as_deref().unwrap_or(""),
        "decision"
    );
    Decided {
        endpoint: report.endpoint_name.clone(),
        deployment_id: report.deployment_id.clone(),
        phase: report.phase.label(),
        causes,
        ended: report.ended.clone(),
    }
}

/// Reads the event; a malformed one, or one from another account, is logged and acknowledged.
fn read(event: &Value, settings: &Settings) -> Result<Inbound, Handled> {
    parse(event, settings.account.as_deref()).map_err(|e| {
        warn!(error = %e, "malformed event acknowledged without retry");
        Handled::Ignored {
            reason: e.to_string(),
            malformed: true,
        }
    })
}

async fn reconcile(
    driver: &Driver,
    endpoint: &str,
    command: Option<&Command>,
) -> Result<Handled, HandlerError> {
    Ok(handled(
        endpoint,
        driver.reconcile(endpoint, command).await?,
    ))
}

fn handled(endpoint: &str, outcome: Outcome) -> Handled {
    match outcome {
        Outcome::NoDeployment => ignored(format!("no active deployment for endpoint {endpoint}")),
        Outcome::Reconciled(report) => Handled::Reconciled {
            deployments: vec![decided(&report)],
        },
    }
}

/// `start-deployment`, for events: approved model packages.
pub async fn start_deployment(
    driver: &Driver,
    settings: &Settings,
    event: &Value,
) -> Result<Handled, HandlerError> {
    let package = match read(event, settings) {
        Ok(Inbound::ModelPackageChanged(package)) => package,
        Ok(Inbound::Other {
            source,
            detail_type,
        }) if source == "guardrails"
            && [
                crate::inbound::DEPLOYMENT_REQUESTED,
                crate::inbound::DEPLOYMENT_COMMAND,
            ]
            .contains(&detail_type.as_str()) =>
        {
            return Ok(ignored(format!(
                "\"{detail_type}\" events are not accepted: anyone who may put events on a bus \
                 could send them; send the command to the function URL, signed (README, \
                 \"Security\")"
            )));
        }
        Ok(other) => {
            return Ok(ignored(format!(
                "start-deployment does not handle {other:?}"
            )));
        }
        Err(handled) => return Ok(handled),
    };
    if let Some(reason) = package.not_an_approval() {
        return Ok(ignored(reason));
    }
    let Some(target) = settings.package_targets.target(&package.group_name).await? else {
        return Ok(ignored(format!(
            "model package group {} has no package target",
            package.group_name
        )));
    };
    let model = crate::plan::sagemaker_name(&format!(
        "{}-{}",
        package.group_name,
        package
            .version
            .map_or_else(|| "latest".to_owned(), |v| v.to_string())
    ));
    let request = DeploymentRequest {
        endpoint_name: target.endpoint_name.clone(),
        model_name: Some(model),
        model_package_arn: Some(package.arn.clone()),
        instance_type: target.instance_type.clone(),
        instance_count: target.instance_count,
        green_variant: None,
        policy: target.policy.clone(),
        requested_by: Some(format!("model package approval {}", package.arn)),
        // The same version gives the same deployment: a repeated approval is recognised.
        deployment_id: Some(deployment_id_of_package(
            &target.endpoint_name,
            &package.arn,
        )),
        dry_run: false,
    };
    start(driver, settings, request, "", true).await
}

/// What the function URL answers (payload format 2.0's response: Lambda Developer Guide,
/// "Invoking Lambda function URLs", "Response payload format").
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub status_code: u16,
    pub headers: BTreeMap<String, String>,
    /// `Handled` as JSON.
    pub body: String,
    /// What was done, for callers in this process.
    #[serde(skip)]
    pub handled: Handled,
}

impl Answer {
    fn new(status_code: u16, handled: &Handled) -> Answer {
        Answer {
            status_code,
            headers: BTreeMap::from([("content-type".to_owned(), "application/json".to_owned())]),
            body: serde_json::to_string(handled).unwrap_or_default(),
            handled: handled.clone(),
        }
    }

    /// The answer to a `Handled`: a refusal is 409 when another deployment (active, or holding
    /// the id) is the reason, 422
    /// otherwise; everything else is 200.
    fn of(handled: &Handled) -> Answer {
        let status = match handled {
            Handled::Refused { reason, .. }
                if reason.contains("already has an active")
                    || reason.contains("ids are unique in the account") =>
            {
                409
            }
            Handled::Refused { .. } => 422,
            _ => 200,
        };
        Answer::new(status, handled)
    }

    fn refused(status: u16, endpoint: &str, reason: String) -> Answer {
        warn!(endpoint = %endpoint, reason = %reason, status, "command refused");
        Answer::new(
            status,
            &Handled::Refused {
                endpoint: endpoint.to_owned(),
                reason,
            },
        )
    }
}

/// The longest caller ARN read (IAM's ARNs are at most 2,048 characters).
const MAX_CALLER_CHARS: usize = 2_048;

/// `start-deployment`, for commands: a request to its function URL (`AWS_IAM` auth, so Lambda
/// has authenticated the caller and names it in `requestContext.authorizer.iam.userArn`). The
/// caller must be allowed the command by the stack's `*Principals`; what it does is recorded
/// under its ARN. Every refusal is answered, and published when it names an endpoint.
pub async fn command(
    driver: &Driver,
    settings: &Settings,
    request: &Value,
) -> Result<Answer, HandlerError> {
    use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
    let request: LambdaFunctionUrlRequest = match serde_json::from_value(request.clone()) {
        Ok(request) => request,
        Err(e) => {
            let reason = format!("not a function URL request: {e}");
            return Ok(Answer::refused(400, "", reason));
        }
    };
    let context = &request.request_context;
    let caller = context
        .authorizer
        .as_ref()
        .and_then(|a| a.iam.as_ref())
        .and_then(|iam| iam.user_arn.clone())
        .filter(|arn| !arn.is_empty() && arn.chars().count() <= MAX_CALLER_CHARS);
    let Some(caller) = caller else {
        let reason = "the request names no authenticated caller: the function URL must use \
                      the AWS_IAM auth type"
            .to_owned();
        return Ok(Answer::refused(403, "", reason));
    };
    let body = request.body.clone().unwrap_or_default();
    let body = if request.is_base64_encoded {
        match aws_smithy_types::base64::decode(&body) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => return Ok(Answer::refused(400, "", format!("body: not base64: {e}"))),
        }
    } else {
        body
    };
    let request_id = context.request_id.clone().unwrap_or_default();
    let refuse = async |status: u16, endpoint: &str, id: Option<String>, reason: String| {
        if !endpoint.is_empty() {
            publish_refusal(driver, endpoint, id, None, Some(caller.clone()), &reason).await?;
        }
        Ok::<Answer, HandlerError>(Answer::refused(status, endpoint, reason))
    };
    let sent = match crate::inbound::command(&body) {
        Ok(sent) => sent,
        Err(e) => {
            let status = if body.len() > crate::inbound::MAX_COMMAND_BYTES {
                413
            } else {
                400
            };
            let endpoint = e.endpoint_name.clone().unwrap_or_default();
            return refuse(status, &endpoint, None, e.message).await;
        }
    };
    let endpoint = sent.endpoint_name().to_owned();
    if let Err(reason) = settings.principals.allow(sent.verb(), &caller) {
        return refuse(403, &endpoint, None, reason).await;
    }
    info!(endpoint = %endpoint, caller = %caller, command = %sent.verb(), "command");
    match sent {
        Sent::Deploy(mut request) => {
            request.requested_by = Some(caller.clone());
            let handled = start(driver, settings, *request, &request_id, false).await?;
            Ok(Answer::of(&handled))
        }
        Sent::Approve(c) => {
            let command = Command::Approve { by: caller.clone() };
            person(driver, &c, command, Verb::Approve, &caller).await
        }
        Sent::Abort(c) => {
            let command = Command::Abort {
                by: caller.clone(),
                reason: c
                    .reason
                    .clone()
                    .unwrap_or_else(|| "no reason given".to_owned()),
            };
            person(driver, &c, command, Verb::Abort, &caller).await
        }
        Sent::Status(r) => read_status(driver, r.endpoint_name.as_deref()).await,
        Sent::History(r) => {
            let endpoint = r.endpoint_name.unwrap_or_default();
            let limit = r.limit.unwrap_or(crate::inbound::DEFAULT_HISTORY);
            let mut deployments = Vec::new();
            // A deployment that has ended is history from its final save on, also in the
            // moment before it is archived (its final event may be read first). The active
            // record is read first: archived after that read, it is in the history read next.
            let active = driver.store.load(&endpoint).await?;
            let mut past = driver.store.history(&endpoint, limit).await?;
            if let Some(ended) = active.filter(|s| {
                s.deployment.is_final()
                    && !past
                        .iter()
                        .any(|p| p.deployment.plan.deployment_id == s.deployment.plan.deployment_id)
            }) {
                past.insert(0, ended);
                past.truncate(limit);
            }
            for stored in past {
                let id = &stored.deployment.plan.deployment_id;
                let audit = driver.store.audit(&endpoint, id).await?;
                deployments.push(status::summary(&stored, &audit));
            }
            Ok(Answer::of(&Handled::History {
                endpoint,
                deployments,
            }))
        }
        Sent::Show(r) => read_one(driver, &r).await,
    }
}

/// `status`: every active deployment (or the endpoint's), with its watched alarms' states read
/// in one batched call.
async fn read_status(driver: &Driver, endpoint: Option<&str>) -> Result<Answer, HandlerError> {
    let endpoints = match endpoint {
        Some(e) => vec![e.to_owned()],
        None => driver.store.active_endpoints().await?,
    };
    let mut active = Vec::new();
    for e in &endpoints {
        if let Some(stored) = driver.store.load(e).await? {
            let audit = driver
                .store
                .audit(e, &stored.deployment.plan.deployment_id)
                .await?;
            active.push((stored, audit.last().cloned()));
        }
    }
    let names: Vec<&str> = active
        .iter()
        .flat_map(|(s, _)| s.deployment.plan.watched_alarm_names())
        .collect();
    let states = if names.is_empty() {
        BTreeMap::new()
    } else {
        driver.alarms.states(&names).await?
    };
    let now = driver.clock.now();
    let deployments = active
        .iter()
        .map(|(s, last)| status::status(s, last.as_ref(), &states, now))
        .collect();
    Ok(Answer::of(&Handled::Status { deployments }))
}

/// `show`: one deployment by id, active or past.
async fn read_one(driver: &Driver, r: &crate::inbound::ReadBody) -> Result<Answer, HandlerError> {
    let id = r.deployment_id.clone().unwrap_or_default();
    let found = driver.store.find(&id).await?;
    let record = match &found {
        Some((endpoint, started)) if r.endpoint_name.as_ref().is_none_or(|e| e == endpoint) => {
            driver.store.record(endpoint, &id, *started).await?
        }
        _ => None,
    };
    let Some(stored) = record else {
        let endpoint = r.endpoint_name.clone().unwrap_or_default();
        return Ok(Answer::refused(
            404,
            &endpoint,
            format!("no deployment {id}"),
        ));
    };
    let endpoint = stored.deployment.plan.endpoint_name.clone();
    let audit = driver.store.audit(&endpoint, &id).await?;
    let live = if stored.deployment.phase.is_final() {
        None
    } else {
        let names: Vec<&str> = stored.deployment.plan.watched_alarm_names().collect();
        let states = if names.is_empty() {
            BTreeMap::new()
        } else {
            driver.alarms.states(&names).await?
        };
        Some(status::status(
            &stored,
            audit.last(),
            &states,
            driver.clock.now(),
        ))
    };
    Ok(Answer::of(&Handled::Shown(Box::new(status::Shown::of(
        &stored, &audit, live,
    )))))
}

/// An approval or abort of the endpoint's active deployment (the one named, if named).
async fn person(
    driver: &Driver,
    c: &CommandBody,
    command: Command,
    verb: Verb,
    caller: &str,
) -> Result<Answer, HandlerError> {
    let endpoint = &c.endpoint_name;
    let active = driver.store.load(endpoint).await?;
    let active_id = active.map(|s| s.deployment.plan.deployment_id);
    let mismatch = match (&active_id, &c.deployment_id) {
        (None, _) => Some((
            404,
            format!("endpoint {endpoint} has no active deployment to {verb}"),
        )),
        (Some(active), Some(named)) if active != named => Some((
            409,
            format!(
                "deployment {named} is not active on {endpoint} ({active} is): nothing to {verb}"
            ),
        )),
        _ => None,
    };
    if let Some((status, reason)) = mismatch {
        let named = c.deployment_id.clone();
        publish_refusal(
            driver,
            endpoint,
            named,
            active_id,
            Some(caller.to_owned()),
            &reason,
        )
        .await?;
        return Ok(Answer::refused(status, endpoint, reason));
    }
    let handled = reconcile(driver, endpoint, Some(&command)).await?;
    Ok(Answer::of(&handled))
}

/// Publishes a "Guardrails Deployment Refused" event.
async fn publish_refusal(
    driver: &Driver,
    endpoint: &str,
    deployment_id: Option<String>,
    active_deployment_id: Option<String>,
    requested_by: Option<String>,
    reason: &str,
) -> Result<(), HandlerError> {
    let refusal = Refusal {
        schema_version: crate::events::SCHEMA_VERSION.to_owned(),
        endpoint_name: endpoint.to_owned(),
        deployment_id,
        active_deployment_id,
        requested_by,
        reason: reason.to_owned(),
    };
    driver.bus.refused(&refusal).await?;
    Ok(())
}

/// A refused call in words: `sagemaker:DescribeEndpoint refused: AccessDeniedException: ...`.
fn refused(e: &PortError) -> String {
    if e.api.is_empty() {
        format!("refused: {}", e.message)
    } else {
        format!("{} refused: {}", e.api, e.message)
    }
}

/// `[A-Za-z0-9-]`, at most 63 characters, no leading or trailing `-`: SageMaker's name rule.
/// `p-<version>-` and 12 hex digits of a hash of the endpoint and the version's ARN: the
/// deployment of one model package version to one endpoint, whichever event asks for it (ids
/// are unique in the account, so the same version on another endpoint has another id).
fn deployment_id_of_package(endpoint: &str, arn: &str) -> String {
    let version = arn.rsplit('/').next().unwrap_or_default();
    let version: String = version
        .chars()
        .filter(char::is_ascii_digit)
        .take(8)
        .collect();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in endpoint.bytes().chain([b'\n']).chain(arn.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("p-{version}-{:012x}", hash & 0xffff_ffff_ffff)
}

/// `d-` and the first 12 hex digits of the event id: the same event always gives the same
/// deployment, so a duplicated request is recognised.
fn deployment_id_from(event_id: &str) -> String {
    let hex: String = event_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    format!("d-{}", if hex.is_empty() { "0".to_owned() } else { hex })
}

async fn start(
    driver: &Driver,
    settings: &Settings,
    request: DeploymentRequest,
    event_id: &str,
    from_package: bool,
) -> Result<Handled, HandlerError> {
    let endpoint = request.endpoint_name.clone();
    let id = request
        .deployment_id
        .clone()
        .unwrap_or_else(|| deployment_id_from(event_id));
    let refuse = async |reason: String, active: Option<String>| -> Result<Handled, HandlerError> {
        let by = request.requested_by.clone();
        publish_refusal(driver, &endpoint, Some(id.clone()), active, by, &reason).await?;
        warn!(endpoint = %endpoint, deployment_id = %id, reason = %reason, "refused");
        Ok(Handled::Refused {
            endpoint: endpoint.clone(),
            reason,
        })
    };
    // First the deployments the endpoint already has: a request delivered again while its
    // deployment runs is that deployment (the plan would now see two variants), and one that
    // comes while another runs is told which (not a plan error about the fleet it changed).
    let active = driver.store.load(&endpoint).await?;
    let active_id = active
        .as_ref()
        .map(|s| s.deployment.plan.deployment_id.clone());
    if active_id.as_deref() == Some(id.as_str()) && !request.dry_run {
        return Ok(ignored(format!(
            "duplicate request: deployment {id} is already running on {endpoint}"
        )));
    }
    if let Some(other) = active_id.clone().filter(|_| !request.dry_run) {
        let reason = format!(
            "endpoint {endpoint} already has an active deployment ({other}); wait for it to end \
             or abort it"
        );
        return refuse(reason, Some(other)).await;
    }
    let policy = match &request.policy {
        Value::String(text) => Policy::parse(text),
        document => Policy::from_value(document),
    };
    let policy = match policy {
        Ok(policy) => policy,
        Err(e) => return refuse(e.to_string(), None).await,
    };
    // A call AWS refuses for good (access denied, an invalid request) is answered to the
    // sender as a refusal; one worth retrying is returned, so that Lambda retries the event.
    let fleet = match driver.endpoints.fleet(&endpoint).await {
        Ok(Some(fleet)) => fleet,
        Ok(None) => return refuse(format!("endpoint {endpoint} does not exist"), None).await,
        Err(e) if e.kind == ErrorKind::Refused => return refuse(refused(&e), None).await,
        Err(e) => return Err(e.into()),
    };
    let model = match (&request.model_name, &request.model_package_arn) {
        (Some(model), Some(package)) => {
            let Some(role) = &settings.model_role_arn else {
                let reason = "a model package needs GUARDRAILS_MODEL_ROLE_ARN to create its model";
                return refuse(reason.to_owned(), None).await;
            };
            // Only an approved, completed version is deployed, whoever names it.
            match driver.endpoints.model_package(package).await {
                Ok(Some(p)) if p.approval_status == "Approved" && p.status == "Completed" => {}
                Ok(Some(p)) => {
                    let reason = format!(
                        "model package {package} is {} and {}: only an Approved, Completed \
                         version is deployed",
                        p.approval_status, p.status
                    );
                    return refuse(reason, None).await;
                }
                Ok(None) => {
                    let reason = format!("model package {package} does not exist");
                    return refuse(reason, None).await;
                }
                Err(e) if e.kind == ErrorKind::Refused => {
                    return refuse(refused(&e), None).await;
                }
                Err(e) => return Err(e.into()),
            }
            match driver
                .endpoints
                .create_model_from_package(model, package, role)
                .await
            {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::Refused => {
                    return refuse(refused(&e), None).await;
                }
                Err(e) => return Err(e.into()),
            }
            model.clone()
        }
        (Some(model), None) => model.clone(),
        (None, _) => {
            let reason =
                "the request names no model (modelName, or modelPackageArn with modelName)";
            return refuse(reason.to_owned(), None).await;
        }
    };
    let blue = fleet.variants.first();
    let instance_type = request
        .instance_type
        .clone()
        .or_else(|| blue.map(|b| b.instance_type.clone()))
        .unwrap_or_default();
    let (engine, _) = crate::plan::engine_for(&policy, &fleet, &instance_type);
    let variant = match &request.green_variant {
        Some(named) => named.clone(),
        None => crate::plan::default_green_variant(engine, blue, &model),
    };
    let green = GreenSpec {
        variant_name: variant,
        model_name: model,
        instance_type,
        instance_count: request
            .instance_count
            .or_else(|| blue.map(|b| b.instance_count))
            .unwrap_or(1),
    };
    let mut plan = match Plan::new(&id, &policy, &fleet, &green) {
        Ok(plan) => plan,
        Err(e) => return refuse(e.to_string(), None).await,
    };
    plan.requested_by = request.requested_by.clone();
    // An approved version the endpoint already serves (approved again, or deployed by hand)
    // is not deployed again.
    if from_package
        && let Some(serving) = fleet
            .variants
            .iter()
            .find(|v| v.model_name == green.model_name)
    {
        return Ok(ignored(format!(
            "endpoint {endpoint} already serves model {} (variant {}): nothing to deploy",
            green.model_name, serving.variant_name
        )));
    }
    let preflight = match driver.preflight(&plan, &fleet, active_id.clone()).await {
        Ok(preflight) => preflight,
        Err(e) if e.kind == ErrorKind::Refused => {
            let reason = format!("the preflight checks could not run: {}", refused(&e));
            return refuse(reason, active_id).await;
        }
        Err(e) => return Err(e.into()),
    };
    let blocked = preflight.is_blocked().then(|| preflight.blocking_reasons());
    plan.scaling = preflight.scaling.clone();
    plan.preflight = Some(preflight);
    if request.dry_run {
        info!(endpoint = %endpoint, deployment_id = %id, blocked = blocked.is_some(), "dry run");
        return Ok(Handled::Planned {
            endpoint: endpoint.clone(),
            text: plan.to_string(),
            plan: Box::new(plan),
        });
    }
    if let Some(reasons) = blocked {
        return refuse(format!("preflight: {reasons}"), active_id).await;
    }
    match driver.start(plan).await {
        Ok(Outcome::Reconciled(report)) => Ok(Handled::Reconciled {
            deployments: vec![decided(&report)],
        }),
        Ok(Outcome::NoDeployment) => Ok(ignored(format!("deployment {id} ended at once"))),
        Err(DriverError::AlreadyActive {
            active_deployment, ..
        }) if active_deployment == id => Ok(ignored(format!(
            "duplicate request: deployment {id} is already running on {endpoint}"
        ))),
        Err(DriverError::AlreadyActive {
            active_deployment, ..
        }) => {
            let reason = format!(
                "endpoint {endpoint} already has an active deployment ({active_deployment}); \
                 wait for it to end or abort it"
            );
            refuse(reason, Some(active_deployment)).await
        }
        Err(DriverError::Duplicate { .. }) => Ok(ignored(format!(
            "duplicate request: deployment {id} already ran on {endpoint}"
        ))),
        Err(DriverError::Start(e)) => refuse(e.to_string(), None).await,
        // An id another endpoint used, or a table that refuses the write for good.
        Err(DriverError::Port(e)) if e.kind == ErrorKind::Refused => {
            refuse(refused(&e), None).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `endpoint-events`: SageMaker endpoint (deployment) state changes reconcile that endpoint.
/// An endpoint Guardrails does not manage costs one read.
pub async fn endpoint_events(
    driver: &Driver,
    settings: &Settings,
    event: &Value,
) -> Result<Handled, HandlerError> {
    match read(event, settings) {
        Ok(Inbound::EndpointChanged { endpoint_name }) => {
            reconcile(driver, &endpoint_name, None).await
        }
        Ok(other) => Ok(ignored(format!(
            "endpoint-events does not handle {other:?}"
        ))),
        Err(handled) => Ok(handled),
    }
}

/// `bake-watcher`: alarm state changes (the deployments watching that alarm), one-shot
/// wake-ups, and the one-minute sweep of every active deployment.
pub async fn bake_watcher(
    driver: &Driver,
    settings: &Settings,
    event: &Value,
) -> Result<Handled, HandlerError> {
    match read(event, settings) {
        Ok(Inbound::WakeUp(wake)) => {
            Ok(handled(&wake.endpoint, driver.woken(&wake.endpoint).await?))
        }
        Ok(Inbound::AlarmChanged(alarm)) => {
            // The alarm index: only the deployments that watch this alarm are read.
            let mut deployments = Vec::new();
            for endpoint in driver.store.watching(&alarm.alarm_name).await? {
                if let Outcome::Reconciled(report) = driver.reconcile(&endpoint, None).await? {
                    deployments.push(decided(&report));
                }
            }
            if deployments.is_empty() {
                return Ok(ignored(format!(
                    "no active deployment watches alarm {}",
                    alarm.alarm_name
                )));
            }
            Ok(Handled::Reconciled { deployments })
        }
        Ok(Inbound::SweepShard(shard)) => {
            let swept = Box::pin(driver.sweep_shard(&shard.endpoints, shard.shards)).await;
            swept_answer(&swept)
        }
        Ok(Inbound::Sweep) => {
            let swept = Box::pin(driver.sweep()).await?;
            // The safety net for pages: outcomes still unpaged two minutes after they happened
            // (their event was lost) are published again; the notifier pages once.
            let now = driver.clock.now();
            let before = crate::units::Timestamp::from_epoch_ms(now.epoch_ms() - UNPAGED_GRACE_MS);
            let unpaged = driver.store.unpaged(before).await?;
            if !unpaged.is_empty() {
                info!(
                    outcomes = unpaged.len(),
                    "publishing unpaged outcomes again"
                );
                driver.bus.publish(&unpaged).await?;
            }
            swept_answer(&swept)
        }
        Ok(other) => Ok(ignored(format!("bake-watcher does not handle {other:?}"))),
        Err(handled) => Ok(handled),
    }
}

/// A sweep's answer: what it decided; an error only when nothing could be reconciled.
fn swept_answer(swept: &crate::driver::Swept) -> Result<Handled, HandlerError> {
    if swept.reports.is_empty() && !swept.failures.is_empty() {
        return Err(HandlerError(swept.failures.join("; ")));
    }
    Ok(Handled::Reconciled {
        deployments: swept.reports.iter().map(decided).collect(),
    })
}

/// How long an outcome may wait for its page before the sweep publishes it again.
const UNPAGED_GRACE_MS: i64 = 120_000;

/// How long a claim to page may stay unsent before another invocation takes it over.
const PAGE_CLAIM_STALE_SECS: u32 = 60;

/// `rollback-notifier`: our state-change events for rollbacks and failures (and successes, if
/// configured) -> one page per outcome, and its record in the store.
pub async fn rollback_notifier(
    store: &dyn Store,
    pager: &dyn Pager,
    clock: &dyn Clock,
    settings: &Settings,
    event: &Value,
) -> Result<Handled, HandlerError> {
    let claimed = match read(event, settings) {
        Ok(Inbound::StateChanged(change)) => change,
        Ok(other) => {
            return Ok(ignored(format!(
                "rollback-notifier does not handle {other:?}"
            )));
        }
        Err(handled) => return Ok(handled),
    };
    // The event only says which deployment to look at: what pages is the outcome the table
    // holds, so a forged event can neither page nor take the real outcome's page.
    let (endpoint, id) = (&claimed.endpoint_name, &claimed.deployment_id);
    let Some((change, audit)) = store.outcome(endpoint, id).await? else {
        return Ok(ignored(format!(
            "deployment {id} on {endpoint} has no outcome in the table: an event's word is not \
             paged"
        )));
    };
    let wanted = match change.outcome {
        Some(PhaseKind::RolledBack | PhaseKind::Failed) => true,
        Some(PhaseKind::Succeeded) => settings.notify_successes,
        _ => false,
    };
    if !wanted {
        return Ok(ignored(format!(
            "deployment {id} ended {:?}: not an outcome that pages",
            change.state
        )));
    }
    match store
        .claim_page(endpoint, id, clock.now(), PAGE_CLAIM_STALE_SECS)
        .await?
    {
        PageClaim::AlreadySent => {
            return Ok(ignored(format!(
                "deployment {id} on {endpoint}: already paged"
            )));
        }
        PageClaim::InProgress => {
            return Err(HandlerError(format!(
                "deployment {id} on {endpoint}: another invocation is paging; retry later"
            )));
        }
        PageClaim::Claimed => {}
    }
    let message = page::page(&change, &audit, &settings.table);
    let message_id = pager.page(&message).await?;
    let sent = SentPage {
        message_id: message_id.clone(),
        subject: message.subject.clone(),
        sent_at: clock.now(),
    };
    store.page_sent(endpoint, id, &sent).await?;
    info!(endpoint = %endpoint, deployment_id = %id, subject = %message.subject, message_id = %message_id, "paged");
    Ok(Handled::Paged {
        endpoint: endpoint.clone(),
        deployment_id: id.clone(),
        subject: message.subject,
        message_id,
    })
}
