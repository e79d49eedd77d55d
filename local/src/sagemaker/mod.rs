//! SageMaker's control plane, as far as Guardrails uses it, speaking SageMaker's JSON protocol
//! (`X-Amz-Target: SageMaker.<Operation>`) to the real `aws-sdk-sagemaker` client. Updates are
//! asynchronous like on AWS: the endpoint is Creating or Updating until a configurable delay has
//! passed, refuses changes meanwhile, and a failed update returns it to InService on its old
//! config with a FailureReason. Every status change is queued as an EventBridge event.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::events::Outgoing;
use crate::rollout::{Durations, Rollout, Tick};
use crate::{ApiError, Ms, secs};

pub mod iam;
mod shapes;

use shapes::describe;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

fn arn(kind: &str, name: &str) -> String {
    format!(
        "arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{}",
        name.to_lowercase()
    )
}

/// A production variant of an endpoint config.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigVariant {
    pub name: String,
    pub model: String,
    pub instance_type: String,
    pub instances: u32,
    pub weight: f64,
}

#[derive(Debug, Clone)]
struct Config {
    variants: Vec<ConfigVariant>,
    created: Ms,
}

/// A variant as it serves.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveVariant {
    pub name: String,
    pub model: String,
    pub instance_type: String,
    pub weight: f64,
    pub desired_weight: f64,
    pub instances: u32,
    pub desired_instances: u32,
}

#[derive(Debug, Clone)]
enum Change {
    Config(String),
    /// An update SageMaker runs under a DeploymentConfig (deployment guardrails).
    Rollout(Box<Rollout>),
    Weights(Vec<(String, Option<f64>, Option<u32>)>),
    Delete,
}

#[derive(Debug, Clone)]
struct Pending {
    change: Change,
    done_at: Ms,
    /// How the change ends, decided when it began (a fault injected beforehand).
    outcome: Outcome,
}

/// How the next update of an endpoint ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeds,
    /// Back in service on the old config with this FailureReason (empty: the silent case).
    ReturnsToOldConfig(String),
    /// The endpoint goes to Failed with this FailureReason.
    Fails(String),
    /// A deployment under a DeploymentConfig that rolls back fails to roll back:
    /// `UpdateRollbackFailed` with this reason added.
    RollbackFails(String),
}

/// `(variant, model, share of requests, endpoint config)`.
pub type Serving = (String, String, f64, String);

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    pub status: &'static str,
    pub config: String,
    pub variants: Vec<LiveVariant>,
    failure_reason: Option<String>,
    pending: Option<Pending>,
    /// The DeploymentConfig of the last UpdateEndpoint that had one (`LastDeploymentConfig`).
    last_deployment_config: Option<Value>,
    created: Ms,
    modified: Ms,
}

/// Delays of asynchronous changes, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Delays {
    pub create_ms: i64,
    pub update_ms: i64,
    pub weights_ms: i64,
}

impl Default for Delays {
    fn default() -> Delays {
        Delays {
            create_ms: 2_000,
            update_ms: 2_000,
            weights_ms: 500,
        }
    }
}

#[derive(Debug, Default)]
pub struct SageMaker {
    models: BTreeMap<String, (String, Ms)>,
    configs: BTreeMap<String, Config>,
    pub endpoints: BTreeMap<String, Endpoint>,
    tags: BTreeMap<String, Vec<Value>>,
    pub delays: Delays,
    /// The outcome of the next update (or creation) of each endpoint.
    pub next_outcome: BTreeMap<String, Outcome>,
    /// Instances of each type the account may run on endpoints (Service Quotas); a type not
    /// here has `servicequotas::DEFAULT_QUOTA`.
    pub quotas: BTreeMap<String, u32>,
}

/// Every instance type a production variant may have: the `ProductionVariantInstanceType`
/// enum of SageMaker's API model, as the SDK carries it.
pub fn instance_types() -> Vec<String> {
    aws_sdk_sagemaker::types::ProductionVariantInstanceType::values()
        .iter()
        .map(|t| (*t).to_owned())
        .collect()
}

