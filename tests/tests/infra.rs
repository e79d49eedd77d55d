//! The SAM template (`infra/template.yaml`): what cfn-lint cannot check (runtime, architecture,
//! build method, that each function is a crate of the workspace), and every EventBridge rule's
//! pattern against the `events/` samples it must and must not match, matched by moto's
//! EventBridge on the local stack.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target};
use guardrails_tests::local::{self, Clients};
use guardrails_tests::repo_root;
use serde_yaml_ng::Value as Yaml;

fn template() -> Yaml {
    let text = std::fs::read_to_string(repo_root().join("infra/template.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// Guardrails' own functions (the sample hook, deployed on request, is the user's side).
fn functions(template: &Yaml) -> Vec<(String, Yaml)> {
    every_function(template)
        .into_iter()
        .filter(|(_, r)| r["Condition"].as_str() != Some("DeploysSampleHook"))
        .collect()
}

fn every_function(template: &Yaml) -> Vec<(String, Yaml)> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(name, r)| (name.as_str().unwrap().to_owned(), r.clone()))
        .collect()
}

#[test]
fn every_function_is_a_rust_arm64_lambda_built_from_its_workspace_crate() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(globals["Architectures"][0].as_str(), Some("arm64"));
    let mut binaries = Vec::new();
    for (name, function) in every_function(&template) {
        assert_eq!(
            function["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{name}"
        );
        let binary = function["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap()
            .to_owned();
        let manifest = repo_root()
            .join("functions")
            .join(&binary)
            .join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|e| panic!("{name}: {}: {e}", manifest.display()));
        assert!(
            text.contains(&format!("name = \"{binary}\"")),
            "{name}: folder = package = function name"
        );
        binaries.push(binary);
    }
    binaries.sort();
    assert_eq!(
        binaries,
        vec![
            "bake-watcher",
            "endpoint-events",
            "hook-green-ready",
            "rollback-notifier",
            "start-deployment"
        ]
    );
}

/// The sample hook is deployed on request only, under a name Guardrails may invoke, with a log
/// group of its own, and answers within the 20 s Guardrails waits for one answer.
#[test]
fn the_sample_hook_is_optional_invocable_and_answers_in_time() {
    let template = template();
    let resources = &template["Resources"];
    let hook = &resources["HookGreenReadyFunction"];
    assert_eq!(hook["Condition"].as_str(), Some("DeploysSampleHook"));
    let name = hook["Properties"]["FunctionName"].as_str().unwrap();
    assert!(
        name.starts_with(guardrails::policy::HOOK_FUNCTION_PREFIX),
        "{name}"
    );
    assert_eq!(
        hook["Properties"]["Timeout"].as_u64(),
        Some(u64::from(guardrails::core::HOOK_CALL_SECS))
    );
    let logs = &resources["HookGreenReadyLogs"];
    assert_eq!(logs["Condition"].as_str(), Some("DeploysSampleHook"));
    assert_eq!(
        logs["Properties"]["LogGroupName"].as_str(),
        Some(format!("/aws/lambda/{name}").as_str())
    );
    assert_eq!(
        template["Parameters"]["DeploySampleHook"]["Default"].as_str(),
        Some("false")
    );
}

/// `(function, event name) -> pattern` for every EventBridge rule in the template.
fn patterns(template: &Yaml) -> BTreeMap<String, serde_json::Value> {
    let mut found = BTreeMap::new();
    for (name, function) in functions(template) {
        let Some(events) = function["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (event, spec) in events {
            if spec["Type"].as_str() != Some("CloudWatchEvent") {
                continue;
            }
            let pattern: serde_json::Value = serde_json::to_value(
                guardrails_local::wiring::resolved(&spec["Properties"]["Pattern"]),
            )
            .unwrap();
            found.insert(format!("{name}.{}", event.as_str().unwrap()), pattern);
        }
    }
    found
}

/// The rules each sample must reach; every other rule must not see it.
fn routes() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        (
            "cloudwatch-alarm-state-change.json",
            &["BakeWatcherFunction.AlarmChanges"],
        ),
        // What anyone with events:PutEvents could send before commands were signed: no rule
        // takes it now.
        ("forged-deployment-requested.json", &[]),
        (
            "guardrails-deployment-rolled-back.json",
            &["RollbackNotifierFunction.Outcomes"],
        ),
        (
            "malformed-endpoint-event-without-name.json",
            &["EndpointEventsFunction.EndpointChanges"],
        ),
        (
            "sagemaker-endpoint-deployment-state-change.json",
            &["EndpointEventsFunction.EndpointChanges"],
        ),
        (
            "sagemaker-endpoint-state-change-as-aws-documents-it.json",
            &["EndpointEventsFunction.EndpointChanges"],
        ),
        (
            "sagemaker-endpoint-state-change.json",
            &["EndpointEventsFunction.EndpointChanges"],
        ),
        // An approved version whose metadata changed: not an approval, so no rule takes it.
        ("sagemaker-model-package-metadata-update.json", &[]),
        (
            "sagemaker-model-package-state-change.json",
            &["StartDeploymentFunction.ApprovedPackages"],
        ),
        (
            "guardrails-sweep-shard.json",
            &["BakeWatcherFunction.SweepShards"],
        ),
        ("scheduled-sweep.json", &[]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_matches_exactly_the_samples_it_must() {
    let stack = local::start().await;
    let c = Clients::new(&stack);
    let patterns = patterns(&template());
    assert_eq!(patterns.len(), 5, "{:?}", patterns.keys());
    let mut queues = BTreeMap::new();
    for (i, (rule, pattern)) in patterns.iter().enumerate() {
        let queue = c
            .sqs
            .create_queue()
            .queue_name(format!("rule-{i}"))
            .send()
            .await
            .unwrap();
        let url = queue.queue_url().unwrap().to_owned();
        let arn = format!("arn:aws:sqs:us-east-1:123456789012:rule-{i}");
        let name = format!("rule-{i}");
        c.eventbridge
            .put_rule()
            .name(&name)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .unwrap();
        c.eventbridge
            .put_targets()
            .rule(&name)
            .targets(Target::builder().id("q").arn(arn).build().unwrap())
            .send()
            .await
            .unwrap();
        queues.insert(rule.clone(), url);
    }
    // Samples that are EventBridge events, plus the non-final variant of our state change,
    // which must not page.
    let mut samples: Vec<(String, serde_json::Value)> = Vec::new();
    for (file, _) in routes() {
        let text = std::fs::read_to_string(repo_root().join("events").join(file)).unwrap();
        samples.push((file.to_owned(), serde_json::from_str(&text).unwrap()));
    }
    let mut in_progress = samples
        .iter()
        .find(|(f, _)| f == "guardrails-deployment-rolled-back.json")
        .unwrap()
        .1
        .clone();
    in_progress["detail"]["outcome"] = serde_json::Value::Null;
    in_progress["detail"]["state"] = serde_json::json!("BAKING");
    samples.push(("(a non-final state change)".to_owned(), in_progress));

    for (file, sample) in &samples {
        let entry = PutEventsRequestEntry::builder()
            .source(sample["source"].as_str().unwrap())
            .detail_type(sample["detail-type"].as_str().unwrap())
            .detail(sample["detail"].to_string())
            .build();
        let out = c
            .eventbridge
            .put_events()
            .entries(entry)
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_entry_count(), 0, "{file}");
        let mut reached = Vec::new();
        for (rule, url) in &queues {
            let got = c
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            if !got.messages().is_empty() {
                reached.push(rule.as_str());
                for m in got.messages() {
                    c.sqs
                        .delete_message()
                        .queue_url(url)
                        .receipt_handle(m.receipt_handle().unwrap())
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
        let expected: Vec<&str> = routes()
            .iter()
            .find(|(f, _)| f == file)
            .map_or(Vec::new(), |(_, rules)| rules.to_vec());
        assert_eq!(reached, expected, "{file} reached the wrong rules");
    }
}

/// Operations: records that cannot be deleted by accident, logs that expire, a dead-letter
/// queue only this account's rules can write to.
#[test]
fn the_table_is_protected_logs_expire_and_the_dead_letter_queue_takes_only_this_accounts_rules() {
    let template = template();
    let resources = &template["Resources"];
    let text = |v: &Yaml| serde_yaml_ng::to_string(v).unwrap();
    let table = &resources["DeploymentsTable"];
    assert_eq!(
        table["Properties"]["DeletionProtectionEnabled"].as_bool(),
        Some(true)
    );
    assert_eq!(table["DeletionPolicy"].as_str(), Some("Retain"));
    let groups: Vec<String> = resources
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Logs::LogGroup"))
        .map(|r| {
            assert!(text(&r["Properties"]["RetentionInDays"]).contains("LogRetentionInDays"));
            text(&r["Properties"]["LogGroupName"])
        })
        .collect();
    for (name, function) in functions(&template) {
        let function_name = text(&function["Properties"]["FunctionName"]);
        let suffix = function_name
            .rsplit("${AWS::StackName}")
            .next()
            .unwrap()
            .trim()
            .trim_end_matches('"')
            .to_owned();
        assert!(
            groups
                .iter()
                .any(|g| g.contains(&format!("/aws/lambda/${{AWS::StackName}}{suffix}"))),
            "{name} ({suffix}) has no log group with a retention: {groups:?}"
        );
    }
    let policy = text(&resources["FailedEventsQueuePolicy"]["Properties"]["PolicyDocument"]);
    assert!(policy.contains("aws:SourceArn"), "{policy}");
    assert!(policy.contains(":rule/*"), "{policy}");
}

/// Guardrails pages about itself: an alarm on the failed-events queue and on each function's
/// errors, through the pages topic, whose customer managed key lets CloudWatch publish (the AWS
/// managed alias/aws/sns would not); each function may have reserved concurrency; the
/// failed-events policy redrives to every function but start-deployment.
#[test]
fn failures_of_guardrails_itself_page_and_a_flood_of_one_function_cannot_starve_the_others() {
    let template = template();
    let resources = &template["Resources"];
    let text = |v: &Yaml| serde_yaml_ng::to_string(v).unwrap();
    let alarms: Vec<&Yaml> = resources
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .collect();
    let watched: Vec<String> = alarms
        .iter()
        .map(|a| {
            let p = &a["Properties"];
            assert!(
                text(&p["AlarmActions"]).contains("PagesTopic"),
                "{}",
                text(a)
            );
            assert_eq!(p["TreatMissingData"].as_str(), Some("notBreaching"));
            text(&p["Dimensions"])
        })
        .collect();
    assert!(
        watched
            .iter()
            .any(|d| d.contains("FailedEventsQueue.QueueName")),
        "{watched:?}"
    );
    for (name, _) in functions(&template) {
        assert!(
            watched.iter().any(|d| d.contains(&format!("!Ref {name}"))),
            "no errors alarm for {name}: {watched:?}"
        );
    }
    let topic = &resources["PagesTopic"]["Properties"];
    assert_eq!(text(&topic["KmsMasterKeyId"]).trim(), "!Ref PagesKey");
    let key = text(&resources["PagesKey"]["Properties"]["KeyPolicy"]);
    assert!(key.contains("cloudwatch.amazonaws.com"), "{key}");
    assert!(key.contains("kms:GenerateDataKey*"), "{key}");
    let reserved = text(&template["Globals"]["Function"]["ReservedConcurrentExecutions"]);
    assert!(reserved.contains("ReservedConcurrency"), "{reserved}");
    let redrive = text(&resources["FailedEventsPolicy"]);
    assert!(!redrive.contains("StartDeploymentFunction"), "{redrive}");
    for function in ["EndpointEvents", "BakeWatcher", "RollbackNotifier"] {
        assert!(
            redrive.contains(&format!("{function}Function.Arn")),
            "{redrive}"
        );
    }
}

/// Every rule takes only this account's events; commands come only through the function URL,
/// with IAM auth, and the operator's policy keeps `lambda:InvokeFunction` to the URL.
#[test]
fn rules_take_this_accounts_events_and_commands_come_only_through_the_signed_url() {
    let template = template();
    for (rule, pattern) in patterns(&template) {
        assert_eq!(
            pattern["account"],
            serde_json::json!([guardrails_local::iam::ACCOUNT]),
            "{rule} must match only this account's events"
        );
        assert_ne!(
            pattern["detail-type"],
            serde_json::json!(["Guardrails Deployment Requested"]),
            "{rule}"
        );
    }
    let with_urls: Vec<String> = functions(&template)
        .into_iter()
        .filter(|(_, f)| !f["Properties"]["FunctionUrlConfig"].is_null())
        .map(|(_, f)| {
            assert_eq!(
                f["Properties"]["FunctionUrlConfig"]["AuthType"].as_str(),
                Some("AWS_IAM")
            );
            f["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(with_urls, guardrails_local::lambda::FUNCTIONS_WITH_URLS);
    let operator = serde_yaml_ng::to_string(&template["Resources"]["OperatorPolicy"]).unwrap();
    assert!(
        operator.contains("lambda:InvokedViaFunctionUrl"),
        "{operator}"
    );
    assert!(
        operator.contains("lambda:FunctionUrlAuthType: AWS_IAM"),
        "{operator}"
    );
}

/// The dashboard draws each of Guardrails' own metrics (`guardrails::metrics`), the
/// failed-events queue and every function, from a body CloudWatch can read (JSON once `!Sub`
/// has replaced its references).
#[test]
fn the_dashboard_shows_guardrails_metrics_failed_events_and_every_function() {
    let template = template();
    let dashboard = &template["Resources"]["Dashboard"]["Properties"];
    let body = serde_yaml_ng::to_string(&dashboard["DashboardBody"]).unwrap();
    let body = body.trim_start_matches("!Sub").trim();
    let body: String = serde_yaml_ng::from_str::<String>(body).unwrap();
    let mut replaced = body.clone();
    while let Some(start) = replaced.find("${") {
        let end = start + replaced[start..].find('}').unwrap();
        replaced.replace_range(start..=end, "x");
    }
    let parsed: serde_json::Value = serde_json::from_str(&replaced)
        .unwrap_or_else(|e| panic!("the dashboard body is not JSON: {e}\n{replaced}"));
    let metrics: Vec<String> = parsed["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["properties"]["metrics"].as_array().unwrap().clone())
        .map(|m| m.to_string())
        .collect();
    for name in [
        "Deployments",
        "SecondsToBlue",
        "FunctionErrors",
        "EventsRefused",
    ] {
        let drawn = format!("[\"{}\",\"{name}\"", guardrails::metrics::NAMESPACE);
        assert!(
            metrics.iter().any(|m| m.starts_with(&drawn)),
            "{name}: {metrics:?}"
        );
    }
    assert!(body.contains("${FailedEventsQueue.QueueName}"), "{body}");
    for (name, f) in functions(&template) {
        let binary = f["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        assert!(
            body.contains(&format!("\"Function\", \"{binary}\"")),
            "{name}'s errors: {body}"
        );
        assert!(
            body.contains(&format!("${{AWS::StackName}}-{binary}")),
            "{name}'s Lambda metrics: {body}"
        );
    }
}
