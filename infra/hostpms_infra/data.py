"""The network and the database: a VPC without a NAT gateway, and RDS PostgreSQL.

Private (isolated) subnets hold the database, the receiver Lambda and the endpoints; AWS
APIs are reached through VPC endpoints (S3 and DynamoDB gateways, free; Secrets Manager
and EventBridge interfaces). Only the Dagster tasks need the internet (the HostPMS API):
they run in the public subnets with a public IP and a security group that admits nothing,
which costs nothing, where a NAT gateway would cost about $35 a month plus $0.048 per GB.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from constructs import Construct

from hostpms_infra.config import StageConfig
from hostpms_infra.storage import StorageStack

DATABASE_NAME = "hostpms"
DATABASE_USER = "hostpms"


class DataStack(Stack):
    def __init__(
        self, scope: Construct, id: str, *, config: StageConfig, storage: StorageStack, **kwargs
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.private_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        self.public_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)

        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.40.0.0/16"),
            availability_zones=list(config.availability_zones),
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24
                ),
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=22
                ),
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDB": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
                ),
            },
        )
        # What the Lambdas in the private subnets call besides S3 and DynamoDB.
        self.secrets_endpoint = self.vpc.add_interface_endpoint(
            "SecretsManagerEndpoint",
            service=ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
            subnets=self.private_subnets,
        )
        self.events_endpoint = self.vpc.add_interface_endpoint(
            "EventBridgeEndpoint",
            service=ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE,
            subnets=self.private_subnets,
        )

        instance_id = config.resource_name("db")
        # Created here, not by RDS, so that it has a retention (RDS would keep logs forever).
        logs.LogGroup(
            self,
            "DatabaseLogs",
            log_group_name=f"/aws/rds/instance/{instance_id}/postgresql",
            retention=config.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.database = rds.DatabaseInstance(
            self,
            "Database",
            instance_identifier=instance_id,
            engine=rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_17),
            instance_type=ec2.InstanceType(config.db_instance_type),
            vpc=self.vpc,
            vpc_subnets=self.private_subnets,
            publicly_accessible=False,
            database_name=DATABASE_NAME,
            # The PRD's rds/{stage}/credentials; the password never appears in a template.
            credentials=rds.Credentials.from_generated_secret(
                DATABASE_USER,
                secret_name=f"rds/{config.name}/credentials",
                encryption_key=storage.key,
            ),
            storage_encrypted=True,
            storage_encryption_key=storage.key,
            storage_type=rds.StorageType.GP3,
            allocated_storage=config.db_allocated_storage_gib,
            max_allocated_storage=config.db_max_allocated_storage_gib,
            multi_az=config.db_multi_az,
            backup_retention=Duration.days(config.db_backup_days),
            copy_tags_to_snapshot=True,
            deletion_protection=True,
            removal_policy=RemovalPolicy.SNAPSHOT,
            cloudwatch_logs_exports=["postgresql"],
            enable_performance_insights=True,
            performance_insight_encryption_key=storage.key,
            auto_minor_version_upgrade=True,
        )
        # PostgreSQL 17 refuses unencrypted connections by default (rds.force_ssl = 1).
        self.database.add_rotation_single_user(
            automatically_after=Duration.days(config.db_credentials_rotation.days),
            vpc_subnets=self.private_subnets,
            endpoint=self.secrets_endpoint,
        )
