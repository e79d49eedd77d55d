//! Each function's role in `infra/template.yaml`, with the policies AWS SAM would give it: SAM's
//! own translator (`aws-sam-translator`, from the project's venv; `sam_expand.py`) turns the
//! template into CloudFormation, expanding policy templates such as `DynamoDBCrudPolicy` and
//! adding the roles' managed policies and on-failure destinations; the CloudFormation functions
//! left in the policies (`!Sub`, `!Ref`, `!GetAtt`, `!If`) are then resolved with the local
//! stack's names. A template or function the translator refuses, or a reference this module
//! cannot resolve, is an error: the local stack never guesses a policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use serde_json::{Map, Value};

use super::policy::Policy;
use super::{ACCOUNT, REGION};

/// A function's role.
#[derive(Debug, Clone)]
pub struct Role {
    /// The role's logical id (`StartDeploymentFunctionRole`): locally, its name.
    pub name: String,
    pub policies: Vec<Policy>,
}

/// The local stack's names for the template's parameters and resources.
#[derive(Debug, Clone)]
pub struct Names {
    pub stack: String,
    pub parameters: BTreeMap<String, String>,
    /// `Ref` of a resource.
    pub refs: BTreeMap<String, String>,
    /// `Fn::GetAtt` of a resource: `(logical id, attribute)`.
    pub attributes: BTreeMap<(String, String), String>,
}

/// The deployments table, the pages topic and the failed-events queue as the local wiring
/// makes them.
pub const TABLE: &str = "guardrails";
pub const TOPIC: &str = "guardrails-pages";
pub const FAILED_EVENTS_QUEUE: &str = "guardrails-failed-events";
/// The pages topic's key (its id: a UUID on AWS).
pub const PAGES_KEY: &str = "0f1c2d3e-4a5b-4c6d-8e7f-a1b2c3d4e5f6";
/// The stack name of the local world (functions are `guardrails-<binary>` in ARNs).
pub const STACK: &str = "guardrails";
pub const SCHEDULER_ROLE: &str = "guardrails-scheduler";
/// The execution role of models created from approved model packages.
pub const MODEL_ROLE: &str = "guardrails-models";

impl Names {
    /// The names of `guardrails-local up` and the tests' stacks.
    pub fn local() -> Names {
        let arn =
            |service: &str, rest: &str| format!("arn:aws:{service}:{REGION}:{ACCOUNT}:{rest}");
        let role_arn = |name: &str| format!("arn:aws:iam::{ACCOUNT}:role/{name}");
        let topic_arn = arn("sns", TOPIC);
        let queue_arn = arn("sqs", FAILED_EVENTS_QUEUE);
        let mut attributes = BTreeMap::new();
        for (id, attr, value) in [
            ("PagesTopic", "TopicName", TOPIC.to_owned()),
            ("PagesTopic", "TopicArn", topic_arn.clone()),
            ("FailedEventsQueue", "Arn", queue_arn),
            (
                "FailedEventsQueue",
                "QueueName",
                FAILED_EVENTS_QUEUE.to_owned(),
            ),
            ("PagesKey", "Arn", arn("kms", &format!("key/{PAGES_KEY}"))),
            ("SchedulerRole", "Arn", role_arn(SCHEDULER_ROLE)),
            (
                "DeploymentsTable",
                "Arn",
                arn("dynamodb", &format!("table/{TABLE}")),
            ),
        ] {
            attributes.insert((id.to_owned(), attr.to_owned()), value);
        }
        for binary in [
            "start-deployment",
            "endpoint-events",
            "bake-watcher",
            "rollback-notifier",
            "hook-green-ready",
        ] {
            let id = function_id(binary);
            let function = arn("lambda", &format!("function:{STACK}-{binary}"));
            attributes.insert((id, "Arn".to_owned()), function);
        }
        let refs = BTreeMap::from([
            ("DeploymentsTable".to_owned(), TABLE.to_owned()),
            ("PagesTopic".to_owned(), topic_arn),
            (
                "FailedEventsQueue".to_owned(),
                format!("http://127.0.0.1/{ACCOUNT}/{FAILED_EVENTS_QUEUE}"),
            ),
            ("SchedulerRole".to_owned(), SCHEDULER_ROLE.to_owned()),
        ]);
        let parameters = BTreeMap::from([("ModelRoleArn".to_owned(), role_arn(MODEL_ROLE))]);
        Names {
            stack: STACK.to_owned(),
            parameters,
            refs,
            attributes,
        }
    }
}

