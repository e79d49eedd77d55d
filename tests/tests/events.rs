//! Every sample in `events/` is read by the functions' parser into what it means (EventBridge
//! events by `inbound::parse`, function URL requests' bodies by `inbound::command`); malformed
//! samples get an error naming the event and the field. A sample nobody reads is a bug: the
//! first test fails when a file is added to `events/` without an expectation here.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use guardrails::events::PhaseKind;
use guardrails::inbound::{Inbound, Sent};
use guardrails::policy::Policy;
use guardrails::units::Timestamp;
use guardrails_tests::repo_root;

/// AWS's samples come from several accounts: read as any account's (the functions read only
/// their own account's; `forged_events_from_another_account_are_refused`).
fn parse(event: &serde_json::Value) -> Result<Inbound, guardrails::inbound::InboundError> {
    guardrails::inbound::parse(event, None)
}

/// A function URL sample's command, read as `start-deployment` reads it.
fn command_of(sample: &serde_json::Value) -> Result<Sent, guardrails::inbound::CommandError> {
    guardrails::inbound::command(sample["body"].as_str().unwrap_or_default())
}

fn sample(file: &str) -> serde_json::Value {
    let path = repo_root().join("events").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What each sample must be read as (`None`: refused as malformed).
fn expectations() -> Vec<(&'static str, Option<&'static str>)> {
    vec![
        ("cloudwatch-alarm-state-change.json", Some("AlarmChanged")),
        ("command-approve.json", Some("approve")),
        ("command-deploy-invalid-policy.json", Some("deploy")),
        ("command-deploy-native-dry-run.json", Some("deploy")),
        ("command-deploy.json", Some("deploy")),
        ("command-status.json", Some("status")),
        // Not a command any function takes (and from another account: refused there).
        ("forged-deployment-requested.json", Some("Other")),
        (
            "guardrails-deployment-rolled-back.json",
            Some("StateChanged"),
        ),
        ("guardrails-sweep-shard.json", Some("SweepShard")),
        ("guardrails-wake-up.json", Some("WakeUp")),
        ("malformed-endpoint-event-without-name.json", None),
        (
            "sagemaker-endpoint-deployment-state-change.json",
            Some("EndpointChanged"),
        ),
        (
            "sagemaker-endpoint-state-change-as-aws-documents-it.json",
            Some("EndpointChanged"),
        ),
        (
            "sagemaker-endpoint-state-change.json",
            Some("EndpointChanged"),
        ),
        (
            "sagemaker-model-package-metadata-update.json",
            Some("ModelPackageChanged"),
        ),
        (
            "sagemaker-model-package-state-change.json",
            Some("ModelPackageChanged"),
        ),
        ("scheduled-sweep.json", Some("Sweep")),
    ]
}

fn kind(inbound: &Inbound) -> &'static str {
    match inbound {
        Inbound::ModelPackageChanged(_) => "ModelPackageChanged",
        Inbound::EndpointChanged { .. } => "EndpointChanged",
        Inbound::AlarmChanged(_) => "AlarmChanged",
        Inbound::WakeUp(_) => "WakeUp",
        Inbound::Sweep => "Sweep",
        Inbound::SweepShard(_) => "SweepShard",
        Inbound::StateChanged(_) => "StateChanged",
        Inbound::Other { .. } => "Other",
    }
}

#[test]
fn every_sample_is_read_as_what_it_means() {
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".json"))
        .collect();
    files.sort();
    let expected = expectations();
    let listed: Vec<&str> = expected.iter().map(|(f, _)| *f).collect();
    assert_eq!(files, listed, "every sample in events/ has an expectation");
    for (file, want) in expected {
        let event = sample(file);
        let got = if event.get("requestContext").is_some() {
            command_of(&event)
                .map(|c| match c {
                    Sent::Deploy(_) => "deploy",
                    Sent::Approve(_) => "approve",
                    Sent::Abort(_) => "abort",
                    Sent::Status(_) => "status",
                    Sent::History(_) => "history",
                    Sent::Show(_) => "show",
                })
                .map_err(|e| e.to_string())
        } else {
            parse(&event).map(|i| kind(&i)).map_err(|e| e.to_string())
        };
        assert_eq!(got.as_ref().ok().copied(), want, "{file}: {got:?}");
    }
}

