//! SageMaker's control plane, as far as Guardrails uses it, speaking SageMaker's JSON protocol
//! (`X-Amz-Target: SageMaker.<Operation>`) to the real `aws-sdk-sagemaker` client. Updates are
//! asynchronous like on AWS: the endpoint is Creating or Updating until a configurable delay has
//! passed, refuses changes meanwhile, and a failed update returns it to InService on its old
//! config with a FailureReason. Every status change is queued as an EventBridge event.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::events::Outgoing;
use crate::rollout::Rollout;
use crate::{ApiError, Ms, secs};

mod endpoints;
pub mod fleets;
pub mod iam;
pub mod packages;
pub mod rules;
pub mod scaling;
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
    /// The request as given: DescribeEndpointConfig returns every field of it.
    raw: Value,
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
    /// To a config, with the variants it launches (`RetainAllVariantProperties` applied).
    Config(String, Vec<LiveVariant>),
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
    /// The fleets the change provisioned: `(variant, fleet id)`.
    new_fleets: Vec<(String, u32)>,
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
    /// Every fleet the endpoint had, and the instances running over time.
    pub fleets: fleets::Fleets,
    /// The fleet serving each variant of the current config: `(variant, fleet id)`.
    serving: Vec<(String, u32)>,
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
    /// By name: the request as given, and when.
    models: BTreeMap<String, (Value, Ms)>,
    /// Model package groups and their versions.
    pub registry: packages::Registry,
    configs: BTreeMap<String, Config>,
    pub endpoints: BTreeMap<String, Endpoint>,
    tags: BTreeMap<String, Vec<Value>>,
    pub delays: Delays,
    /// The outcome of the next update (or creation) of each endpoint.
    pub next_outcome: BTreeMap<String, Outcome>,
    /// Instances of each type the account may run on endpoints (Service Quotas); a type not
    /// here has `servicequotas::DEFAULT_QUOTA`.
    pub quotas: BTreeMap<String, u32>,
    /// `(endpoint, variant)` registered with Application Auto Scaling (`scaling`).
    pub scalable: std::collections::BTreeSet<(String, String)>,
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
            other => self
                .registry
                .call(other, input, now, events)
                .unwrap_or_else(|| {
                    Err(ApiError::new(
                        "UnknownOperationException",
                        format!("the local SageMaker does not implement {other}"),
                    ))
                }),
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
        rules::name(name, "modelName")?;
        if self.models.keys().any(|m| m.eq_ignore_ascii_case(name)) {
            return Err(ApiError::validation(format!(
                "Cannot create already existing model \"{}\".",
                arn("model", name)
            )));
        }
        // A container may come from a versioned model package, which must exist.
        let containers = input.get("PrimaryContainer").into_iter().chain(
            input
                .get("Containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
        for package in containers.filter_map(|c| c.get("ModelPackageName").and_then(Value::as_str))
        {
            if self.registry.get(package).is_none() {
                return Err(ApiError::validation(format!(
                    "ModelPackage {package} does not exist."
                )));
            }
        }
        let mut kept = input.clone();
        if let Value::Object(map) = &mut kept {
            map.remove("Tags");
        }
        self.models.insert(name.to_owned(), (kept, now));
        self.keep_tags(&arn("model", name), input);
        Ok(json!({ "ModelArn": arn("model", name) }))
    }

    fn describe_model(&self, input: &Value) -> Result<Value, ApiError> {
        let name = str_field(input, "ModelName")?;
        let (given, created) = self
            .models
            .get(name)
            .ok_or_else(|| not_found("model", name))?;
        // The model as it was created, as AWS returns it.
        let mut out = given.clone();
        if let Value::Object(map) = &mut out {
            map.insert("ModelArn".to_owned(), json!(arn("model", name)));
            map.entry("ExecutionRoleArn")
                .or_insert_with(|| json!(format!("arn:aws:iam::{ACCOUNT}:role/local")));
            map.insert("CreationTime".to_owned(), json!(secs(*created)));
        }
        Ok(out)
    }

    fn create_config(&mut self, input: &Value, now: Ms) -> Result<Value, ApiError> {
        let name = str_field(input, "EndpointConfigName")?;
        rules::name(name, "endpointConfigName")?;
        if self.configs.keys().any(|c| c.eq_ignore_ascii_case(name)) {
            return Err(ApiError::validation(format!(
                "Cannot create already existing endpoint configuration \"{}\".",
                arn("endpoint-config", name)
            )));
        }
        let mut variants = Vec::new();
        for (i, v) in input
            .get("ProductionVariants")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let member = format!("productionVariants.{}.member", i + 1);
            rules::name(
                str_field(v, "VariantName")?,
                &format!("{member}.variantName"),
            )?;
            rules::instance_type(v, &member)?;
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
                // A serverless variant has no instances of its own.
                instance_type: v
                    .get("InstanceType")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                instances: v
                    .get("InitialInstanceCount")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(if v.get("ServerlessConfig").is_some() {
                        0
                    } else {
                        1
                    }),
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
                raw: input.clone(),
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
        // Every field as it was given (Tags aside: ListTags has them), as AWS returns them.
        let mut out = config.raw.clone();
        if let Value::Object(map) = &mut out {
            map.remove("Tags");
            map.insert(
                "EndpointConfigArn".to_owned(),
                json!(arn("endpoint-config", name)),
            );
            map.insert("CreationTime".to_owned(), json!(secs(config.created)));
        }
        Ok(out)
    }

    /// Whether `config` is asynchronous (has an `AsyncInferenceConfig`).
    fn is_async(&self, config: &str) -> bool {
        self.configs
            .get(config)
            .is_some_and(|c| c.raw.get("AsyncInferenceConfig").is_some())
    }

    /// The fleets endpoint `name` had, and the instances running over time.
    pub fn fleets(&self, name: &str) -> Option<&fleets::Fleets> {
        self.endpoints.get(name).map(|e| &e.fleets)
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
}
