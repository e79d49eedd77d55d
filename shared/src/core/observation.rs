//! What the core sees of the world: the endpoint as DescribeEndpoint shows it and the state of
//! the watched alarms. Built by the driver from AWS responses or events; no SDK type enters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::units::{Share, Timestamp};

/// One look at the world, taken just before deciding.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Observation {
    /// `None` when SageMaker says the endpoint does not exist.
    pub endpoint: Option<EndpointView>,
    /// The watched alarms that exist, by name; a watched alarm absent here does not exist.
    pub alarms: BTreeMap<String, AlarmView>,
    /// Native engine, once SageMaker has stopped working: the watched alarms that went into
    /// ALARM since the deployment started, with when and why (from the alarms' history).
    #[serde(default)]
    pub alarms_fired: BTreeMap<String, (Timestamp, String)>,
    /// The judge's counts since green first served, per comparison of the analysis (GetMetricData);
    /// `None` when they were not read.
    #[serde(default)]
    pub judged: Option<Vec<Vec<super::Sample>>>,
    /// The answer of the hook this phase asks, when it was asked for this look
    /// (`Deployment::hook_call`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<super::HookAnswer>,
    /// The look that failed, if one did: then `endpoint` and `alarms` say nothing about the
    /// world, and the core decides nothing that depends on them.
    #[serde(default)]
    pub unseen: Option<Unseen>,
}

/// A call of the look that failed: which API, and what AWS said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unseen {
    /// IAM's name of the call: `sagemaker:DescribeEndpoint`.
    pub api: String,
    pub message: String,
    /// AWS will not answer this call as it is (access denied, invalid): looking again cannot
    /// help. Otherwise it may pass (5xx, network, throttling).
    pub permanent: bool,
}

impl Observation {
    /// A look that failed at `api`.
    pub fn unseen(api: &str, message: &str, permanent: bool) -> Observation {
        Observation {
            unseen: Some(Unseen {
                api: api.to_owned(),
                message: message.to_owned(),
                permanent,
            }),
            ..Observation::default()
        }
    }
}

/// The endpoint as DescribeEndpoint describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointView {
    pub status: EndpointStatus,
    /// The config the endpoint serves now.
    pub config_name: String,
    /// `PendingDeploymentSummary.EndpointConfigName`: the config being rolled out, if any.
    pub pending_config_name: Option<String>,
    pub failure_reason: Option<String>,
    pub variants: Vec<VariantView>,
    /// `PendingDeploymentSummary.ProductionVariants[].VariantStatus`: what SageMaker is doing
    /// in a deployment it runs (native engine), in SageMaker's words.
    #[serde(default)]
    pub progress: Vec<Progress>,
}

/// One `VariantStatus` entry of the fleet being deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub variant_name: String,
    /// `Creating`, `Updating`, `Deleting`, `ActivatingTraffic` or `Baking`.
    pub status: String,
    pub message: String,
}

/// One production variant of the serving config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantView {
    pub variant_name: String,
    pub current_weight: f64,
    pub current_instance_count: u32,
    pub desired_instance_count: u32,
}

/// SageMaker's `EndpointStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndpointStatus {
    OutOfService,
    Creating,
    Updating,
    SystemUpdating,
    RollingBack,
    InService,
    Deleting,
    Failed,
    UpdateRollbackFailed,
}

impl EndpointStatus {
    /// SageMaker refuses changes in these states (`Cannot update in-progress endpoint`); they
    /// end on their own.
    pub fn is_busy(self) -> bool {
        matches!(
            self,
            EndpointStatus::Creating
                | EndpointStatus::Updating
                | EndpointStatus::SystemUpdating
                | EndpointStatus::RollingBack
        )
    }

    /// States from which Guardrails cannot bring the endpoint back.
    pub fn is_broken(self) -> bool {
        matches!(
            self,
            EndpointStatus::OutOfService
                | EndpointStatus::Deleting
                | EndpointStatus::Failed
                | EndpointStatus::UpdateRollbackFailed
        )
    }
}

/// The state of one alarm, with CloudWatch's reason (it names the datapoints that tripped it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmView {
    pub state: AlarmState,
    pub reason: String,
    /// When the alarm entered this state (`StateUpdatedTimestamp`), when CloudWatch said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

/// How far the serving weights are allowed to differ from a target share: SageMaker stores
/// weights as floats, so an exact comparison would never settle.
const SHARE_TOLERANCE: f64 = 0.000_1;

impl EndpointView {
    pub fn variant(&self, name: &str) -> Option<&VariantView> {
        self.variants.iter().find(|v| v.variant_name == name)
    }

    /// The share of requests `variant` receives: its weight over the sum of weights (zero if
    /// absent or if every weight is zero).
    pub fn share_of(&self, variant: &str) -> f64 {
        let total: f64 = self
            .variants
            .iter()
            .map(|v| v.current_weight.max(0.0))
            .sum();
        match self.variant(variant) {
            Some(v) if total > 0.0 => v.current_weight.max(0.0) / total,
            _ => 0.0,
        }
    }

    /// Whether `variant` receives `share` of requests, within float tolerance.
    pub fn serves_share(&self, variant: &str, share: Share) -> bool {
        (self.share_of(variant) - share.fraction()).abs() <= SHARE_TOLERANCE
    }
}