/// `StartDeploymentFunction` for `start-deployment`: the template's logical ids.
fn function_id(binary: &str) -> String {
    let pascal: String = binary
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    format!("{pascal}Function")
}

/// The Python of the project's venv, where `scripts/setup.sh` installs aws-sam-translator:
/// `$GUARDRAILS_PYTHON`, else `.venv/bin/python` in the repository.
pub fn python_path() -> PathBuf {
    if let Some(path) = std::env::var_os("GUARDRAILS_PYTHON") {
        return PathBuf::from(path);
    }
    crate::repo_root().join(".venv/bin/python")
}

const SAM_EXPAND: &str = include_str!("sam_expand.py");

/// The template as CloudFormation (SAM transformed), once per process and template text.
fn transformed(template: &Path) -> Result<Value, String> {
    static CACHE: OnceLock<Mutex<BTreeMap<String, Value>>> = OnceLock::new();
    let text = std::fs::read_to_string(template)
        .map_err(|e| format!("cannot read {}: {e}", template.display()))?;
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    if let Some(done) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&text) {
        return Ok(done.clone());
    }
    let python = python_path();
    let output = Command::new(&python)
        .arg("-c")
        .arg(SAM_EXPAND)
        .arg(template)
        .arg(REGION)
        .arg(ACCOUNT)
        .env("AWS_DEFAULT_REGION", REGION)
        .output()
        .map_err(|e| {
            format!(
                "cannot run {} (run ./scripts/setup.sh: it installs aws-sam-translator): {e}",
                python.display()
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "AWS SAM's translator refused {}: {}",
            template.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let value: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("the translated template is not JSON: {e}"))?;
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(text, value.clone());
    Ok(value)
}

/// Every function's role (by binary name, from `Metadata.BuildProperties.Binary`), with its
/// policies resolved for `names`.
pub fn roles(template: &Path, names: &Names) -> Result<BTreeMap<String, Role>, String> {
    let cfn = transformed(template)?;
    let (resources, resolver) = resources_of(&cfn, names)?;
    let mut roles = BTreeMap::new();
    for (id, resource) in resources {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Lambda::Function") {
            continue;
        }
        let binary = resource
            .pointer("/Metadata/BuildProperties/Binary")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("function {id} has no Metadata.BuildProperties.Binary"))?;
        let role_id = resource
            .pointer("/Properties/Role/Fn::GetAtt/0")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("function {id} has no Role of this template"))?;
        let role = resources
            .get(role_id)
            .ok_or_else(|| format!("role {role_id} of {id} is not in the template"))?;
        let mut policies = Vec::new();
        for inline in role
            .pointer("/Properties/Policies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let document = inline
                .get("PolicyDocument")
                .ok_or_else(|| format!("a policy of {role_id} has no PolicyDocument"))?;
            let resolved = resolver.resolve(document)?;
            let policy =
                Policy::parse(&resolved).map_err(|e| format!("a policy of {role_id}: {e}"))?;
            policies.push(policy);
        }
        for managed in role
            .pointer("/Properties/ManagedPolicyArns")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let arn = resolver.resolve(managed)?;
            policies.push(managed_policy(arn.as_str().unwrap_or_default())?);
        }
        roles.insert(
            binary.to_owned(),
            Role {
                name: role_id.to_owned(),
                policies,
            },
        );
    }
    Ok(roles)
}

/// Every customer managed policy of `template` (`AWS::IAM::ManagedPolicy`), by logical id, its
/// document resolved for `names`: the policies a person's role is given (`OperatorPolicy`).
pub fn managed_policies(
    template: &Path,
    names: &Names,
) -> Result<BTreeMap<String, Policy>, String> {
    let cfn = transformed(template)?;
    let (resources, resolver) = resources_of(&cfn, names)?;
    let mut policies = BTreeMap::new();
    for (id, resource) in resources {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::IAM::ManagedPolicy") {
            continue;
        }
        let document = resource
            .pointer("/Properties/PolicyDocument")
            .ok_or_else(|| format!("managed policy {id} has no PolicyDocument"))?;
        let resolved = resolver.resolve(document)?;
        let policy = Policy::parse(&resolved).map_err(|e| format!("managed policy {id}: {e}"))?;
        policies.insert(id.clone(), policy);
    }
    Ok(policies)
}

