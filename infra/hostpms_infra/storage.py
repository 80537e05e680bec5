"""Data at rest: the customer-managed key, the raw and processed buckets, the webhook
idempotency table, the alerts topic, and the policy that lets `hostpms connect` store a
property's secrets."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from hostpms_infra.config import StageConfig

# Secrets Manager names of the per-property secrets (hostpms_pipeline.hostpms.contract).
PROPERTY_SECRETS = "hostpms/*"
OAUTH_SECRETS = "hostpms/*/oauth-credentials-??????"  # Secrets Manager appends 6 characters
WEBHOOK_SECRETS = "hostpms/*/webhook-secret-??????"
TTL_ATTRIBUTE = "expires_at"  # hostpms_pipeline.webhooks.idempotency


def secret_arn(stack: Stack, pattern: str) -> str:
    return stack.format_arn(
        service="secretsmanager",
        resource="secret",
        resource_name=pattern,
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


class StorageStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: StageConfig, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        self.config = config

        self.key = kms.Key(
            self,
            "DataKey",
            alias=f"alias/{config.resource_name('data')}",
            description="Encrypts HostPMS guest data at rest: buckets, table, database, secrets",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self._let_services_use_key()

        self.raw_bucket = self._bucket("Raw", versioned=True, glacier=s3.StorageClass.GLACIER)
        # Processed Parquet stays queryable by Athena when old: Glacier Instant Retrieval.
        self.processed_bucket = self._bucket(
            "Processed", versioned=False, glacier=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL
        )

        self.idempotency_table = dynamodb.Table(
            self,
            "IdempotencyTable",
            table_name=config.resource_name("webhook-idempotency"),
            partition_key=dynamodb.Attribute(
                name="idempotency_key", type=dynamodb.AttributeType.STRING
            ),
            time_to_live_attribute=TTL_ATTRIBUTE,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )

        # Where alarms and the pipeline's own alerts (HOSTPMS_ALERT_SNS_TOPIC_ARN) go. It is
        # here, at the bottom of the stacks' dependencies, so that every stack can publish.
        self.alerts_topic = sns.Topic(
            self,
            "AlertsTopic",
            topic_name=config.resource_name("alerts"),
            master_key=self.key,
            enforce_ssl=True,
        )

        self.connect_policy = iam.ManagedPolicy(
            self,
            "ConnectPolicy",
            managed_policy_name=config.resource_name("connect"),
            description="For `hostpms connect`: store a property's OAuth and webhook secrets",
            statements=[
                iam.PolicyStatement(
                    actions=[
                        "secretsmanager:CreateSecret",
                        "secretsmanager:PutSecretValue",
                        "secretsmanager:UpdateSecret",
                        "secretsmanager:DescribeSecret",
                        "secretsmanager:TagResource",
                    ],
                    resources=[secret_arn(self, PROPERTY_SECRETS)],
                ),
                iam.PolicyStatement(
                    actions=["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[self.key.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": self.via("secretsmanager")}},
                ),
            ],
        )

    def via(self, service: str) -> str:
        return f"{service}.{self.region}.amazonaws.com"

    def _bucket(self, name: str, *, versioned: bool, glacier: s3.StorageClass) -> s3.Bucket:
        retention = self.config.retention
        expiry = s3.LifecycleRule(
            id="retention",
            transitions=[
                s3.Transition(
                    storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                    transition_after=Duration.days(retention.infrequent_access_after.days),
                ),
                s3.Transition(
                    storage_class=glacier,
                    transition_after=Duration.days(retention.glacier_after.days),
                ),
            ],
            expiration=Duration.days(retention.expire_after.days),
            abort_incomplete_multipart_upload_after=Duration.days(7),
            noncurrent_version_expiration=(
                Duration.days(retention.noncurrent_versions_kept.days) if versioned else None
            ),
        )
        return s3.Bucket(
            self,
            f"{name}Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,  # one KMS call per object prefix and hour, not per object
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=versioned,
            lifecycle_rules=[expiry],
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _let_services_use_key(self) -> None:
        """CloudWatch alarms, EventBridge and CloudTrail write to things this key encrypts
        (the alerts topic, the trail's bucket); a key policy must let them, IAM cannot."""
        for service in ("cloudwatch", "events"):
            self.key.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal(f"{service}.amazonaws.com")],
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=["*"],  # in a key policy, "*" is this key
                    conditions={"StringEquals": {"aws:SourceAccount": self.account}},
                )
            )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudtrail.amazonaws.com")],
                actions=["kms:GenerateDataKey", "kms:DescribeKey"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={
                    "StringEquals": {"aws:SourceAccount": self.account},
                    "StringLike": {
                        "kms:EncryptionContext:aws:cloudtrail:arn": (
                            f"arn:{self.partition}:cloudtrail:*:{self.account}:trail/*"
                        )
                    },
                },
            )
        )
