//! Checks before any change, for both engines: is the endpoint ready, will the watched alarms
//! actually guard this deployment, does the policy fit the endpoint, is anything else running.
//! Pure: the caller gathers what the checks look at (`Look`), the checks judge it. A blocking
//! finding refuses the deployment; a warning is shown in the plan and kept in the record.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::core::{AlarmState, EndpointStatus, EndpointView};
use crate::plan::{Fleet, Plan, ScalableTarget};
use crate::policy::Engine;
use crate::ports::EndpointKind;

/// How long without a datapoint makes an alarm's metric "without recent data".
pub const RECENT_DATA_SECS: u32 = 900;

/// An existing alarm as DescribeAlarms describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmDefinition {
    pub state: AlarmState,
    /// `None` for an alarm on metric math or a composite alarm: its metric is not judged.
    pub metric: Option<AlarmMetric>,
}

/// The single metric an alarm watches and how it compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmMetric {
    pub namespace: String,
    pub metric_name: String,
    /// `Average`, `Sum`, ... or a percentile (`p99`).
    pub statistic: String,
    pub dimensions: Vec<(String, String)>,
    /// CloudWatch's operator name (`GreaterThanOrEqualToThreshold`...).
    pub comparison: String,
    pub threshold: f64,
    pub period_secs: u32,
}

/// What the checks look at, gathered just before a deployment starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Look {
    /// DescribeEndpoint; `None` when the endpoint does not exist.
    pub endpoint: Option<EndpointView>,
    /// The endpoint's fleet (config and variants).
    pub fleet: Option<Fleet>,
    /// The named (existing) alarms that exist, by name.
    pub alarms: BTreeMap<String, AlarmDefinition>,
    /// Alarms whose metric has had a datapoint in the last `RECENT_DATA_SECS`.
    pub alarms_with_recent_data: Vec<String>,
    /// The deployment already active on the endpoint, if any.
    pub active_deployment: Option<String>,
    /// Whether the new model exists (`None`: not looked at).
    pub model_exists: Option<bool>,
    /// The endpoint's tags (`None`: not looked at).
    pub endpoint_tags: Option<Vec<(String, String)>>,
    /// The kind of endpoint its config makes (`None`: not looked at).
    pub kind: Option<EndpointKind>,
    /// The account's instance quota of each instance type the plan runs (absent: not known).
    pub quotas: BTreeMap<String, u32>,
    /// Blue's variant's Application Auto Scaling target (`None`: none, or not looked at).
    pub scaling: Option<ScalableTarget>,
}

/// The tag an endpoint carries for Guardrails to change it (`infra/template.yaml` allows
/// `UpdateEndpoint` and `UpdateEndpointWeightsAndCapacities` only on endpoints with it).
pub const OPT_IN_TAG: (&str, &str) = ("guardrails:managed", "true");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The deployment does not start.
    Blocking,
    /// Shown and recorded; the deployment starts.
    Warning,
    /// What the check found and what the deployment will do about it.
    Info,
}

/// One check's finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// A stable identifier, for machines and the README (`alarm-missing`).
    pub check: String,
    pub severity: Severity,
    pub message: String,
}

/// Every check that ran, and what they found.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preflight {
    /// The checks that ran, by identifier, in order.
    pub checked: Vec<String>,
    pub findings: Vec<Finding>,
    /// Blue's variant's scalable target, as found (the plan keeps it to restore at the end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<ScalableTarget>,
}

impl Preflight {
    pub fn is_blocked(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Blocking)
    }

    /// The blocking findings, one per line.
    pub fn blocking_reasons(&self) -> String {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Blocking)
            .map(|f| format!("{} ({})", f.message, f.check))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl fmt::Display for Preflight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Preflight, before any change:")?;
        for check in &self.checked {
            let found: Vec<&Finding> = self.findings.iter().filter(|x| &x.check == check).collect();
            if found.is_empty() {
                writeln!(f, "  ok        {check}")?;
            }
            for finding in found {
                let label = match finding.severity {
                    Severity::Blocking => "BLOCKING",
                    Severity::Warning => "warning",
                    Severity::Info => "info",
                };
                writeln!(f, "  {label:<9} {check}: {}", finding.message)?;
            }
        }
        Ok(())
    }
}

/// Error metrics SageMaker publishes as 1 per failed request, else 0: their Average is the
/// error fraction, at most 1.
const ERROR_METRICS: [&str; 3] = ["Invocation5XXErrors", "Invocation4XXErrors", "ModelError"];

struct Checks<'a> {
    plan: &'a Plan,
    look: &'a Look,
    result: Preflight,
}

