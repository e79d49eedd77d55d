//! One small trait per capability the driver needs from the world: the endpoint (SageMaker),
//! alarms (CloudWatch), the store (DynamoDB), the event bus (EventBridge), wake-ups
//! (EventBridge Scheduler) and the clock. The AWS adapters implement them on the SDK; in-memory
//! ones (`memory`) serve tests and the simulation. No SDK type appears here.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::core::{AlarmView, ConfigVariant, Deployment, EndpointView, Sample, Transition};
use crate::events::{Refusal, StateChange};
use crate::plan::{Fleet, ScalableTarget, Suspended};
use crate::policy::{AlarmTemplate, ComparedMetric, DeploymentConfig};
use crate::preflight::AlarmDefinition;
use crate::units::{Share, Timestamp};

/// What went wrong in a call to the world, classified by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {}{message}", if api.is_empty() { String::new() } else { format!("{api}: ") })]
pub struct PortError {
    pub kind: ErrorKind,
    /// The AWS API that answered, as IAM names it (`sagemaker:UpdateEndpoint`); empty when the
    /// error did not come from one call.
    pub api: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// SageMaker's `Cannot update in-progress endpoint`: not now, try on the next wake-up.
    InProgress,
    /// Rate limited: back off and try again.
    Throttled,
    /// A conditional write lost: someone else changed the record first.
    Conflict,
    /// A deployment is already active for this endpoint.
    AlreadyActive,
    /// This deployment id was used before (a request delivered again after its deployment
    /// ended): the deployment is not run twice.
    Duplicate,
    /// AWS will never accept this call as it is: access denied, a validation error (a model
    /// that does not exist, an invalid instance type), a quota of zero, an answer that cannot be
    /// read. Retrying cannot help; the deployment must end (DESIGN.md invariant 8).
    Refused,
    /// Anything else that may pass (network, 5xx, throttling past its retries): try again
    /// later, a bounded number of times.
    Transient,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::InProgress => "endpoint update in progress",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Conflict => "conflicting write",
            ErrorKind::AlreadyActive => "deployment already active",
            ErrorKind::Duplicate => "deployment id already used",
            ErrorKind::Refused => "refused",
            ErrorKind::Transient => "transient error",
        })
    }
}

impl PortError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> PortError {
        PortError {
            kind,
            api: String::new(),
            message: message.into(),
        }
    }

    /// The same error, naming the API that gave it.
    pub fn from_api(mut self, api: &str) -> PortError {
        api.clone_into(&mut self.api);
        self
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self.kind, ErrorKind::Refused | ErrorKind::Duplicate)
    }
}

pub type PortResult<T> = Result<T, PortError>;

/// Why a deployment id another endpoint used is refused.
pub fn id_taken(id: &str, owner: &str) -> String {
    format!(
        "deployment id {id} was already used on endpoint {owner}: ids are unique in the account \
         (Guardrails names configs and alarms after them); choose another deploymentId"
    )
}

/// SageMaker, as the variant engine uses it.
#[async_trait]
pub trait Endpoints: Send + Sync {
    /// DescribeEndpoint; `None` when the endpoint does not exist.
    async fn describe(&self, endpoint: &str) -> PortResult<Option<EndpointView>>;
    /// CreateEndpointConfig of `config` with `variants` and every other setting of
    /// `from_config`; an existing config of that name counts as done.
    async fn create_config(
        &self,
        config: &str,
        from_config: &str,
        variants: &[ConfigVariant],
    ) -> PortResult<()>;
    /// UpdateEndpoint to `config`; with a `DeploymentConfig`, SageMaker runs the rollout under
    /// its own guardrails (native engine).
    async fn update_endpoint(
        &self,
        endpoint: &str,
        config: &str,
        guardrails: Option<&DeploymentConfig>,
        retain_variant_properties: bool,
    ) -> PortResult<()>;
    /// UpdateEndpointWeightsAndCapacities: blue at `1 - green_share`, green at `green_share`.
    async fn set_weights(
        &self,
        endpoint: &str,
        blue: &str,
        green: &str,
        green_share: Share,
    ) -> PortResult<()>;
    /// UpdateEndpointWeightsAndCapacities: `variant` at `count` instances.
    async fn set_instance_count(&self, endpoint: &str, variant: &str, count: u32)
    -> PortResult<()>;
    /// DeleteEndpointConfig; a missing config counts as done.
    async fn delete_config(&self, config: &str) -> PortResult<()>;
    /// The endpoint's current fleet (its config and production variants); `None` when the
    /// endpoint does not exist.
    async fn fleet(&self, endpoint: &str) -> PortResult<Option<Fleet>>;
    /// CreateModel from a model package (an existing model of that name counts as done).
    async fn create_model_from_package(
        &self,
        model: &str,
        package_arn: &str,
        role_arn: &str,
    ) -> PortResult<()>;
    /// Whether the model exists (DescribeModel), for the preflight; `None`: not looked at.
    async fn model_exists(&self, _model: &str) -> PortResult<Option<bool>> {
        Ok(None)
    }
    /// The endpoint's tags (ListTags), for the preflight; `None`: not looked at.
    async fn endpoint_tags(&self, _endpoint: &str) -> PortResult<Option<Vec<(String, String)>>> {
        Ok(None)
    }
    /// What kind of endpoint `config` makes (DescribeEndpointConfig), for the preflight;
    /// `None`: not looked at.
    async fn endpoint_kind(&self, _config: &str) -> PortResult<Option<EndpointKind>> {
        Ok(None)
    }
    /// The account's quota of `instance_type` instances for endpoints (Service Quotas), for
    /// the preflight; `None`: not looked at, or no such quota.
    async fn instance_quota(&self, _instance_type: &str) -> PortResult<Option<u32>> {
        Ok(None)
    }
    /// Application Auto Scaling: the variant's scalable target (`None`: it has none, or this
    /// port cannot tell).
    async fn scalable_target(
        &self,
        _endpoint: &str,
        _variant: &str,
    ) -> PortResult<Option<ScalableTarget>> {
        Ok(None)
    }
    /// RegisterScalableTarget of the variant's target with `suspended` as its SuspendedState.
    async fn set_scaling(
        &self,
        _endpoint: &str,
        _variant: &str,
        _suspended: Suspended,
    ) -> PortResult<()> {
        Ok(())
    }
    /// DescribeModelPackage; `None` when it does not exist.
    async fn model_package(&self, _arn: &str) -> PortResult<Option<PackageView>> {
        Ok(None)
    }
}

