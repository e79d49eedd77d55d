//! What IAM authorizes a SageMaker request against (the Service Authorization Reference,
//! `iam/actions.json`): the model, endpoint config, endpoint or model package it names, each
//! with the tags the emulator keeps for it, and the actions it depends on: `iam:PassRole` for
//! the role a model runs as, `sagemaker:AddTags` for tags given on creation, and, for a config
//! with a `KmsKeyId`, `kms:CreateGrant` on that key. AWS documents that the key policy must let
//! the endpoint's role use the key, and SageMaker creates a grant for the volumes on the
//! caller's behalf; requiring the caller to be allowed `kms:CreateGrant` is the strictest
//! plausible reading of that, and is ours.
//!
//! `UpdateEndpoint` is authorized against the endpoint *and* the endpoint config it deploys
//! (aws/aws-cdk issue 11594; the reference lists both as required).

use serde_json::Value;

use super::{SageMaker, arn};
use crate::iam::{Ask, Resource, tag_pairs as tags};

fn text<'a>(input: &'a Value, field: &str) -> &'a str {
    input.get(field).and_then(Value::as_str).unwrap_or_default()
}

/// The reference's resource type of a SageMaker ARN (`...:endpoint-config/x` -> `endpoint-config`).
fn kind_of(resource_arn: &str) -> String {
    let kind = resource_arn
        .rsplit(':')
        .next()
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    format!("sagemaker:{kind}")
}

impl SageMaker {
    fn resource(&self, kind: &str, name: &str) -> Resource {
        let resource_arn = arn(kind, name);
        let tags = self.tags_of(&resource_arn);
        Resource::new(&format!("sagemaker:{kind}"), resource_arn).tagged(tags)
    }

    /// The tags the emulator keeps for `resource_arn`.
    pub(crate) fn tags_of(&self, resource_arn: &str) -> Vec<(String, String)> {
        self.tags
            .get(resource_arn)
            .map(|t| tags(Some(&Value::Array(t.clone()))))
            .unwrap_or_default()
    }

    /// The actions and resources of one SageMaker request.
    pub fn asks(&self, operation: &str, input: &Value) -> Vec<Ask> {
        let action = format!("sagemaker:{operation}");
        let request_tags = tags(input.get("Tags"));
        let mut asks = Vec::new();
        let mut main = match operation {
            "CreateModel" | "DescribeModel" | "DeleteModel" => Ask::new(
                &action,
                vec![self.resource("model", text(input, "ModelName"))],
            ),
            "CreateEndpointConfig" | "DescribeEndpointConfig" | "DeleteEndpointConfig" => Ask::new(
                &action,
                vec![self.resource("endpoint-config", text(input, "EndpointConfigName"))],
            ),
            "CreateEndpoint" | "UpdateEndpoint" => Ask::new(
                &action,
                vec![
                    self.resource("endpoint", text(input, "EndpointName")),
                    self.resource("endpoint-config", text(input, "EndpointConfigName")),
                ],
            ),
            "DescribeEndpoint" | "DeleteEndpoint" | "UpdateEndpointWeightsAndCapacities" => {
                Ask::new(
                    &action,
                    vec![self.resource("endpoint", text(input, "EndpointName"))],
                )
            }
            "DescribeModelPackage" | "UpdateModelPackage" => {
                let field = if operation == "UpdateModelPackage" {
                    "ModelPackageArn"
                } else {
                    "ModelPackageName"
                };
                let name = text(input, field);
                let name = name.rsplit_once(":model-package/").map_or(name, |(_, n)| n);
                Ask::new(&action, vec![self.resource("model-package", name)])
            }
            // The version it will create.
            "CreateModelPackage" => {
                let group = text(input, "ModelPackageGroupName");
                let next = self
                    .registry
                    .packages
                    .values()
                    .filter(|p| p.group.eq_ignore_ascii_case(group))
                    .count()
                    + 1;
                Ask::new(
                    &action,
                    vec![self.resource("model-package", &format!("{group}/{next}"))],
                )
            }
            "CreateModelPackageGroup" => Ask::new(
                &action,
                vec![self.resource("model-package-group", text(input, "ModelPackageGroupName"))],
            ),
            "AddTags" | "DeleteTags" | "ListTags" => {
                let resource_arn = text(input, "ResourceArn");
                let resource = Resource::new(&kind_of(resource_arn), resource_arn)
                    .tagged(self.tags_of(resource_arn));
                Ask::new(&action, vec![resource])
            }
            _ => Ask::new(&action, Vec::new()),
        };
        if operation.starts_with("Create") || operation == "AddTags" {
            main = main.with_request_tags(&request_tags);
        }
        let created = main.resources.first().cloned();
        asks.push(main);
        if operation.starts_with("Create")
            && !request_tags.is_empty()
            && let Some(resource) = created
        {
            asks.push(
                Ask::new("sagemaker:AddTags", vec![resource]).with_request_tags(&request_tags),
            );
        }
        let role = match operation {
            "CreateModel" => Some(text(input, "ExecutionRoleArn")),
            "CreateEndpointConfig" => input.get("ExecutionRoleArn").and_then(Value::as_str),
            _ => None,
        };
        if let Some(role) = role.filter(|r| !r.is_empty()) {
            asks.push(
                Ask::new("iam:PassRole", vec![Resource::new("iam:role", role)]).with(
                    "iam:PassedToService",
                    vec!["sagemaker.amazonaws.com".to_owned()],
                ),
            );
        }
        if operation == "CreateEndpointConfig"
            && let Some(key) = input.get("KmsKeyId").and_then(Value::as_str)
        {
            let key_arn = if key.starts_with("arn:") {
                key.to_owned()
            } else if key.starts_with("alias/") {
                crate::iam::arn("kms", key)
            } else {
                crate::iam::arn("kms", &format!("key/{key}"))
            };
            asks.push(
                Ask::new("kms:CreateGrant", vec![Resource::new("kms:key", key_arn)])
                    .with("kms:GrantIsForAWSResource", vec!["true".to_owned()]),
            );
        }
        asks
    }
}