impl Checks<'_> {
    fn check(&mut self, id: &str) {
        self.result.checked.push(id.to_owned());
    }

    fn find(&mut self, id: &str, severity: Severity, message: String) {
        self.result.findings.push(Finding {
            check: id.to_owned(),
            severity,
            message,
        });
    }
}

/// Runs every check that applies to `plan` against `look`.
pub fn check(plan: &Plan, look: &Look) -> Preflight {
    let mut c = Checks {
        plan,
        look,
        result: Preflight::default(),
    };
    endpoint(&mut c);
    active(&mut c);
    model(&mut c);
    opt_in(&mut c);
    kind(&mut c);
    quota(&mut c);
    scaling(&mut c);
    alarms(&mut c);
    timeout(&mut c);
    if plan.engine == Engine::Native {
        native(&mut c);
    }
    c.result
}

fn endpoint(c: &mut Checks<'_>) {
    const ID: &str = "endpoint-in-service";
    c.check(ID);
    let name = &c.plan.endpoint_name;
    match &c.look.endpoint {
        None => c.find(
            ID,
            Severity::Blocking,
            format!("endpoint {name} does not exist"),
        ),
        Some(e) if e.status != EndpointStatus::InService => {
            let reason = e
                .failure_reason
                .as_deref()
                .filter(|r| !r.is_empty())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            c.find(
                ID,
                Severity::Blocking,
                format!(
                    "endpoint {name} is {:?}{reason}, not InService: wait for it, or fix it first",
                    e.status
                ),
            );
        }
        Some(_) => {}
    }
}

fn model(c: &mut Checks<'_>) {
    const ID: &str = "model-exists";
    let Some(exists) = c.look.model_exists else {
        return;
    };
    c.check(ID);
    if !exists {
        c.find(
            ID,
            Severity::Blocking,
            format!(
                "model {} does not exist: create it, or fix its name (SageMaker would refuse \
                 the new endpoint config with Could not find model)",
                c.plan.green.model_name
            ),
        );
    }
}

fn opt_in(c: &mut Checks<'_>) {
    const ID: &str = "endpoint-opted-in";
    let Some(tags) = &c.look.endpoint_tags else {
        return;
    };
    c.check(ID);
    let (key, value) = OPT_IN_TAG;
    if !tags.iter().any(|(k, v)| k == key && v == value) {
        c.find(
            ID,
            Severity::Blocking,
            format!(
                "endpoint {} does not carry the tag {key}={value}, and Guardrails may only change \
                 endpoints that do (infra/template.yaml): aws sagemaker add-tags --resource-arn \
                 <endpoint arn> --tags Key={key},Value={value}",
                c.plan.endpoint_name
            ),
        );
    }
}

fn kind(c: &mut Checks<'_>) {
    const ID: &str = "endpoint-type-supported";
    let Some(kind) = c.look.kind else {
        return;
    };
    c.check(ID);
    // The configs Guardrails makes carry every other setting of the user's config
    // (`aws::endpoint_config`), so asynchronous endpoints keep their AsyncInferenceConfig.
    let what = if kind.inference_components {
        Some(
            "an endpoint of inference components: its models are deployed as components, not \
             as variants; neither engine deploys to it yet"
                .to_owned(),
        )
    } else if kind.serverless && c.plan.engine == Engine::Variant {
        Some(
            "serverless: the variant engine shifts traffic between two variants with their own \
             instances, which a serverless endpoint does not have; the native engine \
             (Guardrails.Engine: native, or auto) deploys it with SageMaker's blue/green update"
                .to_owned(),
        )
    } else {
        None
    };
    if let Some(what) = what {
        c.find(
            ID,
            Severity::Blocking,
            format!("endpoint {} is {what}", c.plan.endpoint_name),
        );
    }
}

