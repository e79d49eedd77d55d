//! SageMaker's model registry, as far as a deployment pipeline uses it (SageMaker API
//! reference: CreateModelPackageGroup, CreateModelPackage, DescribeModelPackage,
//! UpdateModelPackage, ListModelPackages): versioned model packages in groups, each with its
//! approval status, and the "SageMaker Model Package State Change" event on every change, in the
//! shape of the sample on AWS's EventBridge page, with `UpdatedModelPackageFields` naming what an
//! update changed.
//!
//! What AWS does not document, modelled the strictest plausible way and ours: a version is
//! `Completed` as soon as it is created; the event of a creation carries no
//! `UpdatedModelPackageFields` (nothing was updated); an update that changes nothing still sends
//! an event naming the fields it was given (SageMaker "may send multiple events for each state
//! change", its EventBridge page says).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{ACCOUNT, REGION, rules, str_field};
use crate::events::Outgoing;
use crate::{ApiError, Ms, iso8601};

/// `ModelApprovalStatus`'s values (API reference, CreateModelPackage).
const APPROVAL_STATUSES: [&str; 3] = ["Approved", "Rejected", "PendingManualApproval"];

/// The fields of UpdateModelPackage that change a version, as `UpdatedModelPackageFields`
/// names them (the `...ToRemove`/`...ToAdd` forms change the field they name).
const UPDATABLE: [(&str, &str); 9] = [
    ("ModelApprovalStatus", "ModelApprovalStatus"),
    ("ApprovalDescription", "ApprovalDescription"),
    ("CustomerMetadataProperties", "CustomerMetadataProperties"),
    (
        "CustomerMetadataPropertiesToRemove",
        "CustomerMetadataProperties",
    ),
    (
        "AdditionalInferenceSpecificationsToAdd",
        "AdditionalInferenceSpecifications",
    ),
    ("InferenceSpecification", "InferenceSpecification"),
    ("SourceUri", "SourceUri"),
    ("ModelCard", "ModelCard"),
    ("ModelLifeCycle", "ModelLifeCycle"),
];

pub fn package_arn(group: &str, version: u64) -> String {
    format!(
        "arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{}/{version}",
        group.to_lowercase()
    )
}

fn group_arn(group: &str) -> String {
    format!(
        "arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package-group/{}",
        group.to_lowercase()
    )
}

/// One version of a group.
#[derive(Debug, Clone)]
pub struct Package {
    pub group: String,
    pub version: u64,
    /// Every field as given and updated, as DescribeModelPackage returns them.
    fields: serde_json::Map<String, Value>,
    created: Ms,
    modified: Ms,
}

impl Package {
    pub fn arn(&self) -> String {
        package_arn(&self.group, self.version)
    }

    pub fn approval(&self) -> &str {
        self.fields
            .get("ModelApprovalStatus")
            .and_then(Value::as_str)
            .unwrap_or("PendingManualApproval")
    }

    fn describe(&self) -> Value {
        let mut out = self.fields.clone();
        out.insert("ModelPackageGroupName".to_owned(), json!(self.group));
        out.insert("ModelPackageVersion".to_owned(), json!(self.version));
        out.insert("ModelPackageArn".to_owned(), json!(self.arn()));
        out.insert(
            "ModelPackageName".to_owned(),
            json!(format!("{}/{}", self.group, self.version)),
        );
        out.insert("ModelPackageStatus".to_owned(), json!("Completed"));
        out.insert(
            "ModelPackageStatusDetails".to_owned(),
            json!({ "ValidationStatuses": [], "ImageScanStatuses": [] }),
        );
        out.insert(
            "ModelApprovalStatus".to_owned(),
            json!(self.approval().to_owned()),
        );
        out.insert("CreationTime".to_owned(), json!(crate::secs(self.created)));
        out.insert(
            "LastModifiedTime".to_owned(),
            json!(crate::secs(self.modified)),
        );
        out.remove("Tags");
        out.remove("ClientToken");
        Value::Object(out)
    }

    /// The event's detail: DescribeModelPackage's fields with ISO 8601 times, as AWS's sample.
    fn event(&self, updated: Option<Vec<&str>>) -> Outgoing {
        let mut detail = self.describe();
        if let Value::Object(map) = &mut detail {
            map.remove("ModelPackageName");
            map.insert("CreationTime".to_owned(), json!(iso8601(self.created)));
            map.insert("LastModifiedTime".to_owned(), json!(iso8601(self.modified)));
            map.entry("CertifyForMarketplace").or_insert(json!(false));
            if let Some(fields) = updated {
                map.insert("UpdatedModelPackageFields".to_owned(), json!(fields));
            }
        }
        Outgoing {
            source: "aws.sagemaker".to_owned(),
            detail_type: "SageMaker Model Package State Change".to_owned(),
            resources: vec![self.arn()],
            detail,
        }
    }
}

/// Groups and their versions.
#[derive(Debug, Default)]
pub struct Registry {
    groups: BTreeMap<String, Ms>,
    /// By ARN.
    pub packages: BTreeMap<String, Package>,
}

fn approval_of(input: &Value) -> Result<Option<&str>, ApiError> {
    match input.get("ModelApprovalStatus").and_then(Value::as_str) {
        None => Ok(None),
        Some(s) if APPROVAL_STATUSES.contains(&s) => Ok(Some(s)),
        Some(s) => Err(ApiError::validation(format!(
            "1 validation error detected: Value '{s}' at 'modelApprovalStatus' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            APPROVAL_STATUSES.join(", ")
        ))),
    }
}

