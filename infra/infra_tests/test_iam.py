"""Least privilege: no policy in any stack grants ``*`` (or ``service:*``) actions or ``*``
resources, except the exceptions below, each one required by AWS and explained.

An exception names the exact actions of one statement. Anything not listed fails the
test, so a new wildcard has to be added here, with its reason, to pass review.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra_tests.synth import synthesize

# Allow statements in identity policies whose Resource is "*".
STAR_RESOURCE_EXCEPTIONS: dict[frozenset[str], str] = {
    frozenset({"ecr:GetAuthorizationToken"}): (
        "ECS execution role: the ECR login token is account-wide; the action has no resource"
    ),
    frozenset({"ecs:DescribeTaskDefinition", "ec2:DescribeNetworkInterfaces"}): (
        "Dagster's ECS run launcher: neither action supports resource-level permissions"
    ),
    frozenset(
        {
            "ssmmessages:CreateControlChannel",
            "ssmmessages:CreateDataChannel",
            "ssmmessages:OpenControlChannel",
            "ssmmessages:OpenDataChannel",
        }
    ): "ECS Exec (port forwarding to the webserver): ssmmessages has no resource types",
    frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"}): (
        "Receiver Lambda tracing: X-Ray has no resource-level permissions"
    ),
}
# Key policy statements: there Resource "*" means "this key", always (AWS requires it).
KEY_POLICY_ACTION_EXCEPTIONS: dict[frozenset[str], str] = {
    frozenset({"kms:*"}): (
        "The account root in the key's default policy: lets IAM policies grant the key;"
        " without it nobody could manage the key (AWS's default key policy)"
    ),
}
# Action names that end in "*" (not "*" or "service:*"): CDK's grant for a secret encrypted
# with a customer key, scoped by kms:ViaService to Secrets Manager.
ACTION_PATTERN_EXCEPTIONS: dict[str, str] = {
    "kms:ReEncrypt*": "CDK: Secrets Manager re-encrypts the RDS secret on rotation",
    "kms:GenerateDataKey*": "CDK: Secrets Manager encrypts the RDS secret's new versions",
}
# AWS managed policies attached to roles (their statements are AWS's, with "*" resources).
MANAGED_POLICY_EXCEPTIONS: dict[str, str] = {
    "service-role/AWSLambdaBasicExecutionRole": "Lambda writes its own logs",
    "service-role/AWSLambdaVPCAccessExecutionRole": (
        "Lambda in a VPC creates its network interfaces (ec2:*NetworkInterface* on *)"
    ),
    "service-role/AmazonAPIGatewayPushToCloudWatchLogs": (
        "API Gateway's account-wide role for access logs"
    ),
}


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Template]:
    return synthesize("production", tmp_path_factory.mktemp("cdk.out"))


def statements(stage: dict[str, Template]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, kind, statement) for every Allow statement: kind is "key" or "identity"."""
    for stack, template in stage.items():
        for logical_id, resource in template.to_json()["Resources"].items():
            properties = resource.get("Properties", {})
            kind, documents = "identity", []
            if resource["Type"] == "AWS::KMS::Key":
                kind, documents = "key", [properties["KeyPolicy"]]
            elif resource["Type"] == "AWS::IAM::Role":
                documents = [p["PolicyDocument"] for p in properties.get("Policies", [])]
            elif "PolicyDocument" in properties:
                documents = [properties["PolicyDocument"]]
            for document in documents:
                for statement in document["Statement"]:
                    if statement["Effect"] == "Allow":
                        yield f"{stack}/{logical_id}", kind, statement


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_no_wildcard_beyond_the_listed_exceptions(stage: dict[str, Template]) -> None:
    found = []
    for where, kind, statement in statements(stage):
        actions = frozenset(listed(statement["Action"]))
        star_resource = "*" in listed(statement.get("Resource", []))
        for action in actions:
            if action == "*" or action.endswith(":*"):
                if kind != "key" or actions not in KEY_POLICY_ACTION_EXCEPTIONS:
                    found.append((where, "action", action))
            elif "*" in action and action not in ACTION_PATTERN_EXCEPTIONS:
                found.append((where, "action pattern", action))
        if star_resource and kind == "identity" and actions not in STAR_RESOURCE_EXCEPTIONS:
            found.append((where, "resource *", sorted(actions)))
    assert found == []


def test_every_exception_is_still_needed(stage: dict[str, Template]) -> None:
    """A stale exception would hide the next wildcard with the same actions: remove it."""
    seen_star = {
        frozenset(listed(s["Action"]))
        for _, kind, s in statements(stage)
        if kind == "identity" and "*" in listed(s.get("Resource", []))
    }
    seen_actions = {a for _, _, s in statements(stage) for a in listed(s["Action"])}
    assert set(STAR_RESOURCE_EXCEPTIONS) == seen_star
    assert set(ACTION_PATTERN_EXCEPTIONS) <= seen_actions
    assert "kms:*" in seen_actions


def test_only_the_listed_aws_managed_policies_are_attached(stage: dict[str, Template]) -> None:
    attached = set()
    for template in stage.values():
        for resource in template.to_json()["Resources"].values():
            for arn in resource.get("Properties", {}).get("ManagedPolicyArns", []):
                text = json.dumps(arn)
                attached.add(text.split(":iam::aws:policy/")[1].split('"')[0])
    assert attached == set(MANAGED_POLICY_EXCEPTIONS)


def role_policy_text(template: Template, role_prefix: str) -> str:
    policies = [
        resource["Properties"]
        for resource in template.to_json()["Resources"].values()
        if resource["Type"] == "AWS::IAM::Policy"
        and any(role_prefix in json.dumps(role) for role in resource["Properties"]["Roles"])
    ]
    assert policies, role_prefix
    return json.dumps(policies)


def test_each_role_reaches_only_its_own_data(stage: dict[str, Template]) -> None:
    receiver = role_policy_text(stage["Receiver"], "ReceiverServiceRole")
    assert "RawBucket" in receiver and "IdempotencyTable" in receiver
    assert "ProcessedBucket" not in receiver and "oauth-credentials" not in receiver
    assert "webhook-secret" in receiver

    run = role_policy_text(stage["Orchestration"], "RunRole")
    assert "RawBucket" in run and "ProcessedBucket" in run and "oauth-credentials" in run
    assert "IdempotencyTable" not in run and "ecs:RunTask" not in run

    control = role_policy_text(stage["Orchestration"], "ControlRole")
    assert "ecs:RunTask" in control and "iam:PassRole" in control
    assert "ProcessedBucket" not in control and "secretsmanager:GetSecretValue" not in control
    assert "s3:PutObject" not in control