/// A model package version as DescribeModelPackage describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageView {
    pub arn: String,
    /// `Approved`, `Rejected` or `PendingManualApproval`.
    pub approval_status: String,
    /// `Pending`, `InProgress`, `Completed`, `Failed` or `Deleting`.
    pub status: String,
}

/// Where the approved versions of a model package group deploy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PackageTarget {
    pub endpoint_name: String,
    pub policy: serde_json::Value,
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub instance_count: Option<u32>,
}

/// The package targets, by model package group (Parameter Store on AWS).
#[async_trait]
pub trait PackageTargets: Send + Sync + fmt::Debug {
    /// The target of `group`; `None` when it has none.
    async fn target(&self, group: &str) -> PortResult<Option<PackageTarget>>;
}

/// Targets held in memory (tests, and a stack with no store of them).
#[async_trait]
impl PackageTargets for BTreeMap<String, PackageTarget> {
    async fn target(&self, group: &str) -> PortResult<Option<PackageTarget>> {
        Ok(self.get(group).cloned())
    }
}

/// The kinds of endpoint an endpoint config makes, as far as the engines care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EndpointKind {
    /// `AsyncInferenceConfig` is set.
    pub asynchronous: bool,
    /// A variant is serverless (`ServerlessConfig`).
    pub serverless: bool,
    /// The variants host inference components (no `ModelName` of their own).
    pub inference_components: bool,
}

/// An alarm Guardrails creates for the green variant.
#[derive(Debug, Clone, PartialEq)]
pub struct GreenAlarm<'a> {
    pub alarm_name: &'a str,
    pub endpoint_name: &'a str,
    pub variant_name: &'a str,
    pub template: &'a AlarmTemplate,
}

/// CloudWatch alarms.
#[async_trait]
pub trait Alarms: Send + Sync {
    /// The state of each named alarm that exists (DescribeAlarms, at most 100 names a call).
    async fn states(&self, names: &[&str]) -> PortResult<BTreeMap<String, AlarmView>>;
    /// PutMetricAlarm for a green-scoped alarm (creating or replacing it).
    async fn put_green_alarm(&self, alarm: GreenAlarm<'_>) -> PortResult<()>;
    /// DeleteAlarms; missing alarms count as done.
    async fn delete_alarms(&self, names: &[String]) -> PortResult<()>;
    /// Puts Guardrails' own alarm `name` into ALARM with `reason` (SetAlarmState).
    async fn raise(&self, name: &str, reason: &str) -> PortResult<()>;
    /// The named alarms that went into ALARM at or after `since` (DescribeAlarmHistory), each
    /// with the time and reason of its first time: evidence that outlasts a short-lived ALARM.
    async fn fired_since(
        &self,
        names: &[&str],
        since: Timestamp,
    ) -> PortResult<BTreeMap<String, (Timestamp, String)>>;
    /// The definitions of the named alarms that exist (DescribeAlarms), for preflight checks.
    async fn definitions(&self, names: &[&str]) -> PortResult<BTreeMap<String, AlarmDefinition>>;
    /// Whether `alarm`'s metric has a datapoint between `since` and `until` (GetMetricData).
    async fn has_data(
        &self,
        alarm: &AlarmDefinition,
        since: Timestamp,
        until: Timestamp,
    ) -> PortResult<bool>;
}

/// What the judge reads: one comparison's counts on each side, per period.
#[derive(Debug, Clone, PartialEq)]
pub struct CountsQuery<'a> {
    pub endpoint_name: &'a str,
    pub blue_variant: &'a str,
    pub green_variant: &'a str,
    /// Per fleet: each side's `EndpointConfigName` as a dimension too (the native engine, whose
    /// fleets may share a variant's name); `None` reads per variant.
    pub fleets: Option<(&'a str, &'a str)>,
    pub metric: &'a ComparedMetric,
    pub period_secs: u32,
    /// Complete periods from `from` up to `to` (both on period boundaries).
    pub from: Timestamp,
    pub to: Timestamp,
}