/// Application Auto Scaling on blue's variant: what Guardrails will do about it, and the one
/// change SageMaker refuses on a registered variant that a deployment could make (another
/// instance type; "Update endpoints that use auto scaling", SageMaker developer guide).
fn scaling(c: &mut Checks<'_>) {
    const ID: &str = "autoscaling";
    let Some(target) = &c.look.scaling else {
        return;
    };
    c.check(ID);
    c.result.scaling = Some(target.clone());
    let (blue, green) = (&c.plan.blue, &c.plan.green);
    if !blue.instance_type.is_empty()
        && !green.instance_type.is_empty()
        && blue.instance_type != green.instance_type
    {
        c.find(
            ID,
            Severity::Blocking,
            format!(
                "variant {} is registered with Application Auto Scaling, and SageMaker refuses \
                 an update that changes its instance type ({} to {}): deploy the new model on \
                 {}, or delete its scaling policies and DeregisterScalableTarget first",
                blue.variant_name, blue.instance_type, green.instance_type, blue.instance_type
            ),
        );
        return;
    }
    let policies = if target.policies.is_empty() {
        "no scaling policy".to_owned()
    } else {
        format!("policies {}", target.policies.join(", "))
    };
    c.find(
        ID,
        Severity::Info,
        format!(
            "variant {} scales between {} and {} instances ({policies}) and serves with {} now: \
             Guardrails suspends its scaling from the first change to the end and restores it \
             as it was; blue keeps its {} instances throughout, a rollback returns to them, and \
             the variant serving at the end keeps the name, the target and its policies",
            blue.variant_name,
            target.min_capacity,
            target.max_capacity,
            blue.instance_count,
            blue.instance_count
        ),
    );
}

/// The most instances of each type the plan runs at once on this endpoint (`plan::cost`).
fn peak_by_type(plan: &Plan) -> BTreeMap<String, u32> {
    let (blue, green) = (&plan.blue, &plan.green);
    if blue.instance_type == green.instance_type {
        return BTreeMap::from([(blue.instance_type.clone(), plan.fleets.peak_instances)]);
    }
    let first = plan.steps.first().map_or(1, |s| s.green_instances);
    let (blue_peak, green_peak) = match plan.engine {
        // Blue's original and its copy while provisioning; green and green alone at the end.
        Engine::Variant => (2 * blue.instance_count, first.max(2 * green.instance_count)),
        Engine::Native => (blue.instance_count, green.instance_count),
    };
    BTreeMap::from([
        (blue.instance_type.clone(), blue_peak),
        (green.instance_type.clone(), green_peak),
    ])
}

fn quota(c: &mut Checks<'_>) {
    const ID: &str = "instance-quota-covers-peak";
    if c.look.quotas.is_empty() {
        return;
    }
    c.check(ID);
    for (instance_type, peak) in peak_by_type(c.plan) {
        let Some(&quota) = c.look.quotas.get(&instance_type) else {
            continue;
        };
        if peak > quota {
            c.find(
                ID,
                Severity::Blocking,
                format!(
                    "the deployment runs up to {peak} {instance_type} instances at once on this \
                     endpoint (old and new fleets during updates), over the account's quota of \
                     {quota} ('{instance_type} for endpoint usage'): request an increase in \
                     Service Quotas, or deploy with fewer instances"
                ),
            );
        }
    }
}

fn active(c: &mut Checks<'_>) {
    const ID: &str = "no-active-deployment";
    c.check(ID);
    if let Some(active) = &c.look.active_deployment
        && *active != c.plan.deployment_id
    {
        c.find(
            ID,
            Severity::Blocking,
            format!(
                "deployment {active} is already active on {}: wait for it to end or abort it",
                c.plan.endpoint_name
            ),
        );
    }
}

fn alarms(c: &mut Checks<'_>) {
    let named: Vec<String> = c
        .plan
        .watched_alarms
        .iter()
        .filter(|a| a.green_template.is_none())
        .map(|a| a.alarm_name.clone())
        .collect();
    if named.is_empty() {
        return;
    }
    for id in [
        "alarms-exist",
        "alarms-not-firing",
        "alarms-have-recent-data",
        "alarm-thresholds-can-fire",
        "alarms-see-green",
    ] {
        c.check(id);
    }
    for name in &named {
        let Some(alarm) = c.look.alarms.get(name).cloned() else {
            c.find(
                "alarms-exist",
                Severity::Blocking,
                format!(
                    "alarm {name} does not exist: create it, or fix its name in \
                     AutoRollbackConfiguration (a missing alarm cannot guard anything)"
                ),
            );
            continue;
        };
        if alarm.state == AlarmState::Alarm {
            c.find(
                "alarms-not-firing",
                Severity::Blocking,
                format!("alarm {name} is already in ALARM: the deployment would roll back at once"),
            );
        }
        if !c.look.alarms_with_recent_data.contains(name) {
            c.find(
                "alarms-have-recent-data",
                Severity::Warning,
                format!(
                    "alarm {name}'s metric has no datapoint in the last {} minutes: an alarm \
                     without data cannot fire",
                    RECENT_DATA_SECS / 60
                ),
            );
        }
        if let Some(metric) = &alarm.metric {
            threshold(c, name, metric);
            sees_green(c, name, metric);
        }
    }
}