fn str_field<'a>(input: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    input.get(field).and_then(Value::as_str).ok_or_else(|| {
        ApiError::validation(format!("1 validation error detected: {field} is required"))
    })
}

fn not_found(what: &str, name: &str) -> ApiError {
    ApiError::validation(format!(
        "Could not find {what} \"{}\".",
        arn(what_kind(what), name)
    ))
}

fn what_kind(what: &str) -> &str {
    match what {
        "endpoint configuration" => "endpoint-config",
        other => other,
    }
}

impl SageMaker {
    /// The account's quota of `instance_type` instances for endpoints.
    pub fn quota(&self, instance_type: &str) -> u32 {
        self.quotas
            .get(instance_type)
            .copied()
            .unwrap_or(crate::servicequotas::DEFAULT_QUOTA)
    }

    /// Handles one operation; `events` receives the state-change events it causes.
    pub fn call(
        &mut self,
        operation: &str,
        input: &Value,
        now: Ms,
        events: &mut Vec<Outgoing>,
    ) -> Result<Value, ApiError> {
        match operation {
            "CreateModel" => self.create_model(input, now),
            "DescribeModel" => self.describe_model(input),
            "DeleteModel" => {
                let name = str_field(input, "ModelName")?;
                self.models
                    .remove(name)
                    .map(|_| json!({}))
                    .ok_or_else(|| not_found("model", name))
            }
            "CreateEndpointConfig" => self.create_config(input, now),
            "DescribeEndpointConfig" => self.describe_config(input),
            "DeleteEndpointConfig" => {
                let name = str_field(input, "EndpointConfigName")?;
                self.configs
                    .remove(name)
                    .map(|_| json!({}))
                    .ok_or_else(|| not_found("endpoint configuration", name))
            }
            "CreateEndpoint" => self.create_endpoint(input, now, events),
            "UpdateEndpoint" => self.update_endpoint(input, now, events),
            "UpdateEndpointWeightsAndCapacities" => self.update_weights(input, now, events),
            "DescribeEndpoint" => {
                let name = str_field(input, "EndpointName")?;
                let endpoint = self
                    .endpoints
                    .get(name)
                    .ok_or_else(|| not_found("endpoint", name))?;
                Ok(describe(endpoint))
            }
            "ListEndpoints" => Ok(json!({
                "Endpoints": self.endpoints.values().map(|e| json!({
                    "EndpointName": e.name,
                    "EndpointArn": arn("endpoint", &e.name),
                    "EndpointStatus": e.status,
                    "CreationTime": secs(e.created),
                    "LastModifiedTime": secs(e.modified),
                })).collect::<Vec<_>>()
            })),
            "DeleteEndpoint" => self.delete_endpoint(input, now, events),
            "AddTags" => {
                let resource = str_field(input, "ResourceArn")?.to_owned();
                self.keep_tags(&resource, input);
                let tags = input.get("Tags").cloned().unwrap_or(json!([]));
                Ok(json!({ "Tags": tags }))
            }
            "ListTags" => {
                let resource = str_field(input, "ResourceArn")?;
                Ok(json!({ "Tags": self.tags.get(resource).cloned().unwrap_or_default() }))
            }
            other => Err(ApiError::new(
                "UnknownOperationException",
                format!("the local SageMaker does not implement {other}"),
            )),
        }
    }

    /// Keeps the `Tags` a create request gives its resource, as AddTags does: a tag of an
    /// existing key takes the new value (SageMaker API reference, AddTags: "overwrites").
    fn keep_tags(&mut self, resource: &str, input: &Value) {
        let Some(tags) = input.get("Tags").and_then(Value::as_array) else {
            return;
        };
        let kept = self.tags.entry(resource.to_owned()).or_default();
        for tag in tags {
            let key = tag.get("Key");
            kept.retain(|t| t.get("Key") != key);
            kept.push(tag.clone());
        }
    }

    fn create_model(&mut self, input: &Value, now: Ms) -> Result<Value, ApiError> {
        let name = str_field(input, "ModelName")?;
        if self.models.contains_key(name) {
            return Err(ApiError::validation(format!(
                "Cannot create already existing model \"{}\".",
                arn("model", name)
            )));
        }
        let image = input
            .pointer("/PrimaryContainer/Image")
            .and_then(Value::as_str)
            .unwrap_or("local/model:latest")
            .to_owned();
        self.models.insert(name.to_owned(), (image, now));
        self.keep_tags(&arn("model", name), input);
        Ok(json!({ "ModelArn": arn("model", name) }))
    }