/// The AWS managed policies SAM attaches to function roles, as AWS publishes them (AWS Managed
/// Policy Reference): they grant logging and tracing, which the functions' code never calls
/// through the local stack. Any other managed policy is an error.
fn managed_policy(arn: &str) -> Result<Policy, String> {
    let actions = match arn {
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole" => {
            vec![
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ]
        }
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess" => vec![
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
            "xray:GetSamplingRules",
            "xray:GetSamplingTargets",
            "xray:GetSamplingStatisticSummaries",
        ],
        other => {
            return Err(format!(
                "the local stack does not know the managed policy {other}"
            ));
        }
    };
    Policy::parse(&serde_json::json!({
        "Statement": [{ "Effect": "Allow", "Action": actions, "Resource": "*" }]
    }))
}

/// The translated template's resources, and the resolver of its intrinsic functions.
fn resources_of<'a>(
    cfn: &'a Value,
    names: &'a Names,
) -> Result<(&'a Map<String, Value>, Resolver<'a>), String> {
    let resources = cfn
        .get("Resources")
        .and_then(Value::as_object)
        .ok_or("the translated template has no Resources")?;
    let resolver = Resolver {
        names,
        conditions: cfn.get("Conditions").cloned().unwrap_or(Value::Null),
        defaults: cfn.get("Parameters").cloned().unwrap_or(Value::Null),
    };
    Ok((resources, resolver))
}

struct Resolver<'a> {
    names: &'a Names,
    conditions: Value,
    defaults: Value,
}

/// `AWS::NoValue` drops the property or list item it stands for.
const NO_VALUE: &str = "\u{0}AWS::NoValue";

