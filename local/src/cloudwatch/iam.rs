//! What IAM authorizes a CloudWatch request against (the Service Authorization Reference): the
//! alarms it names (each alarm's ARN); `DescribeAlarms` and `DescribeAlarmHistory` without
//! names (a prefix, a state, or every alarm) against `alarm:*`, which is what a policy has to
//! allow for them to list anything; metric data calls against `*` (`cloudwatch:namespace` for
//! PutMetricData).

use serde_json::Value;

use crate::iam::{Ask, Resource, arn};

fn alarm(name: &str) -> Resource {
    Resource::new(
        "cloudwatch:alarm",
        arn("cloudwatch", &format!("alarm:{name}")),
    )
}

/// The actions and resources of one CloudWatch request.
pub fn asks(operation: &str, input: &Value) -> Vec<Ask> {
    let action = format!("cloudwatch:{operation}");
    let names: Vec<&str> = input
        .get("AlarmNames")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let one = input.get("AlarmName").and_then(Value::as_str);
    let resources = match operation {
        "PutMetricAlarm" | "PutCompositeAlarm" | "SetAlarmState" => {
            one.map(alarm).into_iter().collect()
        }
        "DeleteAlarms" | "EnableAlarmActions" | "DisableAlarmActions" => {
            names.iter().map(|n| alarm(n)).collect()
        }
        "DescribeAlarms" if !names.is_empty() => names.iter().map(|n| alarm(n)).collect(),
        "DescribeAlarmHistory" if one.is_some() => one.map(alarm).into_iter().collect(),
        "DescribeAlarms" | "DescribeAlarmHistory" => vec![alarm("*")],
        _ => Vec::new(),
    };
    let mut ask = Ask::new(&action, resources);
    if operation == "PutMetricData"
        && let Some(namespace) = input.get("Namespace").and_then(Value::as_str)
    {
        ask = ask.with("cloudwatch:namespace", vec![namespace.to_owned()]);
    }
    if operation.starts_with("Put") {
        let tags = crate::iam::tag_pairs(input.get("Tags"));
        ask = ask.with_request_tags(&tags);
    }
    vec![ask]
}
