//! Every sample in `events/` is read by the functions' parser into what it means; malformed
//! samples get an error naming the event and the field. A sample nobody reads is a bug: the
//! first test fails when a file is added to `events/` without an expectation here.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use guardrails::events::PhaseKind;
use guardrails::inbound::{Inbound, parse};
use guardrails::policy::Policy;
use guardrails_tests::repo_root;

fn sample(file: &str) -> serde_json::Value {
    let path = repo_root().join("events").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What each sample must be read as (`None`: refused as malformed).
fn expectations() -> Vec<(&'static str, Option<&'static str>)> {
    vec![
        ("cloudwatch-alarm-state-change.json", Some("AlarmChanged")),
        ("guardrails-deployment-command.json", Some("Command")),
        (
            "guardrails-deployment-requested-invalid-policy.json",
            Some("DeploymentRequested"),
        ),
        (
            "guardrails-deployment-requested-native-dry-run.json",
            Some("DeploymentRequested"),
        ),
        (
            "guardrails-deployment-requested.json",
            Some("DeploymentRequested"),
        ),
        (
            "guardrails-deployment-rolled-back.json",
            Some("StateChanged"),
        ),
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
        Inbound::DeploymentRequested(_) => "DeploymentRequested",
        Inbound::Command(_) => "Command",
        Inbound::ModelPackageChanged(_) => "ModelPackageChanged",
        Inbound::EndpointChanged { .. } => "EndpointChanged",
        Inbound::AlarmChanged(_) => "AlarmChanged",
        Inbound::WakeUp(_) => "WakeUp",
        Inbound::Sweep => "Sweep",
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
        let got = parse(&sample(file)).map(|i| kind(&i));
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
    let Inbound::DeploymentRequested(request) =
        parse(&sample("guardrails-deployment-requested.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(request.endpoint_name, "fraud-scorer");
    assert!(
        Policy::from_value(&request.policy).is_ok(),
        "the sample's policy is valid"
    );
    let Inbound::DeploymentRequested(bad) = parse(&sample(
        "guardrails-deployment-requested-invalid-policy.json",
    ))
    .unwrap() else {
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
    let mut request = sample("guardrails-deployment-requested.json");
    request["detail"]["endpointNmae"] = serde_json::json!("typo");
    let err = parse(&request).unwrap_err();
    assert!(
        err.to_string().contains("unknown field `endpointNmae`"),
        "{err}"
    );
}

#[test]
fn events_from_other_services_are_recognised_as_not_ours() {
    let mut other = sample("scheduled-sweep.json");
    other["source"] = serde_json::json!("aws.ec2");
    other["detail-type"] = serde_json::json!("EC2 Instance State-change Notification");
    assert!(matches!(parse(&other).unwrap(), Inbound::Other { .. }));
}

fn command(by: &str, reason: &str) -> serde_json::Value {
    serde_json::json!({
        "version": "0", "id": "c1", "detail-type": "Guardrails Deployment Command",
        "source": "guardrails", "account": "123456789012", "time": "2026-12-02T08:00:00Z",
        "region": "us-east-1", "resources": [],
        "detail": { "endpointName": "fraud", "deploymentId": "d1", "command": "abort",
                    "by": by, "reason": reason }
    })
}

/// Free text is bounded before anything is kept or published; people's names are not ASCII.
#[test]
fn commands_with_names_in_any_script_are_read_and_oversized_text_is_refused_naming_the_field() {
    for by in ["José Müller", "田中太郎", "Zoë O'Brien-Łukasiewicz"] {
        let Ok(Inbound::Command(c)) = parse(&command(by, "a reason with ümlauts — and dashes"))
        else {
            panic!("{by}");
        };
        assert_eq!(c.by, by);
    }
    let long = "é".repeat(guardrails::inbound::MAX_REASON_CHARS + 1);
    let refused = parse(&command("oncall", &long)).unwrap_err();
    assert_eq!(
        refused.message,
        "detail.reason: 1025 characters; at most 1024 are accepted"
    );
    let refused = parse(&command(&"x".repeat(300), "ok")).unwrap_err();
    assert!(
        refused.message.starts_with("detail.by: 300 characters"),
        "{refused}"
    );
}

/// A wrong type or a null names its field, as a missing field does.
#[test]
fn wrong_types_and_nulls_name_their_field() {
    let mut request = sample("guardrails-deployment-requested.json");
    request["detail"]["instanceCount"] = serde_json::json!("four");
    let e = parse(&request).unwrap_err();
    assert!(
        e.message.starts_with(
            "\"Guardrails Deployment Requested\" detail.instanceCount: invalid type: string \"four\""
        ),
        "{e}"
    );
    let mut request = sample("guardrails-deployment-requested.json");
    request["detail"]["endpointName"] = serde_json::Value::Null;
    let e = parse(&request).unwrap_err();
    assert!(
        e.message.starts_with(
            "\"Guardrails Deployment Requested\" detail.endpointName: invalid type: null"
        ),
        "{e}"
    );
}