impl Resolver<'_> {
    fn reference(&self, name: &str) -> Result<String, String> {
        let n = self.names;
        let found = match name {
            "AWS::Partition" => Some("aws".to_owned()),
            "AWS::Region" => Some(REGION.to_owned()),
            "AWS::AccountId" => Some(ACCOUNT.to_owned()),
            "AWS::StackName" => Some(n.stack.clone()),
            "AWS::URLSuffix" => Some("amazonaws.com".to_owned()),
            "AWS::NoValue" => Some(NO_VALUE.to_owned()),
            _ => n
                .parameters
                .get(name)
                .cloned()
                .or_else(|| n.refs.get(name).cloned())
                .or_else(|| {
                    self.defaults
                        .pointer(&format!("/{name}/Default"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                }),
        };
        found.ok_or_else(|| format!("the local stack has no value for Ref {name}"))
    }

    fn attribute(&self, id: &str, attribute: &str) -> Result<String, String> {
        self.names
            .attributes
            .get(&(id.to_owned(), attribute.to_owned()))
            .cloned()
            .ok_or_else(|| format!("the local stack has no value for GetAtt {id}.{attribute}"))
    }

    fn substitute(&self, text: &str, vars: &Map<String, Value>) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in Fn::Sub {text:?}"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = vars.get(name) {
                let v = self.resolve(value)?;
                out.push_str(v.as_str().unwrap_or_default());
            } else if let Some((id, attribute)) = name.split_once('.') {
                out.push_str(&self.attribute(id, attribute)?);
            } else {
                out.push_str(&self.reference(name)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn condition(&self, value: &Value) -> Result<bool, String> {
        if let Some(name) = value.as_str() {
            let c = self
                .conditions
                .get(name)
                .ok_or_else(|| format!("unknown condition {name}"))?;
            return self.condition(c);
        }
        let (function, args) = value
            .as_object()
            .and_then(|o| o.iter().next())
            .ok_or_else(|| format!("a condition that is not a function: {value}"))?;
        let list = args.as_array().cloned().unwrap_or_default();
        match function.as_str() {
            "Fn::Equals" => {
                let a = self.resolve(list.first().unwrap_or(&Value::Null))?;
                let b = self.resolve(list.get(1).unwrap_or(&Value::Null))?;
                Ok(a == b)
            }
            "Fn::Not" => Ok(!self.condition(list.first().unwrap_or(&Value::Null))?),
            "Fn::And" => list
                .iter()
                .try_fold(true, |acc, c| Ok(acc && self.condition(c)?)),
            "Fn::Or" => list
                .iter()
                .try_fold(false, |acc, c| Ok(acc || self.condition(c)?)),
            "Condition" => self.condition(args),
            other => Err(format!(
                "the local stack cannot evaluate the condition {other}"
            )),
        }
    }

    fn resolve(&self, value: &Value) -> Result<Value, String> {
        match value {
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    let v = self.resolve(item)?;
                    if v.as_str() != Some(NO_VALUE) {
                        out.push(v);
                    }
                }
                Ok(Value::Array(out))
            }
            Value::Object(map) if map.len() == 1 => {
                let (function, args) = map.iter().next().ok_or("empty object")?;
                match function.as_str() {
                    "Ref" => Ok(Value::String(
                        self.reference(args.as_str().unwrap_or_default())?,
                    )),
                    "Fn::GetAtt" => {
                        let (id, attribute) = match args {
                            Value::Array(parts) => (
                                parts.first().and_then(Value::as_str).unwrap_or_default(),
                                parts.get(1).and_then(Value::as_str).unwrap_or_default(),
                            ),
                            Value::String(s) => s.split_once('.').unwrap_or((s, "")),
                            _ => ("", ""),
                        };
                        Ok(Value::String(self.attribute(id, attribute)?))
                    }
                    "Fn::Sub" => {
                        let (text, vars) = match args {
                            Value::String(s) => (s.clone(), Map::new()),
                            Value::Array(parts) => (
                                parts
                                    .first()
                                    .and_then(Value::as_str)
                                    .unwrap_or_default()
                                    .to_owned(),
                                parts
                                    .get(1)
                                    .and_then(Value::as_object)
                                    .cloned()
                                    .unwrap_or_default(),
                            ),
                            _ => return Err(format!("Fn::Sub of {args}")),
                        };
                        Ok(Value::String(self.substitute(&text, &vars)?))
                    }
                    "Fn::If" => {
                        let parts = args.as_array().cloned().unwrap_or_default();
                        let pick = if self.condition(parts.first().unwrap_or(&Value::Null))? {
                            1
                        } else {
                            2
                        };
                        self.resolve(parts.get(pick).unwrap_or(&Value::Null))
                    }
                    "Fn::Join" => {
                        let parts = args.as_array().cloned().unwrap_or_default();
                        let separator = parts.first().and_then(Value::as_str).unwrap_or_default();
                        let items = self.resolve(parts.get(1).unwrap_or(&Value::Null))?;
                        let texts: Vec<String> = items
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|v| v.as_str().unwrap_or_default().to_owned())
                            .collect();
                        Ok(Value::String(texts.join(separator)))
                    }
                    name if name.starts_with("Fn::") => {
                        Err(format!("the local stack cannot resolve {name}"))
                    }
                    key => Ok(Value::Object(Map::from_iter([(
                        key.to_owned(),
                        self.resolve(args)?,
                    )]))),
                }
            }
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    let v = self.resolve(v)?;
                    if v.as_str() != Some(NO_VALUE) {
                        out.insert(k.clone(), v);
                    }
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_are_named_as_the_template_names_them() {
        assert_eq!(function_id("start-deployment"), "StartDeploymentFunction");
        assert_eq!(function_id("rollback-notifier"), "RollbackNotifierFunction");
    }

    #[test]
    fn cloudformation_functions_resolve_with_local_names() {
        let names = Names::local();
        let r = Resolver {
            names: &names,
            conditions: serde_json::json!({ "HasRole": { "Fn::Not": [{ "Fn::Equals": [{ "Ref": "ModelRoleArn" }, ""] }] } }),
            defaults: Value::Null,
        };
        let v = serde_json::json!([
            { "Fn::Sub": "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:${PagesTopic.TopicName}" },
            { "Fn::Sub": ["table/${t}", { "t": { "Ref": "DeploymentsTable" } }] },
            { "Fn::If": ["HasRole", { "Ref": "ModelRoleArn" }, { "Ref": "AWS::NoValue" }] },
            { "Fn::GetAtt": ["SchedulerRole", "Arn"] }
        ]);
        assert_eq!(
            r.resolve(&v).unwrap(),
            serde_json::json!([
                "arn:aws:sns:us-east-1:123456789012:guardrails-pages",
                "table/guardrails",
                "arn:aws:iam::123456789012:role/guardrails-models",
                "arn:aws:iam::123456789012:role/guardrails-scheduler"
            ])
        );
        assert!(r.resolve(&serde_json::json!({ "Ref": "Nope" })).is_err());
    }
}
