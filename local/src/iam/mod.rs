//! IAM on every local call, as AWS evaluates it: each request is signed with an access key; the
//! key names a principal (the local administrator, or one function's role from
//! `infra/template.yaml`); the request asks for one or more actions, each on the resources AWS
//! authorizes it against (the Service Authorization Reference, `actions`); and each resource is
//! decided on separately by the principal's policies (`policy`), with the request's condition
//! keys and the resource's own tags. The first resource refused answers the whole request with
//! `AccessDenied`, in the words AWS uses.
//!
//! What this module leaves out, on purpose: signatures are not verified (the keys are local and
//! public), and there are no resource-based policies, permission boundaries, SCPs or session
//! policies (the template uses none).

pub mod actions;
pub mod policy;
pub mod template;

use std::collections::BTreeMap;

use policy::{Context, Decision, Policy, evaluate};

/// The account every local resource lives in.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// The local administrator's access key (what the tests, the demo and a person with boto3 use):
/// allowed everything, as an account administrator.
pub const ADMIN_ACCESS_KEY: &str = "testing";
pub const ADMIN_SECRET_KEY: &str = "testing";
pub const ADMIN_ARN: &str = "arn:aws:iam::123456789012:user/local-admin";

/// The local operator: a session of role `ml-release`, holding the template's `OperatorPolicy`
/// and `FailedEventsPolicy` and named in the local stack's `DeployPrincipals`,
/// `ApprovePrincipals` and `AbortPrincipals` (what a release pipeline or an on-call engineer is
/// given).
pub const OPERATOR_ACCESS_KEY: &str = "ASIALOCALOPERATOR";
pub const OPERATOR_SECRET_KEY: &str = "local-operator";
pub const OPERATOR_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/ml-release";
pub const OPERATOR_ARN: &str = "arn:aws:sts::123456789012:assumed-role/ml-release/local-operator";

/// Someone who may put events on the default bus and nothing else (a permission many roles
/// have): what the security tests attack with.
pub const INTRUDER_ACCESS_KEY: &str = "AKIALOCALMALLORY";
pub const INTRUDER_SECRET_KEY: &str = "local-mallory";
pub const INTRUDER_ARN: &str = "arn:aws:iam::123456789012:user/mallory";

/// The access key of function `binary`'s role: `ASIALOCAL` and its name in capitals, without
/// dashes (`start-deployment` -> `ASIALOCALSTARTDEPLOYMENT`). Each function's `Cargo.toml` gives
/// it to `cargo lambda watch`.
pub fn access_key(binary: &str) -> String {
    let name: String = binary
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    format!("ASIALOCAL{name}")
}

/// The secret of function `binary`'s access key (not checked: signatures are not verified).
pub fn secret_key(binary: &str) -> String {
    format!("local-{binary}")
}

/// Who signs requests.
#[derive(Debug, Clone)]
pub struct Principal {
    /// As AWS names it in messages: `arn:aws:sts::123456789012:assumed-role/<role>/<session>`.
    pub arn: String,
    pub admin: bool,
    pub policies: Vec<Policy>,
}

/// A resource a request touches, with what IAM may ask of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// `sagemaker:endpoint-config`: the service and the reference's resource type.
    pub kind: String,
    pub arn: String,
    /// The resource's tags (`aws:ResourceTag/<key>`).
    pub tags: Vec<(String, String)>,
}

impl Resource {
    pub fn new(kind: &str, arn: impl Into<String>) -> Resource {
        Resource {
            kind: kind.to_owned(),
            arn: arn.into(),
            tags: Vec::new(),
        }
    }

    pub fn tagged(mut self, tags: Vec<(String, String)>) -> Resource {
        self.tags = tags;
        self
    }
}

/// One action a request needs, on its resources (none: authorized against `*`).
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    pub action: String,
    pub resources: Vec<Resource>,
    /// The request's condition keys (`aws:RequestTag/<k>`, `aws:TagKeys`, `iam:PassedToService`,
    /// `dynamodb:EnclosingOperation`, ...).
    pub context: Context,
}

impl Ask {
    pub fn new(action: &str, resources: Vec<Resource>) -> Ask {
        Ask {
            action: action.to_owned(),
            resources,
            context: Context::new(),
        }
    }

