//! IAM on the local stack, as AWS enforces it: every function is authorized with its role in
//! `infra/template.yaml` (expanded by AWS SAM's translator), every call it makes is in the
//! authorization table and allowed, nothing more is granted, and a call the template does not
//! allow is refused in the service's own words.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use guardrails_local::iam::policy::{Context, Decision, Policy, evaluate};
use guardrails_local::iam::template::{Names, Role, roles};
use guardrails_local::iam::{Ask, Iam, Resource, access_key, actions, arn};
use guardrails_local::stack::default_template;
use guardrails_tests::local::{self, Clients};
use guardrails_tests::repo_root;

/// What each function's code calls, as IAM names it: the driver's calls for the three that
/// reconcile deployments, plus what each does besides.
const RECONCILE: [&str; 25] = [
    "sagemaker:DescribeEndpoint",
    "sagemaker:DescribeEndpointConfig",
    // The configs Guardrails creates copy the user's, tags and KMS key included.
    "sagemaker:ListTags",
    "sagemaker:AddTags",
    "kms:CreateGrant",
    // Blue's scalable target is suspended during the deployment and restored after.
    "application-autoscaling:RegisterScalableTarget",
    "sagemaker:CreateEndpointConfig",
    "sagemaker:UpdateEndpoint",
    "sagemaker:UpdateEndpointWeightsAndCapacities",
    "sagemaker:DeleteEndpointConfig",
    "cloudwatch:DescribeAlarms",
    "cloudwatch:DescribeAlarmHistory",
    "cloudwatch:PutMetricAlarm",
    "cloudwatch:DeleteAlarms",
    // The judge's alarm under the native engine, which SageMaker watches.
    "cloudwatch:SetAlarmState",
    // The judge's per-variant counts (and the preflight's recent-data check).
    "cloudwatch:GetMetricData",
    // The hooks a policy names (guardrails-hook-*).
    "lambda:InvokeFunction",
    "events:PutEvents",
    "scheduler:CreateSchedule",
    "scheduler:UpdateSchedule",
    "iam:PassRole",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    // The wake-up Scheduler holds, noted beside the record.
    "dynamodb:UpdateItem",
];

