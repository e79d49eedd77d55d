"""The local stack through boto3, a client nobody here wrote: every operation the README lists for
the emulated services (SageMaker, CloudWatch in each of its three protocols, Service Quotas, STS's
GetCallerIdentity), the services served by moto behind the local IAM, and the errors AWS gives.

Run by tests/tests/boto3.rs with the environment `guardrails-local up` writes (AWS_ENDPOINT_URL,
the administrator's credentials, AWS_DEFAULT_REGION); it needs nothing else.
"""

import datetime
import json
import os
import time
import unittest

import boto3
import botocore.model
from botocore.config import Config
from botocore.exceptions import ClientError

CONFIG = Config(retries={"max_attempts": 1})


def client(service, **kwargs):
    return boto3.client(service, config=CONFIG, **kwargs)


def cloudwatch(protocol):
    """A CloudWatch client speaking `protocol` (botocore's model lists all three; boto3 picks
    `json` by itself)."""
    original = botocore.model.PRIORITY_ORDERED_SUPPORTED_PROTOCOLS
    botocore.model.PRIORITY_ORDERED_SUPPORTED_PROTOCOLS = (protocol,)
    try:
        c = boto3.session.Session().client("cloudwatch", config=CONFIG)
        assert c.meta.service_model.resolved_protocol == protocol
        return c
    finally:
        botocore.model.PRIORITY_ORDERED_SUPPORTED_PROTOCOLS = original


def wait_in_service(sm, name, limit=60):
    deadline = time.time() + limit
    while time.time() < deadline:
        status = sm.describe_endpoint(EndpointName=name)["EndpointStatus"]
        if status == "InService":
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} not InService within {limit} s")