    pub fn with(mut self, key: &str, values: Vec<String>) -> Ask {
        if !values.is_empty() {
            self.context.insert(key.to_owned(), values);
        }
        self
    }

    /// `aws:RequestTag/<k>` and `aws:TagKeys` for the tags a request sets.
    pub fn with_request_tags(mut self, tags: &[(String, String)]) -> Ask {
        for (k, v) in tags {
            self.context
                .insert(format!("aws:RequestTag/{k}"), vec![v.clone()]);
        }
        let keys = tags.iter().map(|(k, _)| k.clone()).collect();
        self.with("aws:TagKeys", keys)
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization` header: AWS answers `MissingAuthenticationToken`.
    Unsigned,
    /// An access key nobody here has: `UnrecognizedClientException` / `InvalidClientTokenId`.
    UnknownKey(String),
    /// A policy does not allow it (or denies it): `AccessDenied`, in IAM's words.
    NotAuthorized {
        principal: String,
        action: String,
        resource: String,
        explicit: bool,
    },
}

impl Denied {
    /// What AWS says (IAM User Guide, "Troubleshoot access denied error messages").
    pub fn message(&self) -> String {
        match self {
            Denied::Unsigned => "Request is missing Authentication Token".to_owned(),
            Denied::UnknownKey(_) => {
                "The security token included in the request is invalid.".to_owned()
            }
            Denied::NotAuthorized {
                principal,
                action,
                resource,
                explicit: false,
            } => format!(
                "User: {principal} is not authorized to perform: {action} on resource: {resource} because no identity-based policy allows the {action} action"
            ),
            Denied::NotAuthorized {
                principal,
                action,
                resource,
                explicit: true,
            } => format!(
                "User: {principal} is not authorized to perform: {action} on resource: {resource} with an explicit deny in an identity-based policy"
            ),
        }
    }
}

/// The most decisions kept in `Iam::log` (the older half goes when it is full).
const MAX_LOG: usize = 20_000;

/// Every principal of the local account, by access key.
#[derive(Debug, Clone, Default)]
pub struct Iam {
    principals: BTreeMap<String, Principal>,
    /// Every decision taken for a function, oldest first: `(principal, action, resource,
    /// allowed)`, so that tests can see every call the code makes.
    pub log: Vec<(String, String, String, bool)>,
}

impl Iam {
    /// The administrator only.
    pub fn admin_only() -> Iam {
        let mut iam = Iam::default();
        iam.principals.insert(
            ADMIN_ACCESS_KEY.to_owned(),
            Principal {
                arn: ADMIN_ARN.to_owned(),
                admin: true,
                policies: Vec::new(),
            },
        );
        iam
    }

    /// The administrator and one principal per function role of `template`.
    pub fn with_roles(roles: &BTreeMap<String, template::Role>) -> Iam {
        let mut iam = Iam::admin_only();
        for (binary, role) in roles {
            iam.principals.insert(
                access_key(binary),
                Principal {
                    arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/{}/{binary}", role.name),
                    admin: false,
                    policies: role.policies.clone(),
                },
            );
        }
        iam
    }

    /// Adds the operator (with `operator_policy`) and the intruder.
    pub fn with_people(mut self, operator_policies: Vec<Policy>) -> Iam {
        if !operator_policies.is_empty() {
            self.principals.insert(
                OPERATOR_ACCESS_KEY.to_owned(),
                Principal {
                    arn: OPERATOR_ARN.to_owned(),
                    admin: false,
                    policies: operator_policies,
                },
            );
        }
        let put_events = serde_json::json!({ "Statement": [{
            "Effect": "Allow", "Action": "events:PutEvents",
            "Resource": arn("events", "event-bus/default"),
        }]});
        if let Ok(policy) = Policy::parse(&put_events) {
            self.principals.insert(
                INTRUDER_ACCESS_KEY.to_owned(),
                Principal {
                    arn: INTRUDER_ARN.to_owned(),
                    admin: false,
                    policies: vec![policy],
                },
            );
        }
        self
    }

    pub fn principal(&self, access_key: &str) -> Option<&Principal> {
        self.principals.get(access_key)
    }

    /// Decides `asks` for the holder of `access_key`; the first resource refused refuses all.
    /// Returns the caller's ARN.
    pub fn authorize(&mut self, access_key: Option<&str>, asks: &[Ask]) -> Result<String, Denied> {
        let key = access_key.ok_or(Denied::Unsigned)?;
        let principal = self
            .principals
            .get(key)
            .ok_or_else(|| Denied::UnknownKey(key.to_owned()))?
            .clone();
        if principal.admin {
            return Ok(principal.arn);
        }
        for ask in asks {
            let table = actions::table();
            let known = table.actions.contains_key(&ask.action);
            let everything = [Resource::new("", "*")];
            let resources: &[Resource] = if ask.resources.is_empty() {
                &everything
            } else {
                &ask.resources
            };
            for resource in resources {
                let mut context = ask.context.clone();
                for (k, v) in &resource.tags {
                    context.insert(format!("aws:ResourceTag/{k}"), vec![v.clone()]);
                    // SageMaker's own spelling of the same key.
                    if resource.kind.starts_with("sagemaker:") {
                        context.insert(format!("sagemaker:ResourceTag/{k}"), vec![v.clone()]);
                    }
                }
                // An action missing from the authorization table is never allowed to a function:
                // the table is what keeps the local stack honest about what AWS checks.
                let decision = if known {
                    evaluate(&principal.policies, &ask.action, &resource.arn, &context)
                } else {
                    Decision::ImplicitDeny
                };
                let allowed = decision == Decision::Allowed;
                if self.log.len() >= MAX_LOG {
                    self.log.drain(..MAX_LOG / 2);
                }
                self.log.push((
                    principal.arn.clone(),
                    ask.action.clone(),
                    resource.arn.clone(),
                    allowed,
                ));
                if !allowed {
                    return Err(Denied::NotAuthorized {
                        principal: principal.arn.clone(),
                        action: ask.action.clone(),
                        resource: resource.arn.clone(),
                        explicit: decision == Decision::ExplicitDeny,
                    });
                }
            }
        }
        Ok(principal.arn)
    }
}

/// `[{"Key": k, "Value": v}]` (SageMaker's and CloudWatch's tag lists) as pairs.
pub fn tag_pairs(value: Option<&serde_json::Value>) -> Vec<(String, String)> {
    value
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((
                t.get("Key")?.as_str()?.to_owned(),
                t.get("Value")?.as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// `arn:aws:<service>:us-east-1:123456789012:<rest>`.
pub fn arn(service: &str, rest: &str) -> String {
    format!("arn:aws:{service}:{REGION}:{ACCOUNT}:{rest}")
}

/// The access key of a SigV4 `Authorization` header (`AWS4-HMAC-SHA256 Credential=AKID/date/
/// region/service/aws4_request, ...`) and the service it is signed for.
pub fn signer(authorization: &str) -> Option<(String, String)> {
    let credential = authorization
        .split(['\n', ' ', ','])
        .find_map(|part| part.trim().strip_prefix("Credential="))?;
    let mut parts = credential.split('/');
    let key = parts.next()?.to_owned();
    let service = parts.nth(2)?.to_owned();
    Some((key, service))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_keys_are_derived_from_their_names() {
        assert_eq!(access_key("start-deployment"), "ASIALOCALSTARTDEPLOYMENT");
        assert_eq!(access_key("bake-watcher"), "ASIALOCALBAKEWATCHER");
    }

    #[test]
    fn the_signer_is_read_from_the_authorization_header() {
        let header = "AWS4-HMAC-SHA256 Credential=ASIALOCALBAKEWATCHER/20261202/us-east-1/sagemaker/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(
            signer(header),
            Some(("ASIALOCALBAKEWATCHER".to_owned(), "sagemaker".to_owned()))
        );
        assert_eq!(signer("Bearer x"), None);
    }

    #[test]
    fn unsigned_and_unknown_callers_are_refused_as_aws_refuses_them() {
        let mut iam = Iam::admin_only();
        assert_eq!(iam.authorize(None, &[]), Err(Denied::Unsigned));
        assert_eq!(
            iam.authorize(Some("AKIAOTHER"), &[]),
            Err(Denied::UnknownKey("AKIAOTHER".to_owned()))
        );
        assert_eq!(
            iam.authorize(Some(ADMIN_ACCESS_KEY), &[]),
            Ok(ADMIN_ARN.to_owned())
        );
    }
}