fn threshold(c: &mut Checks<'_>, name: &str, m: &AlarmMetric) {
    const ID: &str = "alarm-thresholds-can-fire";
    let fraction = m.namespace == "AWS/SageMaker"
        && ERROR_METRICS.contains(&m.metric_name.as_str())
        && m.statistic == "Average";
    if !fraction {
        return;
    }
    let never = match m.comparison.as_str() {
        "GreaterThanThreshold" => m.threshold >= 1.0,
        "GreaterThanOrEqualToThreshold" => m.threshold > 1.0,
        _ => false,
    };
    if never {
        c.find(
            ID,
            Severity::Blocking,
            format!(
                "alarm {name} ({} {} {} {}) can never fire: the Average of {} is the error \
                 fraction, at most 1; use a threshold such as 0.05",
                m.statistic, m.metric_name, m.comparison, m.threshold, m.metric_name
            ),
        );
    } else if m.comparison == "GreaterThanOrEqualToThreshold" && m.threshold >= 1.0 {
        c.find(
            ID,
            Severity::Warning,
            format!(
                "alarm {name} (Average {} >= 1) only fires when every request fails: the Average \
                 is the error fraction; use a threshold such as 0.05",
                m.metric_name
            ),
        );
    }
}

fn sees_green(c: &mut Checks<'_>, name: &str, m: &AlarmMetric) {
    const ID: &str = "alarms-see-green";
    if m.namespace != "AWS/SageMaker" {
        return;
    }
    let plan = c.plan;
    let dim = |key: &str| {
        m.dimensions
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let blind = match (
        dim("EndpointName"),
        dim("VariantName"),
        dim("EndpointConfigName"),
    ) {
        (Some(e), _, _) if e != plan.endpoint_name => Some(format!(
            "it watches endpoint {e}, not {}",
            plan.endpoint_name
        )),
        (None, _, _) => Some(format!(
            "it has no EndpointName dimension, so it does not see {}'s traffic",
            plan.endpoint_name
        )),
        (_, Some(v), _) if v != plan.green.variant_name => Some(format!(
            "it watches variant {v}, and the new model serves as variant {}",
            plan.green.variant_name
        )),
        (_, _, Some(config)) if config != plan.green_config_name => Some(format!(
            "it is scoped to endpoint config {config}, and the new model serves from {}",
            plan.green_config_name
        )),
        _ => None,
    };
    if let Some(why) = blind {
        c.find(
            ID,
            Severity::Warning,
            format!("alarm {name} will not see the new model's traffic: {why}"),
        );
    }
}

fn timeout(c: &mut Checks<'_>) {
    const ID: &str = "timeout-covers-waits";
    c.check(ID);
    let plan = c.plan;
    if plan.timeout_from_policy && plan.timeout_secs <= plan.waits_secs {
        c.find(
            ID,
            Severity::Blocking,
            format!(
                "MaximumExecutionTimeoutInSeconds ({} s) is not longer than the sum of the waits \
                 on this fleet ({} s over {} steps): the deployment would time out while baking",
                plan.timeout_secs,
                plan.waits_secs,
                plan.steps.len()
            ),
        );
    }
}

fn native(c: &mut Checks<'_>) {
    let plan = c.plan;
    c.check("variant-names-match");
    if plan.green.variant_name != plan.blue.variant_name {
        c.find(
            "variant-names-match",
            Severity::Blocking,
            format!(
                "native guardrails need the new config to keep the variant name {}, and the \
                 request names {}: leave greenVariant out, or use the variant engine",
                plan.blue.variant_name, plan.green.variant_name
            ),
        );
    }
    c.check("native-supported");
    let rolling = plan
        .native_config
        .as_ref()
        .is_some_and(|d| d.rolling_update_policy.is_some());
    let inf1 = [&plan.blue.instance_type, &plan.green.instance_type]
        .into_iter()
        .find(|t| t.starts_with("ml.inf1"));
    if let Some(instance_type) = inf1 {
        c.find(
            "native-supported",
            Severity::Blocking,
            format!(
                "SageMaker does not run guardrails on {instance_type} (Inf1): it would deploy \
                 all at once with no bake; use the variant engine (Guardrails.Engine: variant)"
            ),
        );
    }
    // A serverless variant has no instance type.
    let serverless = c
        .look
        .fleet
        .as_ref()
        .is_some_and(|f| f.variants.iter().any(|v| v.instance_type.is_empty()));
    if rolling && serverless {
        c.find(
            "native-supported",
            Severity::Blocking,
            "rolling updates do not support serverless endpoints; use BlueGreenUpdatePolicy or \
             the variant engine"
                .to_owned(),
        );
    }
}

#[cfg(test)]
mod tests;
