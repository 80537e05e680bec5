"""Dagster on ECS Fargate: the webserver and the daemon as services, each run as its own
task (dagster-aws's ECS run launcher), and the PRD's hourly polling rule.

All three run the repo's Dockerfile (target ``dagster``) with ``infra/dagster/dagster.yaml``:
runs, events and schedules in PostgreSQL on the RDS instance (dagster-postgres), which
also holds the pipeline's tables. The database password reaches the containers as
``PGPASSWORD``, injected by ECS from Secrets Manager, so it is in no template or image.

Nothing is reachable from outside: the webserver has no load balancer; operators open it
through ECS Exec port forwarding (docs/deploy-aws.md).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from hostpms_infra.assets import IMAGE_EXCLUDES, REPO_ROOT
from hostpms_infra.config import StageConfig
from hostpms_infra.data import DATABASE_NAME, DATABASE_USER, DataStack
from hostpms_infra.storage import OAUTH_SECRETS, WEBHOOK_SECRETS, StorageStack, secret_arn

HOSTPMS_API = "https://api.hostpms.com/v3"
POSTGRES_PORT = 5432
RUN_CONTAINER = "run"  # dagster.yaml's run_launcher.config.container_name
POLL_COMMAND = ["hostpms-hourly-poll"]  # infra/dagster/hourly-poll.sh in the image
POLLING_SCHEDULE = "cron(0 * * * ? *)"  # TR-3's hostpms-polling rule


class OrchestrationStack(Stack):
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
        self.storage = storage

        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            cluster_name=config.resource_name("dagster"),
            vpc=data.vpc,
            # ECS Exec serves port forwarding to the webserver only: no shell sessions to log.
            execute_command_configuration=ecs.ExecuteCommandConfiguration(
                logging=ecs.ExecuteCommandLogging.NONE
            ),
        )
        self.log_group = logs.LogGroup(
            self,
            "DagsterLogs",
            log_group_name=f"/hostpms/{config.name}/dagster",
            retention=config.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "TaskSecurityGroup",
            vpc=data.vpc,
            description="Dagster tasks: nothing in; out to HostPMS, AWS APIs and the database",
        )
        # Declared here, not on the database's group in Data: Data must not depend on this stack.
        ec2.CfnSecurityGroupIngress(
            self,
            "DatabaseFromTasks",
            group_id=data.database.connections.security_groups[0].security_group_id,
            source_security_group_id=self.security_group.security_group_id,
            ip_protocol="tcp",
            from_port=POSTGRES_PORT,
            to_port=POSTGRES_PORT,
            description="Dagster tasks to PostgreSQL",
        )
        self.image = ecs.ContainerImage.from_asset(
            str(REPO_ROOT), target="dagster", exclude=IMAGE_EXCLUDES
        )

        database = data.database
        database_host = database.db_instance_endpoint_address
        database_port = database.db_instance_endpoint_port
        self.task_environment = {
            "HOSTPMS_API_BASE_URL": HOSTPMS_API,
            "HOSTPMS_PROPERTY_IDS": ",".join(config.property_ids),
            "HOSTPMS_USE_SECRETS_MANAGER": "true",
            "HOSTPMS_RAW_URL": f"s3://{storage.raw_bucket.bucket_name}",
            "HOSTPMS_PROCESSED_URL": f"s3://{storage.processed_bucket.bucket_name}",
            "HOSTPMS_S3_KMS_KEY_ID": storage.key.key_arn,
            "HOSTPMS_ALERT_SNS_TOPIC_ARN": storage.alerts_topic.topic_arn,
            "HOSTPMS_HOME": "/tmp/hostpms",
            # No password in the URL: libpq takes it from PGPASSWORD.
            "HOSTPMS_DATABASE_URL": (
                f"postgresql://{DATABASE_USER}@{database_host}:{database_port}"
                f"/{DATABASE_NAME}?sslmode=require"
            ),
            "DAGSTER_PG_HOST": database_host,
            "DAGSTER_PG_PORT": database_port,
            "DAGSTER_PG_USER": DATABASE_USER,
            "DAGSTER_PG_DB": DATABASE_NAME,
        }
        assert database.secret is not None
        # Imported with an imported key, so that ECS's grant to read it lands in the execution
        # role's policy; on the key itself it would make Storage depend on this stack.
        database_secret = secretsmanager.Secret.from_secret_attributes(
            self,
            "DatabaseSecret",
            secret_complete_arn=database.secret.secret_arn,
            encryption_key=kms.Key.from_key_arn(self, "DataKey", storage.key.key_arn),
        )
        self.secrets = {"PGPASSWORD": ecs.Secret.from_secrets_manager(database_secret, "password")}

        self.execution_role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="ECS agent: pull the image, write logs, inject PGPASSWORD",
        )
        self.run_role = self._run_role()
        self.control_role = iam.Role(
            self,
            "ControlRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="Dagster webserver and daemon: sensors, alerts, launching runs",
        )
        self._grant_sensors(self.control_role)

        self.run_task = self._task("Run", RUN_CONTAINER, self.run_role, config.run_cpu,
                                   config.run_memory_mib, command=None)  # fmt: skip
        self._grant_run_launcher(self.control_role)
        control_environment = {"DAGSTER_RUN_TASK_DEFINITION": self.run_task.task_definition_arn}
        webserver_task = self._task(
            "Webserver",
            "webserver",
            self.control_role,
            config.webserver_cpu,
            config.webserver_memory_mib,
            command=["dagster-webserver", "-h", "0.0.0.0", "-p", "3000", "-w", "workspace.yaml"],
            extra_environment=control_environment,
        )
        daemon_task = self._task(
            "Daemon",
            "daemon",
            self.control_role,
            config.daemon_cpu,
            config.daemon_memory_mib,
            command=["dagster-daemon", "run", "-w", "workspace.yaml"],
            extra_environment=control_environment,
        )
        self.webserver = self._service("Webserver", webserver_task, exec_enabled=True)
        # Dagster allows one daemon: stop the old task before starting the new one.
        self.daemon = self._service("Daemon", daemon_task, min_healthy_percent=0,
                                    max_healthy_percent=100)  # fmt: skip

        self.polling_rule = events.Rule(
            self,
            "PollingRule",
            rule_name=config.resource_name("polling"),
            description="TR-3 hostpms-polling: every property, every hour",
            schedule=events.Schedule.expression(POLLING_SCHEDULE),
            targets=[
                targets.EcsTask(
                    cluster=self.cluster,
                    task_definition=self.run_task,
                    launch_type=ecs.LaunchType.FARGATE,
                    subnet_selection=data.public_subnets,
                    assign_public_ip=True,
                    security_groups=[self.security_group],
                    container_overrides=[
                        targets.ContainerOverride(
                            container_name=RUN_CONTAINER, command=POLL_COMMAND
                        )
                    ],
                )
            ],
        )

    def _task(
        self,
        name: str,
        container: str,
        role: iam.IRole,
        cpu: int,
        memory_mib: int,
        *,
        command: list[str] | None,
        extra_environment: dict[str, str] | None = None,
    ) -> ecs.FargateTaskDefinition:
        task = ecs.FargateTaskDefinition(
            self,
            f"{name}Task",
            family=self.config.resource_name(f"dagster-{container}"),
            cpu=cpu,
            memory_limit_mib=memory_mib,
            task_role=role,
            execution_role=self.execution_role,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        task.add_container(
            container,
            container_name=container,
            image=self.image,
            command=command,
            environment={**self.task_environment, **(extra_environment or {})},
            secrets=self.secrets,
            logging=ecs.LogDrivers.aws_logs(stream_prefix=container, log_group=self.log_group),
            port_mappings=(
                [ecs.PortMapping(container_port=3000)] if container == "webserver" else None
            ),
            readonly_root_filesystem=False,  # Dagster writes compute logs under DAGSTER_HOME
        )
        return task

    def _service(
        self,
        name: str,
        task: ecs.FargateTaskDefinition,
        *,
        exec_enabled: bool = False,
        min_healthy_percent: int = 100,
        max_healthy_percent: int = 200,
    ) -> ecs.FargateService:
        return ecs.FargateService(
            self,
            f"{name}Service",
            service_name=self.config.resource_name(f"dagster-{name.lower()}"),
            cluster=self.cluster,
            task_definition=task,
            desired_count=1,
            min_healthy_percent=min_healthy_percent,
            max_healthy_percent=max_healthy_percent,
            assign_public_ip=True,  # egress to HostPMS without a NAT; the group admits nothing
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_groups=[self.security_group],
            enable_execute_command=exec_enabled,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )

    def _run_role(self) -> iam.Role:
        """A run lands raw pages, reads them, writes Parquet, reads OAuth and webhook secrets."""
        storage = self.storage
        role = iam.Role(
            self,
            "RunRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="Dagster runs and the hourly poll: the pipeline itself",
        )
        buckets = (storage.raw_bucket, storage.processed_bucket)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"], resources=[bucket.bucket_arn for bucket in buckets]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                resources=[bucket.arn_for_objects("*") for bucket in buckets],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"],
                resources=[secret_arn(self, OAUTH_SECRETS), secret_arn(self, WEBHOOK_SECRETS)],
            )
        )
        self._grant_key(role, {"s3": ["kms:GenerateDataKey", "kms:Decrypt"],
                               "secretsmanager": ["kms:Decrypt"]})  # fmt: skip
        self._grant_alerts(role)
        return role

    def _grant_sensors(self, role: iam.Role) -> None:
        """The daemon's sensors list and read the raw bucket (webhook drops) and send alerts;
        the webserver loads the same code."""
        raw = self.storage.raw_bucket
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[raw.bucket_arn])
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[raw.arn_for_objects("*")])
        )
        self._grant_key(role, {"s3": ["kms:Decrypt"]})
        self._grant_alerts(role)

    def _grant_alerts(self, role: iam.Role) -> None:
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["sns:Publish"], resources=[self.storage.alerts_topic.topic_arn]
            )
        )
        self._grant_key(role, {"sns": ["kms:GenerateDataKey", "kms:Decrypt"]})

    def _grant_key(self, role: iam.Role, actions_by_service: dict[str, list[str]]) -> None:
        for service, actions in actions_by_service.items():
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=actions,
                    resources=[self.storage.key.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": self.storage.via(service)}},
                )
            )

    def _grant_run_launcher(self, role: iam.Role) -> None:
        """What dagster-aws's EcsRunLauncher calls: start, watch and stop run tasks."""
        tasks_in_cluster = self.format_arn(
            service="ecs", resource="task", resource_name=f"{self.cluster.cluster_name}/*"
        )
        run_family = self.format_arn(
            service="ecs",
            resource="task-definition",
            resource_name=f"{self.config.resource_name('dagster-run')}:*",  # any revision
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecs:RunTask"],
                resources=[run_family],
                conditions={"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecs:DescribeTasks", "ecs:StopTask"], resources=[tasks_in_cluster]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecs:TagResource"],
                resources=[tasks_in_cluster],
                conditions={"StringEquals": {"ecs:CreateAction": "RunTask"}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                # Neither supports resource-level permissions: AWS requires "*".
                actions=["ecs:DescribeTaskDefinition", "ec2:DescribeNetworkInterfaces"],
                resources=["*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.run_role.role_arn, self.execution_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:GetLogEvents"],  # the launcher quotes a failed run's last lines
                resources=[self.log_group.log_group_arn],
            )
        )