    fn describe_model(&self, input: &Value) -> Result<Value, ApiError> {
        let name = str_field(input, "ModelName")?;
        let (image, created) = self
            .models
            .get(name)
            .ok_or_else(|| not_found("model", name))?;
        Ok(json!({
            "ModelName": name,
            "ModelArn": arn("model", name),
            "PrimaryContainer": { "Image": image },
            "ExecutionRoleArn": format!("arn:aws:iam::{ACCOUNT}:role/local"),
            "CreationTime": secs(*created),
        }))
    }

    fn create_config(&mut self, input: &Value, now: Ms) -> Result<Value, ApiError> {
        let name = str_field(input, "EndpointConfigName")?;
        if self.configs.contains_key(name) {
            return Err(ApiError::validation(format!(
                "Cannot create already existing endpoint configuration \"{}\".",
                arn("endpoint-config", name)
            )));
        }
        let mut variants = Vec::new();
        for v in input
            .get("ProductionVariants")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let model = str_field(v, "ModelName")?;
            if !self.models.contains_key(model) {
                return Err(ApiError::validation(format!(
                    "Could not find model \"{}\".",
                    arn("model", model)
                )));
            }
            variants.push(ConfigVariant {
                name: str_field(v, "VariantName")?.to_owned(),
                model: model.to_owned(),
                instance_type: v
                    .get("InstanceType")
                    .and_then(Value::as_str)
                    .unwrap_or("ml.m5.large")
                    .to_owned(),
                instances: v
                    .get("InitialInstanceCount")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(1),
                weight: v
                    .get("InitialVariantWeight")
                    .and_then(Value::as_f64)
                    .unwrap_or(1.0),
            });
        }
        if variants.is_empty() {
            return Err(ApiError::validation(
                "ProductionVariants must hold at least one variant",
            ));
        }
        self.configs.insert(
            name.to_owned(),
            Config {
                variants,
                created: now,
            },
        );
        self.keep_tags(&arn("endpoint-config", name), input);
        Ok(json!({ "EndpointConfigArn": arn("endpoint-config", name) }))
    }

    fn describe_config(&self, input: &Value) -> Result<Value, ApiError> {
        let name = str_field(input, "EndpointConfigName")?;
        let config = self
            .configs
            .get(name)
            .ok_or_else(|| not_found("endpoint configuration", name))?;
        Ok(json!({
            "EndpointConfigName": name,
            "EndpointConfigArn": arn("endpoint-config", name),
            "ProductionVariants": config.variants.iter().map(|v| json!({
                "VariantName": v.name,
                "ModelName": v.model,
                "InstanceType": v.instance_type,
                "InitialInstanceCount": v.instances,
                "InitialVariantWeight": v.weight,
            })).collect::<Vec<_>>(),
            "CreationTime": secs(config.created),
        }))
    }

    fn live_variants(&self, config: &str) -> Result<Vec<LiveVariant>, ApiError> {
        let config = self
            .configs
            .get(config)
            .ok_or_else(|| not_found("endpoint configuration", config))?;
        Ok(config
            .variants
            .iter()
            .map(|v| LiveVariant {
                name: v.name.clone(),
                model: v.model.clone(),
                instance_type: v.instance_type.clone(),
                weight: v.weight,
                desired_weight: v.weight,
                instances: v.instances,
                desired_instances: v.instances,
            })
            .collect())
    }

    fn create_endpoint(
        &mut self,
        input: &Value,
        now: Ms,
        events: &mut Vec<Outgoing>,
    ) -> Result<Value, ApiError> {
        let name = str_field(input, "EndpointName")?;
        let config = str_field(input, "EndpointConfigName")?;
        if self.endpoints.contains_key(name) {
            return Err(ApiError::validation(format!(
                "Cannot create already existing endpoint \"{}\".",
                arn("endpoint", name)
            )));
        }
        let variants = self.live_variants(config)?;
        let outcome = self.next_outcome.remove(name).unwrap_or(Outcome::Succeeds);
        let endpoint = Endpoint {
            name: name.to_owned(),
            status: "Creating",
            config: config.to_owned(),
            variants,
            failure_reason: None,
            pending: Some(Pending {
                change: Change::Config(config.to_owned()),
                done_at: now + self.delays.create_ms,
                outcome,
            }),
            last_deployment_config: None,
            created: now,
            modified: now,
        };
        events.push(Outgoing::endpoint_state(&endpoint));
        self.endpoints.insert(name.to_owned(), endpoint);
        self.keep_tags(&arn("endpoint", name), input);
        Ok(json!({ "EndpointArn": arn("endpoint", name) }))
    }

    fn updatable(&mut self, name: &str) -> Result<&mut Endpoint, ApiError> {
        let endpoint = self
            .endpoints
            .get_mut(name)
            .ok_or_else(|| not_found("endpoint", name))?;
        match endpoint.status {
            "Creating" | "Updating" | "SystemUpdating" | "RollingBack" | "Deleting" => {
                Err(ApiError::validation(format!(
                    "Cannot update in-progress endpoint \"{}\".",
                    arn("endpoint", name)
                )))
            }
            "Failed" => Err(ApiError::validation(format!(
                "Cannot update failed endpoint \"{}\": only DeleteEndpoint is allowed.",
                arn("endpoint", name)
            ))),
            _ => Ok(endpoint),
        }
    }

    fn update_endpoint(
        &mut self,
        input: &Value,
        now: Ms,
        events: &mut Vec<Outgoing>,
    ) -> Result<Value, ApiError> {
        let name = str_field(input, "EndpointName")?;
        let config = str_field(input, "EndpointConfigName")?;
        let new_variants = self.live_variants(config)?;
        let delays = self.delays;
        let retain = input
            .get("RetainDeploymentConfig")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let given = input.get("DeploymentConfig").cloned();
        let endpoint = self.updatable(name)?;
        let deployment_config = match (given, retain) {
            (Some(_), true) => {
                return Err(ApiError::validation(
                    "DeploymentConfig and RetainDeploymentConfig cannot both be set",
                ));
            }
            (Some(c), false) => Some(c),
            (None, true) => endpoint.last_deployment_config.clone(),
            (None, false) => None,
        };
        let guarded = deployment_config.as_ref().is_some_and(|c| {
            c.get("BlueGreenUpdatePolicy").is_some() || c.get("RollingUpdatePolicy").is_some()
        });
        let outcome = self.next_outcome.remove(name).unwrap_or(Outcome::Succeeds);
        let endpoint = self.updatable(name)?;
        let change = if guarded {
            let durations = Durations {
                provision_ms: delays.update_ms,
                shift_ms: delays.weights_ms,
            };
            let rollout = Rollout::new(
                deployment_config.as_ref().unwrap_or(&Value::Null),
                (&endpoint.config, &endpoint.variants),
                (config, new_variants),
                now,
                durations,
                outcome.clone(),
            )
            .map_err(ApiError::validation)?;
            Change::Rollout(Box::new(rollout))
        } else {
            Change::Config(config.to_owned())
        };
        if deployment_config.is_some() {
            endpoint.last_deployment_config = deployment_config;
        }
        let done_at = match change {
            // A rollout ends when its own steps do (`advance_rollout`).
            Change::Rollout(_) => Ms::MAX,
            _ => now + delays.update_ms,
        };
        endpoint.begin("Updating", change, done_at, outcome, now, events);
        if guarded {
            events.push(Outgoing::deployment_state(endpoint));
        }
        Ok(json!({ "EndpointArn": arn("endpoint", name) }))
    }

    fn update_weights(
        &mut self,
        input: &Value,
        now: Ms,
        events: &mut Vec<Outgoing>,
    ) -> Result<Value, ApiError> {
        let name = str_field(input, "EndpointName")?;
        let delay = self.delays.weights_ms;
        let endpoint = self.updatable(name)?;
        let mut changes = Vec::new();
        for d in input
            .get("DesiredWeightsAndCapacities")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let variant = str_field(d, "VariantName")?;
            let Some(live) = endpoint.variants.iter_mut().find(|v| v.name == variant) else {
                return Err(ApiError::validation(format!(
                    "The variant name(s) [{variant}] is/are not present in the endpoint."
                )));
            };
            let weight = d.get("DesiredWeight").and_then(Value::as_f64);
            let count = d
                .get("DesiredInstanceCount")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok());
            if weight.is_some_and(|w| w < 0.0) {
                return Err(ApiError::validation("DesiredWeight must be at least 0"));
            }
            if let Some(w) = weight {
                live.desired_weight = w;
            }
            if let Some(n) = count {
                live.desired_instances = n;
            }
            changes.push((variant.to_owned(), weight, count));
        }
        let change = Change::Weights(changes);
        endpoint.begin(
            "Updating",
            change,
            now + delay,
            Outcome::Succeeds,
            now,
            events,
        );
        Ok(json!({ "EndpointArn": arn("endpoint", name) }))
    }

    fn delete_endpoint(
        &mut self,
        input: &Value,
        now: Ms,
        events: &mut Vec<Outgoing>,
    ) -> Result<Value, ApiError> {
        let name = str_field(input, "EndpointName")?;
        let endpoint = self
            .endpoints
            .get_mut(name)
            .ok_or_else(|| not_found("endpoint", name))?;
        if matches!(
            endpoint.status,
            "Creating" | "Updating" | "SystemUpdating" | "RollingBack"
        ) {
            return Err(ApiError::validation(format!(
                "Cannot update in-progress endpoint \"{}\".",
                arn("endpoint", name)
            )));
        }
        endpoint.begin(
            "Deleting",
            Change::Delete,
            now + 200,
            Outcome::Succeeds,
            now,
            events,
        );
        Ok(json!({}))
    }

    /// Finishes the changes due by `now` and moves SageMaker-run rollouts on; `in_alarm` tells
    /// whether a CloudWatch alarm is in ALARM.
    pub fn tick(&mut self, now: Ms, in_alarm: &dyn Fn(&str) -> bool, events: &mut Vec<Outgoing>) {
        for endpoint in self.endpoints.values_mut() {
            advance_rollout(endpoint, now, in_alarm, events);
        }
        let due: Vec<String> = self
            .endpoints
            .values()
            .filter(|e| e.pending.as_ref().is_some_and(|p| p.done_at <= now))
            .map(|e| e.name.clone())
            .collect();
        for name in due {
            self.finish(&name, now, events);
        }
    }

    fn finish(&mut self, name: &str, now: Ms, events: &mut Vec<Outgoing>) {
        let Some(pending) = self.endpoints.get_mut(name).and_then(|e| e.pending.take()) else {
            return;
        };
        if matches!(pending.change, Change::Delete) {
            if let Some(mut gone) = self.endpoints.remove(name) {
                gone.status = "Deleted";
                events.push(Outgoing::endpoint_state(&gone));
            }
            return;
        }
        let new_variants = match &pending.change {
            Change::Config(config) => self.live_variants(config).ok(),
            Change::Rollout(rollout) => Some(rollout.new_variants.clone()),
            _ => None,
        };
        let Some(endpoint) = self.endpoints.get_mut(name) else {
            return;
        };
        endpoint.modified = now;
        match (&pending.change, &pending.outcome) {
            (Change::Config(config), Outcome::Succeeds) => {
                endpoint.status = "InService";
                endpoint.config = config.clone();
                endpoint.variants = new_variants.unwrap_or_default();
                endpoint.failure_reason = None;
            }
            (Change::Config(_) | Change::Rollout(_), Outcome::ReturnsToOldConfig(reason)) => {
                endpoint.status = "InService";
                endpoint.failure_reason = Some(reason.clone());
            }
            (_, Outcome::Fails(reason)) => {
                endpoint.status = "Failed";
                endpoint.failure_reason = Some(reason.clone());
            }
            (Change::Weights(changes), _) => {
                endpoint.status = "InService";
                for (variant, weight, count) in changes {
                    if let Some(live) = endpoint.variants.iter_mut().find(|v| v.name == *variant) {
                        if let Some(w) = weight {
                            live.weight = *w;
                        }
                        if let Some(n) = count {
                            live.instances = *n;
                        }
                    }
                }
            }
            (Change::Delete | Change::Config(_) | Change::Rollout(_), _) => {}
        }
        events.push(Outgoing::endpoint_state(endpoint));
    }

    /// For each serving endpoint, which variant (and model) gets which share of requests now.
    pub fn serving(&self) -> Vec<(String, Vec<Serving>)> {
        self.endpoints
            .values()
            .filter(|e| {
                matches!(
                    e.status,
                    "InService" | "Updating" | "SystemUpdating" | "RollingBack"
                )
            })
            .map(|e| {
                let total: f64 = e.variants.iter().map(|v| v.weight.max(0.0)).sum();
                let new_share = match &e.pending {
                    Some(Pending {
                        change: Change::Rollout(r),
                        ..
                    }) => Some((r.new_share(), r)),
                    _ => None,
                };
                let old_share = 1.0 - new_share.map_or(0.0, |(s, _)| s);
                let mut shares: Vec<Serving> = e
                    .variants
                    .iter()
                    .map(|v| {
                        let share = if total > 0.0 {
                            v.weight.max(0.0) / total
                        } else {
                            0.0
                        };
                        (
                            v.name.clone(),
                            v.model.clone(),
                            share * old_share,
                            e.config.clone(),
                        )
                    })
                    .collect();
                // During a SageMaker-run rollout the new fleet serves its share beside the old.
                if let Some((share, rollout)) = new_share {
                    let new_total: f64 =
                        rollout.new_variants.iter().map(|v| v.weight.max(0.0)).sum();
                    for v in &rollout.new_variants {
                        let part = if new_total > 0.0 {
                            v.weight.max(0.0) / new_total
                        } else {
                            0.0
                        };
                        shares.push((
                            v.name.clone(),
                            v.model.clone(),
                            share * part,
                            rollout.new_config.clone(),
                        ));
                    }
                }
                (e.name.clone(), shares)
            })
            .collect()
    }
}
impl Endpoint {
    /// Starts an asynchronous change: the endpoint is `status` until `done_at`, and says so
    /// in a "SageMaker Endpoint State Change" event.
    fn begin(
        &mut self,
        status: &'static str,
        change: Change,
        done_at: Ms,
        outcome: Outcome,
        now: Ms,
        events: &mut Vec<Outgoing>,
    ) {
        self.status = status;
        self.modified = now;
        self.pending = Some(Pending {
            change,
            done_at,
            outcome,
        });
        events.push(Outgoing::endpoint_state(self));
    }
}