/// CloudWatch's per-variant metrics, for the judge.
#[async_trait]
pub trait Metrics: Send + Sync {
    /// Each period's requests and bad requests on both sides, oldest first; periods where
    /// neither side has data are left out.
    async fn counts(&self, query: &CountsQuery<'_>) -> PortResult<Vec<Sample>>;
}

/// The hooks the policy names (Lambda's `Invoke`, `RequestResponse`).
#[async_trait]
pub trait Hooks: Send + Sync {
    /// Asks the hook and reads its answer (`core::HookAnswer::from_invocation`); a call with no
    /// answer within `core::HOOK_CALL_SECS` is `HookAnswer::no_answer`. An invocation Lambda
    /// refuses (no such function, access denied) is an error, `Refused`.
    async fn ask(&self, call: &crate::core::HookCall) -> PortResult<crate::core::HookAnswer>;
}

/// What the store keeps for an endpoint's active deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub deployment: Deployment,
    /// Incremented by every save; saves are conditional on it.
    pub version: u64,
    /// Transitions recorded so far (the next audit entry's sequence number).
    pub transitions: u64,
    /// Decided but not yet known to be done: performed again by the next invocation if the
    /// one that decided them died before finishing.
    pub outbox: Outbox,
    /// The wake-up Scheduler was last asked for, once it said yes (`Store::wake_scheduled`):
    /// whether the next one replaces a pending schedule or creates one (`wake::needed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<Timestamp>,
}

/// Work decided and saved before it is performed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Outbox {
    pub actions: Vec<crate::core::Action>,
    pub events: Vec<StateChange>,
}

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.events.is_empty()
    }
}

/// One audit entry: a transition with its cause, in the deployment's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub deployment_id: String,
    pub sequence: u64,
    pub transition: Transition,
    /// Green's share of requests (percent) as observed when the transition was decided.
    #[serde(default)]
    pub observed_green_percent: Option<f64>,
    /// The judge's answer when the transition was decided, if it compares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judgement: Option<crate::core::Judgement>,
}