#[test]
fn samples_carry_what_the_functions_need() {
    let Inbound::EndpointChanged { endpoint_name } =
        parse(&sample("sagemaker-endpoint-deployment-state-change.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(endpoint_name, "sample-endpoint");
    let Inbound::AlarmChanged(alarm) =
        parse(&sample("cloudwatch-alarm-state-change.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (alarm.alarm_name.as_str(), alarm.state.value.as_str()),
        ("ServerCpuTooHigh", "ALARM")
    );
    assert!(alarm.state.reason.starts_with("Threshold Crossed"));
    let Inbound::ModelPackageChanged(package) =
        parse(&sample("sagemaker-model-package-state-change.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(package.approval_status, "Approved");
    assert_eq!(package.version, Some(2));
    assert_eq!(package.status.as_deref(), Some("Completed"));
    assert_eq!(package.updated_fields, ["ModelApprovalStatus"]);
    assert_eq!(package.not_an_approval(), None);
    let Inbound::ModelPackageChanged(metadata) =
        parse(&sample("sagemaker-model-package-metadata-update.json")).unwrap()
    else {
        panic!()
    };
    assert!(metadata.not_an_approval().is_some());
    let Ok(Sent::Deploy(request)) = command_of(&sample("command-deploy.json")) else {
        panic!()
    };
    assert_eq!(request.endpoint_name, "fraud-scorer");
    assert!(
        Policy::from_value(&request.policy).is_ok(),
        "the sample's policy is valid"
    );
    let Ok(Sent::Deploy(bad)) = command_of(&sample("command-deploy-invalid-policy.json")) else {
        panic!()
    };
    assert!(
        Policy::from_value(&bad.policy).is_err(),
        "and this one is not"
    );
    let Inbound::StateChanged(change) =
        parse(&sample("guardrails-deployment-rolled-back.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(change.outcome, Some(PhaseKind::RolledBack));
}

#[test]
fn malformed_events_say_which_event_and_which_field() {
    let err = parse(&sample("malformed-endpoint-event-without-name.json")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed event x: \"SageMaker Endpoint State Change\" detail: missing field `EndpointName`"
    );
    let err = parse(&serde_json::json!({ "endpoint": "e" })).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("malformed event: neither an EventBridge event"),
        "{err}"
    );
    let err = parse(&serde_json::json!([1, 2])).unwrap_err();
    assert!(
        err.to_string().contains("neither an EventBridge event"),
        "{err}"
    );
}

#[test]
fn forged_events_from_another_account_are_refused() {
    let here = Some("123456789012");
    let forged =
        guardrails::inbound::parse(&sample("forged-deployment-requested.json"), here).unwrap_err();
    assert!(
        forged
            .to_string()
            .contains("from account \"999999999999\": only this account's events"),
        "{forged}"
    );
}

fn body(file: &str) -> serde_json::Value {
    serde_json::from_str(sample(file)["body"].as_str().unwrap()).unwrap()
}

fn read(body: &serde_json::Value) -> Result<Sent, guardrails::inbound::CommandError> {
    guardrails::inbound::command(&body.to_string())
}

#[test]
fn malformed_commands_name_their_field() {
    let mut request = body("command-deploy.json");
    request["endpointNmae"] = serde_json::json!("typo");
    let err = read(&request).unwrap_err();
    assert!(
        err.message.contains("unknown field `endpointNmae`"),
        "{err}"
    );
    assert_eq!(err.endpoint_name.as_deref(), Some("fraud-scorer"));
    let mut typed = body("command-deploy.json");
    typed["requestedBy"] = serde_json::json!("the-cto (really mallory)");
    let err = read(&typed).unwrap_err();
    assert!(
        err.message.starts_with("requestedBy: not accepted"),
        "{err}"
    );
    let err = read(&serde_json::json!({ "command": "Approve", "endpointName": "e" })).unwrap_err();
    assert_eq!(
        err.message,
        "command: \"Approve\" is not one of \"deploy\", \"approve\", \"abort\", \"status\", \"history\", \"show\""
    );
    // The reads name what they lack.
    let err = read(&serde_json::json!({ "command": "history" })).unwrap_err();
    assert_eq!(
        err.message,
        "endpointName: missing: history is of one endpoint"
    );
    let err = read(&serde_json::json!({ "command": "show", "endpointName": "e" })).unwrap_err();
    assert_eq!(
        err.message,
        "deploymentId: missing: show names the deployment"
    );
    let err =
        read(&serde_json::json!({ "command": "history", "endpointName": "e", "limit": 1000 }))
            .unwrap_err();
    assert_eq!(err.message, "limit: 1000; from 1 to 100");
    let err = read(&serde_json::json!({ "endpointName": "e" })).unwrap_err();
    assert!(err.message.starts_with("command: missing"), "{err}");
    let err = guardrails::inbound::command("not json").unwrap_err();
    assert!(err.message.starts_with("the command is not JSON"), "{err}");
    let huge = "x".repeat(guardrails::inbound::MAX_COMMAND_BYTES + 1);
    let err = guardrails::inbound::command(&huge).unwrap_err();
    assert!(err.message.contains("at most 98304 are read"), "{err}");
}

#[test]
fn events_from_other_services_are_recognised_as_not_ours() {
    let mut other = sample("scheduled-sweep.json");
    other["source"] = serde_json::json!("aws.ec2");
    other["detail-type"] = serde_json::json!("EC2 Instance State-change Notification");
    assert!(matches!(parse(&other).unwrap(), Inbound::Other { .. }));
}

fn abort(reason: &str) -> serde_json::Value {
    serde_json::json!({ "command": "abort", "endpointName": "fraud", "deploymentId": "d1",
                        "reason": reason })
}

/// Free text is bounded before anything is kept or published; people's words are not ASCII.
#[test]
fn reasons_in_any_script_are_read_and_oversized_text_is_refused_naming_the_field() {
    for reason in [
        "José Müller says no",
        "田中太郎: 止めて",
        "a reason with ümlauts — and dashes",
    ] {
        let Ok(Sent::Abort(c)) = read(&abort(reason)) else {
            panic!("{reason}");
        };
        assert_eq!(c.reason.as_deref(), Some(reason));
    }
    let long = "é".repeat(guardrails::inbound::MAX_REASON_CHARS + 1);
    let refused = read(&abort(&long)).unwrap_err();
    assert_eq!(
        refused.message,
        "reason: 1025 characters; at most 1024 are accepted"
    );
}

/// A wrong type or a null names its field, as a missing field does.
#[test]
fn wrong_types_and_nulls_name_their_field() {
    let mut request = body("command-deploy.json");
    request["instanceCount"] = serde_json::json!("four");
    let e = read(&request).unwrap_err();
    assert!(
        e.message
            .starts_with("\"deploy\" command: instanceCount: invalid type: string \"four\""),
        "{e}"
    );
    let mut request = body("command-deploy.json");
    request["endpointName"] = serde_json::Value::Null;
    let e = read(&request).unwrap_err();
    assert!(
        e.message
            .starts_with("\"deploy\" command: endpointName: invalid type: null"),
        "{e}"
    );
}

#[test]
fn started_causes_name_who_asked() {
    let by = Some("arn:aws:sts::123456789012:assumed-role/ml-release/alice".to_owned());
    let cause = guardrails::core::Cause::Started { by };
    assert_eq!(
        cause.to_string(),
        "deployment started, requested by arn:aws:sts::123456789012:assumed-role/ml-release/alice"
    );
    let _ = Timestamp::from_epoch_ms(0);
}

/// The hook payloads in `events/hooks/` (for `cargo lambda invoke hook-green-ready`) are what
/// Guardrails sends, field for field, and what the sample hook reads.
#[test]
fn the_hook_payload_samples_are_what_guardrails_sends_and_the_sample_hook_reads() {
    use guardrails::core::HookPayload;
    for file in ["pre-traffic.json", "post-traffic.json"] {
        let text = std::fs::read_to_string(repo_root().join("events/hooks").join(file)).unwrap();
        let sent: HookPayload = serde_json::from_str(&text).unwrap();
        let again = serde_json::to_value(&sent).unwrap();
        let original: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            again, original,
            "{file}: every field, spelt as Guardrails spells it"
        );
        let read: hook_green_ready::Payload = serde_json::from_str(&text).unwrap();
        assert_eq!(read.green_variant_name, sent.green_variant_name);
    }
}

#[test]
fn hostile_sweep_shards_are_refused_with_what_is_wrong() {
    let shard = |detail: serde_json::Value| {
        let mut event = sample("guardrails-sweep-shard.json");
        event["detail"] = detail;
        parse(&event).map(|_| ()).map_err(|e| e.to_string())
    };
    let too_many: Vec<String> = (0..101).map(|i| format!("e{i}")).collect();
    let cases = [
        (
            serde_json::json!({ "endpoints": too_many, "shards": 2 }),
            "101 endpoints in one shard; at most 100",
        ),
        (
            serde_json::json!({ "endpoints": ["a"], "shards": 0 }),
            "shards is 0; allowed: 1 to 1000",
        ),
        (
            serde_json::json!({ "endpoints": ["-bad"], "shards": 1 }),
            "\"-bad\" is not a SageMaker endpoint name",
        ),
        (
            serde_json::json!({ "endpoints": ["x".repeat(10_000)], "shards": 1 }),
            "is not a SageMaker endpoint name",
        ),
        (
            serde_json::json!({ "endpoints": ["a"], "shards": 1, "states": {} }),
            "unknown field `states`",
        ),
        (
            serde_json::json!({ "endpoints": "a", "shards": 1 }),
            "detail.endpoints: invalid type",
        ),
    ];
    for (detail, want) in cases {
        let got = shard(detail.clone()).expect_err(&detail.to_string());
        assert!(got.contains(want), "{detail}: {got}");
        assert!(got.len() < 400, "the error is bounded: {got}");
    }
}