/// Moves a SageMaker-run rollout of `e` on, ending it when it is done.
fn advance_rollout(
    e: &mut Endpoint,
    now: Ms,
    in_alarm: &dyn Fn(&str) -> bool,
    events: &mut Vec<Outgoing>,
) {
    let Some(Pending {
        change: Change::Rollout(rollout),
        ..
    }) = &mut e.pending
    else {
        return;
    };
    let tick = rollout.tick(now, in_alarm);
    let new = (rollout.new_config.clone(), rollout.new_variants.clone());
    if tick == Tick::Same {
        return;
    }
    e.modified = now;
    if tick == Tick::Moved {
        events.push(Outgoing::deployment_state(e));
        return;
    }
    e.pending = None;
    match tick {
        Tick::Succeeded => {
            e.status = "InService";
            (e.config, e.variants) = new;
            e.failure_reason = None;
        }
        Tick::ReturnedToOld(reason) => {
            e.status = "InService";
            e.failure_reason = Some(reason);
        }
        Tick::Failed(reason) => {
            e.status = "Failed";
            e.failure_reason = Some(reason);
        }
        Tick::RollbackFailed(reason) => {
            e.status = "UpdateRollbackFailed";
            e.failure_reason = Some(reason);
        }
        Tick::Same | Tick::Moved => {}
    }
    events.push(Outgoing::deployment_state(e));
    events.push(Outgoing::endpoint_state(e));
}