/// The deployments table.
#[async_trait]
pub trait Store: Send + Sync {
    /// The endpoint's active deployment, if any.
    async fn load(&self, endpoint: &str) -> PortResult<Option<Stored>>;
    /// Creates the active deployment; `AlreadyActive` if the endpoint has one, `Duplicate` if
    /// its deployment id was ever used on this endpoint, `Refused` (with `id_taken`'s words) if
    /// on another: ids are unique in the account, since the configs and alarms Guardrails
    /// creates are named after them.
    async fn create(&self, record: &Stored, audit: &[AuditEntry]) -> PortResult<()>;
    /// Replaces the active record if its version is still `expected_version`, appending
    /// `audit` in the same write; `Conflict` otherwise.
    async fn save(
        &self,
        record: &Stored,
        expected_version: u64,
        audit: &[AuditEntry],
    ) -> PortResult<()>;
    /// Moves a final record from active to history (if its version is still
    /// `expected_version`), freeing the endpoint for the next deployment.
    async fn archive(&self, record: &Stored, expected_version: u64) -> PortResult<()>;
    /// Endpoints with an active deployment (the sweep's sparse index).
    async fn active_endpoints(&self) -> PortResult<Vec<String>>;
    /// Endpoints whose active deployment watches the alarm `alarm_name`, sorted: the alarm
    /// index, written with the deployment and removed when it is archived, so that an alarm's
    /// state change reads only the deployments that watch it.
    async fn watching(&self, alarm_name: &str) -> PortResult<Vec<String>>;
    /// The active records of those of `endpoints` that have one, in no particular order: the
    /// sweep's batched read (DynamoDB's `BatchGetItem`, 100 keys a call).
    async fn load_many(&self, endpoints: &[String]) -> PortResult<Vec<Stored>> {
        let mut records = Vec::new();
        for endpoint in endpoints {
            records.extend(self.load(endpoint).await?);
        }
        Ok(records)
    }
    /// Records that Scheduler holds a wake-up at `at` for the endpoint's active deployment
    /// `deployment_id` (nothing if that deployment is no longer active). It does not change the
    /// record's version: it is a note beside the record, not a decision.
    async fn wake_scheduled(
        &self,
        endpoint: &str,
        deployment_id: &str,
        at: Timestamp,
    ) -> PortResult<()>;
    /// The audit entries of a deployment, in order.
    async fn audit(&self, endpoint: &str, deployment_id: &str) -> PortResult<Vec<AuditEntry>>;
    /// Claims the right to page about a deployment's outcome, so that one page is sent per
    /// outcome: `Claimed` (go ahead), `AlreadySent`, or `InProgress` (another invocation holds
    /// a claim younger than `stale_after_secs`; retry later). A stale claim is taken over: its
    /// holder died before sending.
    async fn claim_page(
        &self,
        endpoint: &str,
        deployment_id: &str,
        now: Timestamp,
        stale_after_secs: u32,
    ) -> PortResult<PageClaim>;
    /// The final events of rolled-back or failed deployments that ended before `before` and have
    /// not been paged about: the sweep publishes them again, so a lost event still pages.
    async fn unpaged(&self, before: Timestamp) -> PortResult<Vec<StateChange>>;
    /// Records the page as sent (the notifier's audit record).
    async fn page_sent(
        &self,
        endpoint: &str,
        deployment_id: &str,
        sent: &SentPage,
    ) -> PortResult<()>;
    /// The endpoint's past deployments, newest first, at most `limit`.
    async fn history(&self, endpoint: &str, limit: usize) -> PortResult<Vec<Stored>>;
    /// Which endpoint ran deployment `deployment_id`, and when it started (ids are unique in
    /// the account).
    async fn find(&self, deployment_id: &str) -> PortResult<Option<(String, Timestamp)>>;
    /// A deployment's record, active or past, by its id and the time it started.
    async fn record(
        &self,
        endpoint: &str,
        deployment_id: &str,
        started_at: Timestamp,
    ) -> PortResult<Option<Stored>>;

    /// How a deployment ended, from the table alone (its audit trail and its record), with its
    /// audit trail; `None` while it has not ended or if there is no such deployment. What the
    /// notifier pages from: an event only says which deployment to look at.
    async fn outcome(
        &self,
        endpoint: &str,
        deployment_id: &str,
    ) -> PortResult<Option<(StateChange, Vec<AuditEntry>)>> {
        let audit = self.audit(endpoint, deployment_id).await?;
        let (Some(first), Some(last)) = (audit.first(), audit.last()) else {
            return Ok(None);
        };
        if !last.transition.to.is_final() {
            return Ok(None);
        }
        let Some(record) = self
            .record(endpoint, deployment_id, first.transition.at)
            .await?
        else {
            return Ok(None);
        };
        let observed = last.observed_green_percent.and_then(Share::from_percent);
        let change = StateChange::new(
            &record.deployment,
            &last.transition,
            last.sequence,
            observed,
        );
        Ok(Some((change, audit)))
    }
}

/// The outcome of `Store::claim_page`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageClaim {
    Claimed,
    AlreadySent,
    InProgress,
}

/// What was paged, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentPage {
    pub message_id: String,
    pub subject: String,
    pub sent_at: Timestamp,
}

/// A message to on-call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    pub subject: String,
    pub body: String,
    /// For subscribers' filter policies and other machines.
    pub attributes: BTreeMap<String, String>,
}

/// Where pages go (SNS).
#[async_trait]
pub trait Pager: Send + Sync {
    /// Sends the page; returns the message id.
    async fn page(&self, page: &Page) -> PortResult<String>;
}

/// EventBridge, for our own events.
#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, events: &[StateChange]) -> PortResult<()>;
    /// Publishes a "Guardrails Deployment Refused" event.
    async fn refused(&self, refusal: &Refusal) -> PortResult<()>;
    /// Publishes a "Guardrails Sweep Shard" event per shard, for other invocations.
    async fn fan_out(&self, shards: &[crate::events::SweepShard]) -> PortResult<()>;
}

/// One-shot wake-ups (EventBridge Scheduler).
#[async_trait]
pub trait Waker: Send + Sync {
    /// Makes sure the endpoint is reconciled at `at`. `replace`: a wake-up for it is believed
    /// pending, so it is updated rather than created (either way, the other call is the
    /// fallback when the belief is wrong).
    async fn wake_at(
        &self,
        endpoint: &str,
        deployment_id: &str,
        at: Timestamp,
        replace: bool,
    ) -> PortResult<()>;
}

/// The only reader of time.
#[async_trait]
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
    async fn sleep(&self, duration: Duration);
}
