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

use crate::core::Command;
use crate::driver::{Driver, DriverError, Outcome, Report};
use crate::events::PhaseKind;
use crate::events::Refusal;
use crate::inbound::{DeploymentRequest, Inbound, parse};
use crate::page;
use crate::plan::{GreenSpec, Plan};
use crate::policy::Policy;
use crate::ports::{
    Clock, ErrorKind, PackageTargets, PageClaim, Pager, PortError, SentPage, Store,
};

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
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            package_targets: Arc::new(BTreeMap::<String, PackageTarget>::new()),
            model_role_arn: None,
            notify_successes: false,
            table: String::new(),
        }
    }
}

/// What a function did with one event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "handled", rename_all = "camelCase")]
pub enum Handled {
    /// Nothing to do (not ours, not for this function, or malformed); the reason is logged.
    Ignored { reason: String },
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
    Handled::Ignored { reason }
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
    }
}

/// Reads the event; a malformed one is logged and acknowledged.
fn read(event: &Value) -> Result<Inbound, Handled> {
    parse(event).map_err(|e| {
        warn!(error = %e, "malformed event acknowledged without retry");
        Handled::Ignored {
            reason: e.to_string(),
        }
    })
}

async fn reconcile(
    driver: &Driver,
    endpoint: &str,
    command: Option<&Command>,
) -> Result<Handled, HandlerError> {
    match driver.reconcile(endpoint, command).await? {
        Outcome::NoDeployment => Ok(ignored(format!(
            "no active deployment for endpoint {endpoint}"
        ))),
        Outcome::Reconciled(report) => Ok(Handled::Reconciled {
            deployments: vec![decided(&report)],
        }),
    }
}

/// `start-deployment`: deployment requests and approved model packages.
pub async fn start_deployment(
    driver: &Driver,
    settings: &Settings,
    event: &Value,
) -> Result<Handled, HandlerError> {
    let inbound = match read(event) {
        Ok(inbound) => inbound,
        Err(handled) => return Ok(handled),
    };
    let event_id = event.get("id").and_then(Value::as_str).unwrap_or_default();
    let from_package = matches!(inbound, Inbound::ModelPackageChanged(_));
    let request = match inbound {
        Inbound::DeploymentRequested(request) => *request,
        Inbound::ModelPackageChanged(package) => {
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
            DeploymentRequest {
                endpoint_name: target.endpoint_name.clone(),
                model_name: Some(model),
                model_package_arn: Some(package.arn.clone()),
                instance_type: target.instance_type.clone(),
                instance_count: target.instance_count,
                green_variant: None,
                policy: target.policy.clone(),
                requested_by: Some(format!("model package approval {}", package.arn)),
                // The same version gives the same deployment: a repeated approval is recognised.
                deployment_id: Some(deployment_id_of_package(&package.arn)),
                dry_run: false,
            }
        }
        other => {
            return Ok(ignored(format!(
                "start-deployment does not handle {other:?}"
            )));
        }
    };
    start(driver, settings, request, event_id, from_package).await
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
/// `p-<version>-` and 12 hex digits of a hash of the version's ARN: the deployment of one model
/// package version, whichever event asks for it.
fn deployment_id_of_package(arn: &str) -> String {
    let version = arn.rsplit('/').next().unwrap_or_default();
    let version: String = version
        .chars()
        .filter(char::is_ascii_digit)
        .take(8)
        .collect();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in arn.bytes() {
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
        let refusal = Refusal {
            schema_version: crate::events::SCHEMA_VERSION.to_owned(),
            endpoint_name: endpoint.clone(),
            deployment_id: Some(id.clone()),
            active_deployment_id: active,
            requested_by: request.requested_by.clone(),
            reason: reason.clone(),
        };
        driver.bus.refused(&refusal).await?;
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
        Err(e) => Err(e.into()),
    }
}

/// `endpoint-events`: SageMaker endpoint (deployment) state changes reconcile that endpoint.
/// An endpoint Guardrails does not manage costs one read.
pub async fn endpoint_events(driver: &Driver, event: &Value) -> Result<Handled, HandlerError> {
    match read(event) {
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
/// wake-ups, people's approvals and aborts, and the one-minute sweep of every active deployment.
pub async fn bake_watcher(driver: &Driver, event: &Value) -> Result<Handled, HandlerError> {
    match read(event) {
        Ok(Inbound::WakeUp(wake)) => reconcile(driver, &wake.endpoint, None).await,
        Ok(Inbound::Command(c)) => {
            let command = match c.command.as_str() {
                "approve" => Command::Approve { by: c.by },
                "abort" => Command::Abort {
                    by: c.by,
                    reason: c.reason.unwrap_or_else(|| "no reason given".to_owned()),
                },
                other => {
                    return Ok(ignored(format!(
                        "unknown command {other:?}: use approve or abort"
                    )));
                }
            };
            let active = driver.store.load(&c.endpoint_name).await?;
            match active {
                Some(s) if s.deployment.plan.deployment_id == c.deployment_id => {
                    reconcile(driver, &c.endpoint_name, Some(&command)).await
                }
                _ => Ok(ignored(format!(
                    "deployment {} is not active on {}",
                    c.deployment_id, c.endpoint_name
                ))),
            }
        }
        Ok(Inbound::AlarmChanged(alarm)) => {
            let mut deployments = Vec::new();
            for endpoint in driver.store.active_endpoints().await? {
                let Some(stored) = driver.store.load(&endpoint).await? else {
                    continue;
                };
                let watched = stored
                    .deployment
                    .plan
                    .watched_alarm_names()
                    .any(|n| n == alarm.alarm_name);
                if watched
                    && let Outcome::Reconciled(report) = driver.reconcile(&endpoint, None).await?
                {
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
        Ok(Inbound::Sweep) => {
            let mut deployments = Vec::new();
            let mut failures = Vec::new();
            for endpoint in driver.store.active_endpoints().await? {
                // One endpoint's trouble must not stop the sweep of the others.
                match driver.reconcile(&endpoint, None).await {
                    Ok(Outcome::Reconciled(report)) => deployments.push(decided(&report)),
                    Ok(Outcome::NoDeployment) => {}
                    Err(e) => {
                        warn!(endpoint = %endpoint, error = %e, "sweep could not reconcile");
                        failures.push(format!("{endpoint}: {e}"));
                    }
                }
            }
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
            if deployments.is_empty() && !failures.is_empty() {
                return Err(HandlerError(failures.join("; ")));
            }
            Ok(Handled::Reconciled { deployments })
        }
        Ok(other) => Ok(ignored(format!("bake-watcher does not handle {other:?}"))),
        Err(handled) => Ok(handled),
    }
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
    let change = match read(event) {
        Ok(Inbound::StateChanged(change)) => change,
        Ok(other) => {
            return Ok(ignored(format!(
                "rollback-notifier does not handle {other:?}"
            )));
        }
        Err(handled) => return Ok(handled),
    };
    let wanted = match change.outcome {
        Some(PhaseKind::RolledBack | PhaseKind::Failed) => true,
        Some(PhaseKind::Succeeded) => settings.notify_successes,
        _ => false,
    };
    if !wanted {
        return Ok(ignored(format!(
            "deployment {} moved to {:?}: not an outcome that pages",
            change.deployment_id, change.state
        )));
    }
    let (endpoint, id) = (&change.endpoint_name, &change.deployment_id);
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
    let audit = store.audit(endpoint, id).await?;
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