class SageMaker(unittest.TestCase):
    def test_every_operation_the_readme_lists(self):
        sm = client("sagemaker")
        sm.create_model(
            ModelName="b3-model",
            PrimaryContainer={"Image": "local/model:1"},
            ExecutionRoleArn="arn:aws:iam::123456789012:role/local",
        )
        self.assertEqual(sm.describe_model(ModelName="b3-model")["ModelName"], "b3-model")
        variant = {
            "VariantName": "AllTraffic",
            "ModelName": "b3-model",
            "InstanceType": "ml.m5.xlarge",
            "InitialInstanceCount": 1,
            "InitialVariantWeight": 1.0,
        }
        for name in ["b3-v1", "b3-v2"]:
            sm.create_endpoint_config(
                EndpointConfigName=name,
                ProductionVariants=[variant],
                Tags=[{"Key": "team", "Value": "ml"}],
            )
        described = sm.describe_endpoint_config(EndpointConfigName="b3-v1")
        self.assertEqual(described["ProductionVariants"][0]["InstanceType"], "ml.m5.xlarge")
        self.assertIsInstance(described["CreationTime"], datetime.datetime)
        arn = sm.create_endpoint(
            EndpointName="b3-endpoint",
            EndpointConfigName="b3-v1",
            Tags=[{"Key": "guardrails:managed", "Value": "true"}],
        )["EndpointArn"]
        wait_in_service(sm, "b3-endpoint")
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": "owner", "Value": "alice"}])
        tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}
        self.assertEqual(tags, {"guardrails:managed": "true", "owner": "alice"})
        self.assertIn("b3-endpoint", [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]])
        sm.update_endpoint(EndpointName="b3-endpoint", EndpointConfigName="b3-v2")
        with self.assertRaises(ClientError) as busy:
            sm.update_endpoint(EndpointName="b3-endpoint", EndpointConfigName="b3-v1")
        self.assertEqual(busy.exception.response["Error"]["Code"], "ValidationException")
        self.assertIn("Cannot update in-progress endpoint", busy.exception.response["Error"]["Message"])
        wait_in_service(sm, "b3-endpoint")
        self.assertEqual(sm.describe_endpoint(EndpointName="b3-endpoint")["EndpointConfigName"], "b3-v2")
        sm.update_endpoint_weights_and_capacities(
            EndpointName="b3-endpoint",
            DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 2}],
        )
        wait_in_service(sm, "b3-endpoint")
        variants = sm.describe_endpoint(EndpointName="b3-endpoint")["ProductionVariants"]
        self.assertEqual(variants[0]["CurrentInstanceCount"], 2)
        sm.delete_endpoint(EndpointName="b3-endpoint")
        sm.delete_endpoint_config(EndpointConfigName="b3-v1")
        sm.delete_model(ModelName="b3-model")
        with self.assertRaises(ClientError) as gone:
            sm.describe_model(ModelName="b3-model")
        self.assertIn("Could not find model", gone.exception.response["Error"]["Message"])

    def test_the_model_registry(self):
        sm = client("sagemaker")
        sm.create_model_package_group(ModelPackageGroupName="b3-group")
        spec = {
            "Containers": [{"Image": "local/model:2"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        }
        arn = sm.create_model_package(
            ModelPackageGroupName="b3-group",
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification=spec,
        )["ModelPackageArn"]
        self.assertTrue(arn.endswith(":model-package/b3-group/1"), arn)
        described = sm.describe_model_package(ModelPackageName=arn)
        self.assertEqual(described["ModelApprovalStatus"], "PendingManualApproval")
        self.assertEqual(described["ModelPackageStatus"], "Completed")
        self.assertEqual(described["ModelPackageVersion"], 1)
        sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
        listed = sm.list_model_packages(ModelPackageGroupName="b3-group")["ModelPackageSummaryList"]
        self.assertEqual([p["ModelApprovalStatus"] for p in listed], ["Approved"])
        sm.create_model(
            ModelName="b3-from-package",
            Containers=[{"ModelPackageName": arn}],
            ExecutionRoleArn="arn:aws:iam::123456789012:role/local",
        )
        with self.assertRaises(ClientError) as missing:
            sm.create_model(
                ModelName="b3-from-nothing",
                Containers=[{"ModelPackageName": arn.replace("/1", "/9")}],
                ExecutionRoleArn="arn:aws:iam::123456789012:role/local",
            )
        self.assertIn("does not exist", missing.exception.response["Error"]["Message"])
        with self.assertRaises(ClientError) as status:
            sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Maybe")
        self.assertEqual(status.exception.response["Error"]["Code"], "ValidationException")

    def test_synchronous_refusals_come_back_as_sagemaker_words_them(self):
        sm = client("sagemaker")
        with self.assertRaises(ClientError) as missing:
            sm.create_endpoint_config(
                EndpointConfigName="b3-missing",
                ProductionVariants=[{"VariantName": "v", "ModelName": "nope",
                                     "InstanceType": "ml.m5.xlarge", "InitialInstanceCount": 1}],
            )
        self.assertEqual(missing.exception.response["Error"]["Code"], "ValidationException")
        self.assertIn('Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/nope"',
                      missing.exception.response["Error"]["Message"])
        with self.assertRaises(ClientError) as name:
            sm.create_model(ModelName="bad_name", PrimaryContainer={"Image": "x"},
                            ExecutionRoleArn="arn:aws:iam::123456789012:role/local")
        self.assertIn("regular expression pattern", name.exception.response["Error"]["Message"])


class CloudWatch(unittest.TestCase):
    def exercise(self, protocol):
        cw = cloudwatch(protocol)
        prefix = f"b3-{protocol}"
        now = datetime.datetime.now(datetime.timezone.utc)
        dims = [{"Name": "Service", "Value": prefix}]
        cw.put_metric_data(
            Namespace="Test",
            MetricData=[{"MetricName": "Latency", "Dimensions": dims,
                         "Timestamp": now - datetime.timedelta(seconds=30), "Values": [1.0, 2.0, 3.0]}],
        )
        data = cw.get_metric_data(
            MetricDataQueries=[
                {"Id": "m1", "MetricStat": {"Metric": {"Namespace": "Test", "MetricName": "Latency",
                                                       "Dimensions": dims},
                                            "Period": 60, "Stat": "Sum"}, "ReturnData": False},
                {"Id": "twice", "Expression": "2 * m1", "ReturnData": True},
            ],
            StartTime=now - datetime.timedelta(minutes=5),
            EndTime=now + datetime.timedelta(minutes=1),
        )
        result = data["MetricDataResults"][0]
        self.assertEqual(result["Id"], "twice")
        self.assertEqual(sum(result["Values"]), 12.0)
        self.assertIsInstance(result["Timestamps"][0], datetime.datetime)
        cw.put_metric_alarm(
            AlarmName=f"{prefix}-latency", Namespace="Test", MetricName="Latency", Dimensions=dims,
            Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=100.0,
            ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching",
        )
        cw.put_composite_alarm(AlarmName=f"{prefix}-any", AlarmRule=f'ALARM("{prefix}-latency")')
        cw.set_alarm_state(AlarmName=f"{prefix}-latency", StateValue="ALARM", StateReason="test")
        alarms = cw.describe_alarms(AlarmNamePrefix=prefix)
        self.assertEqual([a["AlarmName"] for a in alarms["MetricAlarms"]], [f"{prefix}-latency"])
        self.assertEqual(alarms.get("CompositeAlarms", []), [], "composites only when asked")
        both = cw.describe_alarms(AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm", "CompositeAlarm"])
        self.assertEqual([a["AlarmName"] for a in both["CompositeAlarms"]], [f"{prefix}-any"])
        self.assertIsInstance(both["MetricAlarms"][0]["StateUpdatedTimestamp"], datetime.datetime)
        history = cw.describe_alarm_history(
            AlarmName=f"{prefix}-latency", HistoryItemType="StateUpdate", ScanBy="TimestampAscending")
        self.assertTrue(history["AlarmHistoryItems"], "the state change is in the history")
        self.assertEqual(history["AlarmHistoryItems"][0]["HistoryItemType"], "StateUpdate")
        with self.assertRaises(ClientError) as unknown:
            cw.set_alarm_state(AlarmName=f"{prefix}-nope", StateValue="OK", StateReason="x")
        self.assertEqual(unknown.exception.response["Error"]["Code"], "ResourceNotFound")
        cw.delete_alarms(AlarmNames=[f"{prefix}-latency", f"{prefix}-any"])
        self.assertEqual(cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"], [])

    def test_json_the_protocol_boto3_and_the_cli_speak(self):
        self.exercise("json")

    def test_query(self):
        self.exercise("query")

    def test_rpc_v2_cbor(self):
        self.exercise("smithy-rpc-v2-cbor")


class ServiceQuotasAndSts(unittest.TestCase):
    def test_quotas_are_listed_and_read_by_code(self):
        sq = client("service-quotas")
        found = None
        for page in sq.get_paginator("list_service_quotas").paginate(ServiceCode="sagemaker"):
            for q in page["Quotas"]:
                if q["QuotaName"] == "ml.m5.xlarge for endpoint usage":
                    found = q
        self.assertIsNotNone(found)
        got = sq.get_service_quota(ServiceCode="sagemaker", QuotaCode=found["QuotaCode"])
        self.assertEqual(got["Quota"]["Value"], found["Value"])

    def test_the_caller_is_the_local_administrator(self):
        arn = client("sts").get_caller_identity()["Arn"]
        self.assertEqual(arn, "arn:aws:iam::123456789012:user/local-admin")


class BehindTheLocalIam(unittest.TestCase):
    """moto's services through the local stack's front door, authorized first."""

    def test_the_administrator_reaches_every_service(self):
        ddb = client("dynamodb")
        self.assertIn("TableNames", ddb.list_tables())
        sns = client("sns")
        topic = sns.create_topic(Name="b3-topic")["TopicArn"]
        sns.publish(TopicArn=topic, Message="hello")
        sqs = client("sqs")
        url = sqs.create_queue(QueueName="b3-queue")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="x")
        events = client("events")
        out = events.put_events(Entries=[{"Source": "b3", "DetailType": "t", "Detail": "{}"}])
        self.assertEqual(out["FailedEntryCount"], 0)
        scheduler = client("scheduler")
        self.assertIn("Schedules", scheduler.list_schedules())
        ssm = client("ssm")
        ssm.put_parameter(Name="/b3/target", Type="String", Value='{"a": 1}')
        self.assertEqual(ssm.get_parameter(Name="/b3/target")["Parameter"]["Value"], '{"a": 1}')
        scaling = client("application-autoscaling")
        self.assertIn("ScalableTargets",
                      scaling.describe_scalable_targets(ServiceNamespace="sagemaker"))

    def test_a_function_role_gets_access_denied_in_each_services_words(self):
        role = dict(aws_access_key_id="ASIALOCALROLLBACKNOTIFIER", aws_secret_access_key="x")
        cases = [
            (lambda: client("sagemaker", **role).list_endpoints(), "AccessDeniedException"),
            (lambda: client("dynamodb", **role).delete_table(TableName="guardrails"), "AccessDeniedException"),
            (lambda: client("events", **role).put_events(
                Entries=[{"Source": "b3", "DetailType": "t", "Detail": "{}"}]), "AccessDeniedException"),
            (lambda: client("cloudwatch", **role).describe_alarms(), "AccessDenied"),
            (lambda: client("sqs", **role).list_queues(), "AccessDenied"),
        ]
        for call, code in cases:
            with self.assertRaises(ClientError) as denied:
                call()
            self.assertEqual(denied.exception.response["Error"]["Code"], code)
            self.assertIn("is not authorized to perform", denied.exception.response["Error"]["Message"])

    def test_an_unknown_key_is_an_invalid_token(self):
        stranger = client("sagemaker", aws_access_key_id="AKIASTRANGER", aws_secret_access_key="x")
        with self.assertRaises(ClientError) as denied:
            stranger.list_endpoints()
        self.assertEqual(denied.exception.response["Error"]["Code"], "UnrecognizedClientException")


if __name__ == "__main__":
    for required in ["AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"]:
        assert os.environ.get(required), f"{required} is not set: run through tests/tests/boto3.rs"
    unittest.main(verbosity=2)