fn calls_of(function: &str) -> BTreeSet<String> {
    let extra: &[&str] = match function {
        "start-deployment" => &[
            "sagemaker:CreateModel",
            "sagemaker:DescribeModel",
            "servicequotas:ListServiceQuotas",
            "sagemaker:DescribeModelPackage",
            "ssm:GetParameter",
            // The read commands: history and audit trails, the active deployments.
            "dynamodb:Query",
            "dynamodb:Scan",
            "application-autoscaling:DescribeScalableTargets",
            "application-autoscaling:DescribeScalingPolicies",
        ],
        "endpoint-events" => &[],
        // The sweep's indexes and batched reads, the alarm index.
        "bake-watcher" => &["dynamodb:Scan", "dynamodb:Query", "dynamodb:BatchGetItem"],
        "rollback-notifier" => {
            return [
                "sns:Publish",
                // SNS uses the pages topic's customer managed key on the publisher's behalf.
                "kms:GenerateDataKey",
                "kms:Decrypt",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:Query",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        }
        // The sample hook reads the endpoint, nothing else.
        "hook-green-ready" => {
            return BTreeSet::from(["sagemaker:DescribeEndpoint".to_owned()]);
        }
        other => panic!("no function {other}"),
    };
    RECONCILE
        .iter()
        .chain(extra)
        .map(|s| (*s).to_owned())
        .collect()
}

const FUNCTIONS: [&str; 5] = [
    "start-deployment",
    "endpoint-events",
    "bake-watcher",
    "rollback-notifier",
    "hook-green-ready",
];

fn template_roles(path: &std::path::Path) -> BTreeMap<String, Role> {
    roles(path, &Names::local()).unwrap_or_else(|e| panic!("{e}"))
}

/// The actions the role's statements allow (by name; SAM's own additions for logging, tracing
/// and the on-failure destination, which Lambda uses, not the code, left out).
fn granted(role: &Role) -> BTreeSet<String> {
    role.policies
        .iter()
        .flat_map(|p| &p.statements)
        .filter(|s| s.allow && !s.actions.not)
        .flat_map(|s| s.actions.patterns.iter().cloned())
        .filter(|a| !a.starts_with("logs:") && !a.starts_with("xray:") && a != "sqs:SendMessage")
        .collect()
}

fn endpoint(name: &str) -> Resource {
    Resource::new(
        "sagemaker:endpoint",
        arn("sagemaker", &format!("endpoint/{name}")),
    )
    .tagged(vec![("guardrails:managed".to_owned(), "true".to_owned())])
}

fn config(name: &str) -> Resource {
    Resource::new(
        "sagemaker:endpoint-config",
        arn("sagemaker", &format!("endpoint-config/{name}")),
    )
}

#[test]
fn the_template_as_it_was_denies_update_endpoint_on_its_config_and_the_alarms_history() {
    let old = repo_root().join("tests/fixtures/template-before-issue-10.yaml");
    let mut iam = Iam::with_roles(&template_roles(&old));
    let key = access_key("bake-watcher");
    let update = Ask::new(
        "sagemaker:UpdateEndpoint",
        vec![endpoint("fraud"), config("guardrails-d1-blue-green")],
    );
    let denied = iam.authorize(Some(&key), &[update]).unwrap_err();
    assert!(
        denied.message().contains("sagemaker:UpdateEndpoint on resource: arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/guardrails-d1-blue-green because no identity-based policy allows"),
        "{}",
        denied.message()
    );
    let history = Ask::new(
        "cloudwatch:DescribeAlarmHistory",
        vec![Resource::new(
            "cloudwatch:alarm",
            arn("cloudwatch", "alarm:fraud-5xx"),
        )],
    );
    let denied = iam.authorize(Some(&key), &[history]).unwrap_err();
    assert!(
        denied.message().contains("cloudwatch:DescribeAlarmHistory"),
        "{}",
        denied.message()
    );
}

#[test]
fn the_template_grants_each_function_exactly_the_calls_its_code_makes() {
    let roles = template_roles(&default_template());
    for function in FUNCTIONS {
        let role = &roles[function];
        assert_eq!(
            granted(role),
            calls_of(function),
            "{function}: granted vs called"
        );
    }
}

#[test]
fn every_call_is_in_the_authorization_table_and_the_fixed_template_allows_it() {
    let roles = template_roles(&default_template());
    let table = actions::table();
    let mut iam = Iam::with_roles(&roles);
    for function in FUNCTIONS {
        for action in calls_of(function) {
            assert!(
                table.actions.contains_key(&action),
                "{action} is not in the table"
            );
        }
    }
    // The deploy, the rollback to the user's own (untagged) config, and the native history.
    let bake = access_key("bake-watcher");
    for ask in [
        Ask::new(
            "sagemaker:UpdateEndpoint",
            vec![endpoint("fraud"), config("guardrails-d1-blue-green")],
        ),
        Ask::new(
            "sagemaker:UpdateEndpoint",
            vec![endpoint("fraud"), config("fraud-v1")],
        ),
        Ask::new(
            "cloudwatch:DescribeAlarmHistory",
            vec![Resource::new(
                "cloudwatch:alarm",
                arn("cloudwatch", "alarm:fraud-5xx"),
            )],
        ),
        Ask::new(
            "iam:PassRole",
            vec![Resource::new(
                "iam:role",
                "arn:aws:iam::123456789012:role/guardrails-scheduler",
            )],
        )
        .with(
            "iam:PassedToService",
            vec!["scheduler.amazonaws.com".to_owned()],
        ),
    ] {
        assert!(
            iam.authorize(Some(&bake), std::slice::from_ref(&ask))
                .is_ok(),
            "{ask:?}"
        );
    }
    // Not on an endpoint without the opt-in tag, not the scheduler role to another service.
    let untagged = Resource::new("sagemaker:endpoint", arn("sagemaker", "endpoint/other"));
    let weights = Ask::new(
        "sagemaker:UpdateEndpointWeightsAndCapacities",
        vec![untagged],
    );
    assert!(iam.authorize(Some(&bake), &[weights]).is_err());
    let pass = Ask::new(
        "iam:PassRole",
        vec![Resource::new(
            "iam:role",
            "arn:aws:iam::123456789012:role/guardrails-scheduler",
        )],
    )
    .with("iam:PassedToService", vec!["ec2.amazonaws.com".to_owned()]);
    assert!(iam.authorize(Some(&bake), &[pass]).is_err());
}

/// Every SDK operation the adapters call, as IAM names it (each call classifies its errors
/// with that name), checked against the source: a new call without its name, or with a name
/// missing from the table, fails here.
#[test]
fn every_sdk_call_of_the_code_is_named_and_in_the_table() {
    let services = [
        ("autoscaling.rs", "application-autoscaling"),
        ("cloudwatch.rs", "cloudwatch"),
        ("dynamodb.rs", "dynamodb"),
        ("eventbridge.rs", "events"),
        ("lambda.rs", "lambda"),
        ("sagemaker.rs", "sagemaker"),
        ("scheduler.rs", "scheduler"),
        ("sns.rs", "sns"),
    ];
    let table = actions::table();
    let all_calls: BTreeSet<String> = FUNCTIONS.iter().flat_map(|f| calls_of(f)).collect();
    for (file, service) in services {
        let text = std::fs::read_to_string(repo_root().join("shared/src/aws").join(file)).unwrap();
        let squashed: String = text.split_whitespace().collect();
        let called: BTreeSet<String> = ["client.", "quotas."]
            .iter()
            .flat_map(|prefix| {
                squashed
                    .match_indices(prefix)
                    .map(move |(i, _)| (i, *prefix))
            })
            .filter_map(|(i, prefix)| {
                let service = if prefix == "quotas." {
                    "servicequotas"
                } else {
                    service
                };
                let rest = &squashed[i + prefix.len()..];
                let op = rest.split("()").next()?;
                op.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
                    .then(|| {
                        let pascal: String = op
                            .split('_')
                            .map(|w| w[..1].to_uppercase() + &w[1..])
                            .collect();
                        // IAM's name for Lambda's Invoke (Service Authorization Reference).
                        match format!("{service}:{pascal}") {
                            invoke if invoke == "lambda:Invoke" => {
                                "lambda:InvokeFunction".to_owned()
                            }
                            api => api,
                        }
                    })
            })
            .collect();
        let named: BTreeSet<String> = text
            .match_indices("classify(\"")
            .filter_map(|(i, _)| text[i + 10..].split('"').next().map(str::to_owned))
            .collect();
        assert_eq!(
            called, named,
            "{file}: every SDK call classifies its errors with its own name"
        );
        for api in called {
            // A transaction is authorized as the actions inside it; the table is made by the
            // local wiring, never by a function.
            if api == "dynamodb:TransactWriteItems" || api == "dynamodb:CreateTable" {
                continue;
            }
            assert!(
                table.actions.contains_key(&api),
                "{api} (in {file}) is not in the authorization table"
            );
            assert!(
                all_calls.contains(&api),
                "{api} (in {file}) is called but no function is known to call it"
            );
        }
    }
}

#[test]
fn a_condition_operator_the_template_uses_is_understood() {
    // The template's conditions are StringEquals only; a typo in one must not grant anything.
    let p = Policy::parse(
        &serde_json::json!({ "Statement": [{ "Effect": "Allow", "Action": "*", "Resource": "*",
        "Condition": { "StringEqual": { "aws:ResourceTag/guardrails:managed": "true" } } }] }),
    )
    .unwrap();
    assert_eq!(
        evaluate(&[p], "sagemaker:UpdateEndpoint", "x", &Context::new()),
        Decision::ImplicitDeny
    );
}

#[tokio::test]
async fn calls_the_template_does_not_allow_are_refused_as_aws_refuses_them() {
    let stack = local::start().await;
    let admin = Clients::new(&stack);
    local::endpoint_serving(&admin, "fraud", "fraud-v1", "fraud-model-v1", 1).await;
    let watcher = Clients::for_function(&stack, "bake-watcher");
    let notifier = Clients::for_function(&stack, "rollback-notifier");

    let e = watcher
        .sagemaker
        .delete_endpoint()
        .endpoint_name("fraud")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    assert_eq!(
        e.message(),
        Some(
            "User: arn:aws:sts::123456789012:assumed-role/BakeWatcherFunctionRole/bake-watcher is not authorized to perform: sagemaker:DeleteEndpoint on resource: arn:aws:sagemaker:us-east-1:123456789012:endpoint/fraud because no identity-based policy allows the sagemaker:DeleteEndpoint action"
        )
    );
    // The user's own alarm is not Guardrails' to delete.
    let e = watcher
        .cloudwatch
        .delete_alarms()
        .alarm_names("fraud-5xx")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDenied"), "{e:?}");
    // The notifier writes no deployment records, sends no events.
    let e = notifier
        .dynamodb
        .delete_item()
        .table_name("guardrails")
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("x".to_owned()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("y".to_owned()),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"), "{e:?}");
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source("guardrails")
        .detail_type("Guardrails Deployment Requested")
        .detail("{}")
        .build();
    let e = notifier
        .eventbridge
        .put_events()
        .entries(entry)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"), "{e:?}");
    // Pages come from the notifier only.
    let e = watcher
        .sns
        .publish()
        .topic_arn("arn:aws:sns:us-east-1:123456789012:guardrails-pages")
        .message("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AuthorizationError"), "{e:?}");
    // Wake-ups are Guardrails' own schedules only.
    let e = watcher
        .scheduler
        .get_schedule()
        .name("guardrails-fraud")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDeniedException"), "{e:?}");
    // An access key nobody has.
    let stranger = aws_sdk_sagemaker::Client::from_conf(
        aws_sdk_sagemaker::config::Builder::from(&stack.sdk_config())
            .credentials_provider(aws_sdk_sagemaker::config::Credentials::new(
                "AKIASTRANGER",
                "x",
                None,
                None,
                "t",
            ))
            .build(),
    );
    let e = stranger.list_endpoints().send().await.unwrap_err();
    assert_eq!(e.code(), Some("UnrecognizedClientException"), "{e:?}");
}

#[tokio::test]
async fn a_config_with_a_kms_key_needs_the_grant_on_that_key_which_the_template_gives_for_aws_resources_only()
 {
    let key = access_key("bake-watcher");
    let sm = guardrails_local::sagemaker::SageMaker::default();
    let asks = sm.asks(
        "CreateEndpointConfig",
        &serde_json::json!({ "EndpointConfigName": "guardrails-d1-blue-green", "KmsKeyId": "1234abcd-12ab-34cd-56ef-1234567890ab", "ProductionVariants": [] }),
    );
    // The template before the configs copied the user's settings had no grant.
    let old = repo_root().join("tests/fixtures/template-before-issue-10.yaml");
    let denied = Iam::with_roles(&template_roles(&old))
        .authorize(Some(&key), &asks)
        .unwrap_err();
    assert!(
        denied.message().contains("kms:CreateGrant on resource: arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        "{}",
        denied.message()
    );
    let mut iam = Iam::with_roles(&template_roles(&default_template()));
    assert!(iam.authorize(Some(&key), &asks).is_ok());
    // A grant that is not for an AWS resource (a person's own use of the key) stays denied.
    let own_use = Ask::new(
        "kms:CreateGrant",
        vec![Resource::new(
            "kms:key",
            arn("kms", "key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        )],
    );
    assert!(iam.authorize(Some(&key), &[own_use]).is_err());
}

/// Tags are read where a call needs them: the user's configs (copied into Guardrails' own) by
/// the functions that create configs, endpoints (the opt-in tag) by the preflight only.
#[test]
fn list_tags_is_granted_on_configs_to_reconcilers_and_on_endpoints_to_the_preflight_only() {
    let mut iam = Iam::with_roles(&template_roles(&default_template()));
    let list = |resource: Resource| Ask::new("sagemaker:ListTags", vec![resource]);
    for function in ["start-deployment", "endpoint-events", "bake-watcher"] {
        let key = access_key(function);
        assert!(
            iam.authorize(Some(&key), &[list(config("fraud-v1"))])
                .is_ok(),
            "{function}"
        );
        let on_endpoint = iam.authorize(Some(&key), &[list(endpoint("fraud"))]);
        assert_eq!(
            on_endpoint.is_ok(),
            function == "start-deployment",
            "{function}"
        );
    }
}
