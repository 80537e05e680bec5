"""What the production stage's templates promise: encryption everywhere, the PRD's
retention, TTL, alarms and WAF rules, and the receiver, Dagster and EventBridge wiring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template

from hostpms_infra.config import STAGES
from infra_tests.synth import resources, synthesize

PRODUCTION = STAGES["production"]
SEVEN_YEARS = 7 * 365


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Template]:
    return synthesize("production", tmp_path_factory.mktemp("cdk.out"))


def everything(stage: dict[str, Template], type_: str) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for name, template in stage.items():
        found.update({f"{name}/{id_}": p for id_, p in resources(template, type_).items()})
    return found


# --- encryption -------------------------------------------------------------------------


def test_every_bucket_is_kms_encrypted_private_and_tls_only(stage: dict[str, Template]) -> None:
    buckets = everything(stage, "AWS::S3::Bucket")
    assert len(buckets) == 3  # raw, processed, CloudTrail's
    for name, bucket in buckets.items():
        [rule] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        default = rule["ServerSideEncryptionByDefault"]
        assert default["SSEAlgorithm"] == "aws:kms" and "KMSMasterKeyID" in default, name
        assert bucket["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, name
    policies = everything(stage, "AWS::S3::BucketPolicy")
    tls_only = [
        policy["Bucket"]["Ref"]
        for policy in policies.values()
        for statement in policy["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny"
        and statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
    ]
    assert sorted(tls_only) == sorted(name.split("/")[1] for name in buckets)


def test_table_database_topic_and_secret_are_encrypted_with_the_customer_key(
    stage: dict[str, Template],
) -> None:
    storage, data = stage["Storage"], stage["Data"]
    key_ref = {"Fn::GetAtt": [Match.string_like_regexp("DataKey"), "Arn"]}
    storage.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    storage.has_resource_properties(
        "AWS::DynamoDB::Table",
        {"SSESpecification": {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": key_ref}},
    )
    storage.has_resource_properties(
        "AWS::SNS::Topic", {"KmsMasterKeyId": Match.object_like({"Fn::GetAtt": Match.any_value()})}
    )
    imported_key = Match.object_like({"Fn::ImportValue": Match.string_like_regexp("DataKey")})
    data.has_resource_properties(
        "AWS::RDS::DBInstance",
        {
            "StorageEncrypted": True,
            "KmsKeyId": imported_key,
            "PerformanceInsightsKMSKeyId": imported_key,
        },
    )
    data.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {"Name": "rds/production/credentials", "KmsKeyId": imported_key},
    )


# --- storage ----------------------------------------------------------------------------


def test_raw_and_processed_buckets_keep_the_prd_retention(stage: dict[str, Template]) -> None:
    buckets = resources(stage["Storage"], "AWS::S3::Bucket")
    glacier = {}
    for name, bucket in buckets.items():
        [rule] = bucket["LifecycleConfiguration"]["Rules"]
        transitions = {t["TransitionInDays"]: t["StorageClass"] for t in rule["Transitions"]}
        assert transitions[90] == "STANDARD_IA", name
        glacier[name] = transitions[365]
        assert rule["ExpirationInDays"] == SEVEN_YEARS and rule["Status"] == "Enabled"
    raw = next(b for name, b in buckets.items() if name.startswith("Raw"))
    processed = next(b for name, b in buckets.items() if name.startswith("Processed"))
    assert raw["VersioningConfiguration"] == {"Status": "Enabled"}
    assert "VersioningConfiguration" not in processed
    assert sorted(glacier.values()) == ["GLACIER", "GLACIER_IR"]


def test_idempotency_table_has_its_key_ttl_on_demand_billing_and_pitr(
    stage: dict[str, Template],
) -> None:
    stage["Storage"].has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "idempotency_key", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "idempotency_key", "AttributeType": "S"}],
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "DeletionProtectionEnabled": True,
        },
    )


def test_connect_policy_creates_only_hostpms_property_secrets(stage: dict[str, Template]) -> None:
    [policy] = resources(stage["Storage"], "AWS::IAM::ManagedPolicy").values()
    statement = policy["PolicyDocument"]["Statement"][0]
    assert "secretsmanager:CreateSecret" in statement["Action"]
    assert json.dumps(statement["Resource"]).endswith(':secret:hostpms/*"]]}')


# --- network and database ---------------------------------------------------------------


def test_vpc_reaches_aws_through_endpoints_without_a_nat(stage: dict[str, Template]) -> None:
    data = stage["Data"]
    data.resource_count_is("AWS::EC2::NatGateway", 0)
    services = json.dumps(
        [e["ServiceName"] for e in resources(data, "AWS::EC2::VPCEndpoint").values()]
    )
    for service in (".s3", ".dynamodb", ".secretsmanager", ".events"):
        assert service in services


def test_database_is_private_backed_up_protected_and_rotated(stage: dict[str, Template]) -> None:
    data = stage["Data"]
    data.has_resource_properties(
        "AWS::RDS::DBInstance",
        {
            "Engine": "postgres",
            "DBInstanceClass": "db.t4g.large",
            "PubliclyAccessible": False,
            "DeletionProtection": True,
            "MultiAZ": True,
            "BackupRetentionPeriod": PRODUCTION.db_backup_days,
        },
    )
    [subnet_group] = resources(data, "AWS::RDS::DBSubnetGroup").values()
    assert all("privateSubnet" in s["Ref"] for s in subnet_group["SubnetIds"])
    data.has_resource_properties(
        "AWS::SecretsManager::RotationSchedule",
        {"RotationRules": {"ScheduleExpression": "rate(30 days)"}},
    )


# --- receiver ---------------------------------------------------------------------------


def test_receiver_is_the_projects_handler_in_the_vpc_with_a_10_second_timeout(
    stage: dict[str, Template],
) -> None:
    receiver = stage["Receiver"]
    [function] = resources(receiver, "AWS::Lambda::Function").values()
    assert function["PackageType"] == "Image" and function["Timeout"] == 10
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert "SubnetIds" in function["VpcConfig"]
    environment = function["Environment"]["Variables"]
    assert environment["HOSTPMS_USE_SECRETS_MANAGER"] == "true"
    assert {"HOSTPMS_EVENT_BUS", "HOSTPMS_IDEMPOTENCY_TABLE", "HOSTPMS_RAW_URL"} <= set(environment)
    dockerfile = (Path(__file__).parents[2] / "Dockerfile").read_text()
    assert 'CMD ["hostpms_pipeline.webhooks.lambda_handler.handler"]' in dockerfile


def test_api_routes_post_webhooks_with_the_signature_headers_required(
    stage: dict[str, Template],
) -> None:
    receiver = stage["Receiver"]
    paths = sorted(r["PathPart"] for r in resources(receiver, "AWS::ApiGateway::Resource").values())
    assert paths == sorted(["webhooks", "hostpms", "{propertyId}", "{event}"])
    receiver.has_resource_properties(
        "AWS::ApiGateway::Method",
        {
            "HttpMethod": "POST",
            "RequestValidatorId": Match.any_value(),
            "RequestParameters": {
                "method.request.header.X-HostPMS-Signature": True,
                "method.request.header.X-HostPMS-Timestamp": True,
                "method.request.path.propertyId": True,
                "method.request.path.event": True,
            },
            "Integration": Match.object_like({"Type": "AWS_PROXY"}),
        },
    )
    receiver.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": "v1",
            "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
            "MethodSettings": [Match.object_like({"DataTraceEnabled": False})],
        },
    )


def test_waf_limits_rate_origin_and_size_and_runs_aws_managed_rules(
    stage: dict[str, Template],
) -> None:
    receiver = stage["Receiver"]
    [acl] = resources(receiver, "AWS::WAFv2::WebACL").values()
    assert acl["Scope"] == "REGIONAL" and acl["DefaultAction"] == {"Allow": {}}
    rules = {rule["Name"]: rule for rule in acl["Rules"]}
    rate = rules["rate-per-ip"]["Statement"]["RateBasedStatement"]
    assert (rate["Limit"], rate["AggregateKeyType"]) == (3000, "IP")
    geo = rules["outside-source-countries"]["Statement"]["NotStatement"]["Statement"]
    assert {"PT", "ES"} <= set(geo["GeoMatchStatement"]["CountryCodes"])
    size = rules["body-too-large"]["Statement"]["SizeConstraintStatement"]
    assert (size["ComparisonOperator"], size["Size"]) == ("GT", 64 * 1024)
    assert size["FieldToMatch"] == {"Body": {"OversizeHandling": "MATCH"}}
    for name in ("rate-per-ip", "outside-source-countries", "body-too-large"):
        assert rules[name]["Action"] == {"Block": {}}
    assert {
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
    } <= set(rules)
    receiver.resource_count_is("AWS::WAFv2::WebACLAssociation", 1)


def test_bus_archives_landed_webhooks_and_the_hourly_rule_starts_the_poll(
    stage: dict[str, Template],
) -> None:
    stage["Receiver"].has_resource_properties(
        "AWS::Events::EventBus", {"Name": "hostpms-production-events"}
    )
    stage["Receiver"].has_resource_properties(
        "AWS::Events::Archive", {"EventPattern": {"source": ["hostpms.webhooks"]}}
    )
    [rule] = resources(stage["Orchestration"], "AWS::Events::Rule").values()
    assert rule["ScheduleExpression"] == "cron(0 * * * ? *)"
    [target] = rule["Targets"]
    assert target["EcsParameters"]["LaunchType"] == "FARGATE"
    assert json.loads(target["Input"]) == {
        "containerOverrides": [{"name": "run", "command": ["hostpms-hourly-poll"]}]
    }


# --- Dagster on ECS ---------------------------------------------------------------------


def test_dagster_runs_webserver_and_one_daemon_with_the_ecs_run_launcher(
    stage: dict[str, Template],
) -> None:
    orchestration = stage["Orchestration"]
    services = resources(orchestration, "AWS::ECS::Service")
    by_name = {s["ServiceName"]: s for s in services.values()}
    daemon = by_name["hostpms-production-dagster-daemon"]
    assert daemon["DesiredCount"] == 1
    assert daemon["DeploymentConfiguration"]["MaximumPercent"] == 100  # never two daemons
    assert by_name["hostpms-production-dagster-webserver"]["EnableExecuteCommand"] is True
    containers = {
        c["Name"]: c
        for task in resources(orchestration, "AWS::ECS::TaskDefinition").values()
        for c in task["ContainerDefinitions"]
    }
    assert containers["daemon"]["Command"][:2] == ["dagster-daemon", "run"]
    assert containers["webserver"]["Command"][0] == "dagster-webserver"
    for container in containers.values():
        names = {variable["Name"] for variable in container["Environment"]}
        assert not any("PASSWORD" in name for name in names)  # only as an injected secret
        assert [secret["Name"] for secret in container["Secrets"]] == ["PGPASSWORD"]
        assert "HOSTPMS_DATABASE_URL" in names and "DAGSTER_PG_HOST" in names
    for control in ("daemon", "webserver"):
        names = {variable["Name"] for variable in containers[control]["Environment"]}
        assert "DAGSTER_RUN_TASK_DEFINITION" in names


def test_dagster_instance_config_is_valid_for_dagster(tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    source = Path(__file__).parents[1] / "dagster" / "dagster.yaml"
    (tmp_path / "dagster.yaml").write_text(source.read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_launcher"]["class"] == "EcsRunLauncher"
    assert config["run_launcher"]["config"]["container_name"] == "run"
    assert config["storage"]["postgres"]["postgres_db"]["password"] == {"env": "PGPASSWORD"}


# --- monitoring -------------------------------------------------------------------------

# Alarm → (threshold, comparison, consecutive 1-period datapoints, period in seconds).
PRD_ALARMS = {
    "warning-webhook-p99-latency": (1000, "GreaterThanThreshold", 1, 300),
    "critical-webhook-error-rate": (5, "GreaterThanThreshold", 1, None),
    "critical-polling-failures": (1, "GreaterThanOrEqualToThreshold", 3, 3600),
    "warning-etl-duration": (900, "GreaterThanThreshold", 1, 3600),
    "critical-sync-lag": (1, "LessThanThreshold", 2, 3600),
    "warning-rds-cpu": (80, "GreaterThanThreshold", 3, 300),
    "critical-lambda-errors": (10, "GreaterThanThreshold", 1, 300),
}


def test_every_prd_alarm_is_at_its_threshold_and_goes_to_the_alerts_topic(
    stage: dict[str, Template],
) -> None:
    alarms = {
        a["AlarmName"].removeprefix("hostpms-production-"): a
        for a in resources(stage["Monitoring"], "AWS::CloudWatch::Alarm").values()
    }
    assert sorted(alarms) == sorted(PRD_ALARMS)
    for name, (threshold, operator, periods, period) in PRD_ALARMS.items():
        alarm = alarms[name]
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (threshold, operator), name
        assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == periods, name
        if period:
            assert alarm["Period"] == period, name
        [action] = alarm["AlarmActions"]
        assert "AlertsTopic" in json.dumps(action), name
    assert alarms["critical-sync-lag"]["TreatMissingData"] == "breaching"
    latency = alarms["warning-webhook-p99-latency"]
    assert (latency["ExtendedStatistic"], latency["MetricName"]) == ("p99", "Latency")
    [rate] = [m for m in alarms["critical-webhook-error-rate"]["Metrics"] if "Expression" in m]
    assert "100 * errors / requests" in rate["Expression"]


def test_log_metric_filters_read_the_poll_line_and_the_publish_failures(
    stage: dict[str, Template],
) -> None:
    filters = {
        f["MetricTransformations"][0]["MetricName"]: f
        for f in resources(stage["Monitoring"], "AWS::Logs::MetricFilter").values()
    }
    assert filters["EtlDurationSeconds"]["MetricTransformations"][0]["MetricValue"] == (
        "$.hostpms_poll.duration_seconds"
    )
    assert filters["PollingFailures"]["FilterPattern"] == "{ $.hostpms_poll.failed = 1 }"
    assert filters["PollingSuccesses"]["FilterPattern"] == "{ $.hostpms_poll.failed = 0 }"
    from hostpms_pipeline.webhooks.events import FAILURE_MESSAGE

    assert filters["EventPublishFailures"]["FilterPattern"] == f'"{FAILURE_MESSAGE}"'


def test_the_prd_dashboards_exist(stage: dict[str, Template]) -> None:
    dashboards = {
        d["DashboardName"]: json.dumps(d["DashboardBody"])
        for d in resources(stage["Monitoring"], "AWS::CloudWatch::Dashboard").values()
    }
    assert sorted(dashboards) == [
        "hostpms-production-cost",
        "hostpms-production-integration-health",
        "hostpms-production-performance",
    ]
    assert "Webhook success rate" in dashboards["hostpms-production-integration-health"]
    assert "Data sync lag" in dashboards["hostpms-production-integration-health"]
    assert "p99" in dashboards["hostpms-production-performance"]
    assert "EstimatedCharges" in dashboards["hostpms-production-cost"]


def test_cloudtrail_logs_management_and_guest_data_events(stage: dict[str, Template]) -> None:
    [trail] = resources(stage["Monitoring"], "AWS::CloudTrail::Trail").values()
    assert trail["IsLogging"] and trail["IsMultiRegionTrail"] and trail["EnableLogFileValidation"]
    assert "KMSKeyId" in trail
    [selector] = trail["EventSelectors"]
    assert selector["ReadWriteType"] == "All" and selector["IncludeManagementEvents"]
    values = json.dumps(selector["DataResources"][0]["Values"])
    assert "RawBucket" in values and "ProcessedBucket" in values