impl Registry {
    /// The version an ARN (or `group/version`) names.
    pub fn get(&self, name: &str) -> Option<&Package> {
        let arn = match name.split_once('/') {
            Some((group, version)) if !name.starts_with("arn:") => {
                package_arn(group, version.parse().unwrap_or(0))
            }
            _ => name.to_lowercase(),
        };
        self.packages.get(&arn)
    }

    pub fn call(
        &mut self,
        operation: &str,
        input: &Value,
        now: Ms,
        events: &mut Vec<Outgoing>,
    ) -> Option<Result<Value, ApiError>> {
        Some(match operation {
            "CreateModelPackageGroup" => self.create_group(input, now),
            "CreateModelPackage" => self.create(input, now, events),
            "DescribeModelPackage" => {
                let name = match str_field(input, "ModelPackageName") {
                    Ok(name) => name,
                    Err(e) => return Some(Err(e)),
                };
                self.get(name).map(Package::describe).ok_or_else(|| {
                    ApiError::validation(format!("ModelPackage {name} does not exist."))
                })
            }
            "UpdateModelPackage" => self.update(input, now, events),
            "ListModelPackages" => {
                let group = input.get("ModelPackageGroupName").and_then(Value::as_str);
                let list: Vec<Value> = self
                    .packages
                    .values()
                    .filter(|p| group.is_none_or(|g| p.group.eq_ignore_ascii_case(g)))
                    .map(|p| {
                        json!({
                            "ModelPackageGroupName": p.group,
                            "ModelPackageVersion": p.version,
                            "ModelPackageArn": p.arn(),
                            "ModelPackageStatus": "Completed",
                            "ModelApprovalStatus": p.approval(),
                            "CreationTime": crate::secs(p.created),
                        })
                    })
                    .collect();
                Ok(json!({ "ModelPackageSummaryList": list }))
            }
            _ => return None,
        })
    }

    fn create_group(&mut self, input: &Value, now: Ms) -> Result<Value, ApiError> {
        let name = str_field(input, "ModelPackageGroupName")?;
        rules::name(name, "modelPackageGroupName")?;
        if self.groups.keys().any(|g| g.eq_ignore_ascii_case(name)) {
            return Err(ApiError::validation(format!(
                "Model Package Group already exists: {}",
                group_arn(name)
            )));
        }
        self.groups.insert(name.to_owned(), now);
        Ok(json!({ "ModelPackageGroupArn": group_arn(name) }))
    }

    fn create(
        &mut self,
        input: &Value,
        now: Ms,
        events: &mut Vec<Outgoing>,
    ) -> Result<Value, ApiError> {
        let Some(group) = input.get("ModelPackageGroupName").and_then(Value::as_str) else {
            return Err(ApiError::validation(
                "the local SageMaker keeps versioned model packages only: give \
                 ModelPackageGroupName",
            ));
        };
        let Some(group) = self
            .groups
            .keys()
            .find(|g| g.eq_ignore_ascii_case(group))
            .cloned()
        else {
            return Err(ApiError::validation(format!(
                "Model Package Group does not exist: {}",
                group_arn(group)
            )));
        };
        approval_of(input)?;
        let version = self.packages.values().filter(|p| p.group == group).count() as u64 + 1;
        let mut fields = input.as_object().cloned().unwrap_or_default();
        fields.remove("ModelPackageGroupName");
        let package = Package {
            group,
            version,
            fields,
            created: now,
            modified: now,
        };
        let arn = package.arn();
        events.push(package.event(None));
        self.packages.insert(arn.clone(), package);
        Ok(json!({ "ModelPackageArn": arn }))
    }

    fn update(
        &mut self,
        input: &Value,
        now: Ms,
        events: &mut Vec<Outgoing>,
    ) -> Result<Value, ApiError> {
        let name = str_field(input, "ModelPackageArn")?;
        approval_of(input)?;
        let arn = self
            .get(name)
            .map(Package::arn)
            .ok_or_else(|| ApiError::validation(format!("ModelPackage {name} does not exist.")))?;
        let Some(package) = self.packages.get_mut(&arn) else {
            return Err(ApiError::validation(format!(
                "ModelPackage {name} does not exist."
            )));
        };
        let mut updated = Vec::new();
        for (given, field) in UPDATABLE {
            let Some(value) = input.get(given) else {
                continue;
            };
            match given {
                "CustomerMetadataPropertiesToRemove" => {
                    if let Some(Value::Object(props)) =
                        package.fields.get_mut("CustomerMetadataProperties")
                    {
                        for key in value.as_array().into_iter().flatten() {
                            if let Some(key) = key.as_str() {
                                props.remove(key);
                            }
                        }
                    }
                }
                "CustomerMetadataProperties" => {
                    let props = package
                        .fields
                        .entry("CustomerMetadataProperties")
                        .or_insert_with(|| json!({}));
                    if let (Value::Object(props), Value::Object(new)) = (props, value) {
                        props.extend(new.clone());
                    }
                }
                "AdditionalInferenceSpecificationsToAdd" => {
                    let specs = package
                        .fields
                        .entry("AdditionalInferenceSpecifications")
                        .or_insert_with(|| json!([]));
                    if let (Value::Array(specs), Value::Array(new)) = (specs, value) {
                        specs.extend(new.iter().cloned());
                    }
                }
                _ => {
                    package.fields.insert(given.to_owned(), value.clone());
                }
            }
            if !updated.contains(&field) {
                updated.push(field);
            }
        }
        package.modified = now;
        events.push(package.event(Some(updated)));
        Ok(json!({ "ModelPackageArn": arn }))
    }
}
