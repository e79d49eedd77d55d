"""Prints infra/template.yaml as CloudFormation, with every function's role and policies made
the way AWS SAM makes them (SAM's own translator, aws-sam-translator, expanding its policy
templates such as DynamoDBCrudPolicy), so that the local stack authorizes each function with
exactly the policies it would have on AWS. Run by guardrails-local with the project's venv."""
import json
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class ManagedPolicies:
    """The AWS managed policies SAM attaches to every function role (their ARNs only)."""

    def load(self):
        return {
            "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
        }


template = yaml_parse(open(sys.argv[1]).read())
for resource in template.get("Resources", {}).values():
    if resource.get("Type") == "AWS::Serverless::Function":
        # The translator wants code in S3; where the code is does not change the policies.
        resource["Properties"]["CodeUri"] = "s3://local/code.zip"
parameters = {"AWS::Region": sys.argv[2], "AWS::AccountId": sys.argv[3]}
json.dump(transform(template, parameters, ManagedPolicies()), sys.stdout, default=str)
