"""CloudWatch: the PRD's seven alarms at its thresholds and its three dashboards, all
alarms to the alerts topic; and CloudTrail, management events plus every read and write
of the guest-data buckets (GDPR: all data access logged).

The pipeline's own numbers come from its logs through metric filters: the hourly poll
prints one JSON line (``infra/dagster/hourly-poll.sh``) with its duration and result, and
the receiver logs one line per event it could not publish.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudtrail as cloudtrail
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from hostpms_infra.config import StageConfig
from hostpms_infra.data import DataStack
from hostpms_infra.orchestration import OrchestrationStack
from hostpms_infra.receiver import PUBLISH_FAILURE_TEXT, ReceiverStack
from hostpms_infra.storage import StorageStack

NAMESPACE = "HostPMS/Pipeline"
FIVE_MINUTES = Duration.minutes(5)
ONE_HOUR = Duration.hours(1)


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        storage: StorageStack,
        data: DataStack,
        receiver: ReceiverStack,
        orchestration: OrchestrationStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.config = config
        self.topic = storage.alerts_topic
        for address in config.alarm_emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(address))

        poll_logs = orchestration.log_group
        self.etl_duration = self._from_logs(
            "EtlDurationSeconds",
            poll_logs,
            "{ $.hostpms_poll.duration_seconds >= 0 }",
            "$.hostpms_poll.duration_seconds",
            "Maximum",
            ONE_HOUR,
        )
        self.polling_failures = self._from_logs(
            "PollingFailures", poll_logs, "{ $.hostpms_poll.failed = 1 }", "1", "Sum", ONE_HOUR
        )
        self.polling_successes = self._from_logs(
            "PollingSuccesses", poll_logs, "{ $.hostpms_poll.failed = 0 }", "1", "Sum", ONE_HOUR
        )
        self.publish_failures = self._from_logs(
            "EventPublishFailures",
            receiver.log_group,
            f'"{PUBLISH_FAILURE_TEXT}"',
            "1",
            "Sum",
            FIVE_MINUTES,
        )

        api, function, database = receiver.api, receiver.function, data.database
        requests = api.metric_count(period=FIVE_MINUTES, statistic="Sum")
        server_errors = api.metric_server_error(period=FIVE_MINUTES, statistic="Sum")
        client_errors = api.metric_client_error(period=FIVE_MINUTES, statistic="Sum")
        self.error_rate = cw.MathExpression(
            expression="IF(requests > 0, 100 * errors / requests, 0)",
            using_metrics={"requests": requests, "errors": server_errors},
            label="Webhook error rate (%)",
            period=FIVE_MINUTES,
        )
        success_rate = cw.MathExpression(
            expression="IF(requests > 0, 100 * (requests - client - server) / requests, 100)",
            using_metrics={"requests": requests, "client": client_errors, "server": server_errors},
            label="Webhook success rate (%)",
            period=FIVE_MINUTES,
        )
        polling_rate = cw.MathExpression(
            expression="IF(ok + failed > 0, 100 * ok / (ok + failed), 100)",
            using_metrics={"ok": self.polling_successes, "failed": self.polling_failures},
            label="Polling success rate (%)",
            period=ONE_HOUR,
        )
        latency = {
            p: api.metric_latency(period=FIVE_MINUTES, statistic=p) for p in ("p50", "p95", "p99")
        }

        limits = config.thresholds
        self.alarms = [
            self._alarm(
                "warning", "webhook-p99-latency", latency["p99"],
                threshold=limits.webhook_p99_latency.total_seconds() * 1000,
                description="Webhook latency p99 over 1 s (PRD: warning)",
            ),
            self._alarm(
                "critical", "webhook-error-rate", self.error_rate,
                threshold=limits.webhook_error_rate_percent,
                description="Over 5% of webhook deliveries answered 5xx (PRD: critical)",
            ),
            self._alarm(
                "critical", "polling-failures", self.polling_failures,
                threshold=1,
                operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                # A failed poll in each of 3 hours running: more than 2 consecutive failures.
                evaluation_periods=limits.consecutive_polling_failures + 1,
                description="More than 2 consecutive hourly polls failed (PRD: critical)",
            ),
            self._alarm(
                "warning", "etl-duration", self.etl_duration,
                threshold=limits.etl_duration.total_seconds(),
                description="An hourly poll and load took over 15 minutes (PRD: warning)",
            ),
            self._alarm(
                "critical", "sync-lag", self.polling_successes,
                threshold=1,
                operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                evaluation_periods=int(limits.sync_lag.total_seconds() // 3600),  # hours
                # No poll line at all means no sync either.
                missing=cw.TreatMissingData.BREACHING,
                description="No complete successful sync for 2 hours (PRD: critical)",
            ),
            self._alarm(
                "warning", "rds-cpu", database.metric_cpu_utilization(period=FIVE_MINUTES),
                threshold=limits.rds_cpu_percent,
                evaluation_periods=3,  # sustained for 15 minutes, not a vacuum's spike
                description="RDS CPU over 80% (PRD: warning)",
            ),
            self._alarm(
                "critical", "lambda-errors",
                function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                threshold=limits.lambda_errors_in_5_minutes,
                description="Receiver Lambda errors over 10 in 5 minutes (PRD: critical)",
            ),
        ]  # fmt: skip

        self._dashboards(
            success_rate=success_rate,
            polling_rate=polling_rate,
            latency=latency,
            api=api,
            function=function,
            database=database,
            storage=storage,
        )
        self.trail = self._trail(storage)

    def _from_logs(
        self,
        metric_name: str,
        log_group: logs.ILogGroup,
        pattern: str,
        value: str,
        statistic: str,
        period: Duration,
    ) -> cw.Metric:
        logs.MetricFilter(
            self,
            f"{metric_name}Filter",
            log_group=log_group,
            filter_pattern=logs.FilterPattern.literal(pattern),
            metric_namespace=NAMESPACE,
            metric_name=metric_name,
            metric_value=value,
        )
        return cw.Metric(
            namespace=NAMESPACE, metric_name=metric_name, statistic=statistic, period=period
        )

    def _alarm(
        self,
        severity: str,
        name: str,
        metric: cw.IMetric,
        *,
        threshold: float,
        description: str,
        operator: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods: int = 1,
        missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING,
    ) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            f"{name}-alarm",
            alarm_name=self.config.resource_name(f"{severity}-{name}"),
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=operator,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=evaluation_periods,
            treat_missing_data=missing,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        alarm.add_ok_action(cw_actions.SnsAction(self.topic))
        return alarm

    def _dashboards(self, *, success_rate, polling_rate, latency, api, function, database,
                    storage) -> None:  # fmt: skip
        name = self.config.resource_name

        def graph(title: str, *metrics: cw.IMetric, width: int = 12, **options) -> cw.GraphWidget:
            return cw.GraphWidget(title=title, left=list(metrics), width=width, **options)

        cw.Dashboard(
            self,
            "IntegrationHealth",
            dashboard_name=name("integration-health"),
            widgets=[
                [cw.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24)],
                [
                    graph("Webhook success rate (%)", success_rate),
                    graph("Polling success rate (%)", polling_rate),
                ],
                [
                    graph(
                        "ETL job status (hourly polls)",
                        self.polling_successes.with_(label="succeeded"),
                        self.polling_failures.with_(label="failed"),
                    ),
                    graph(
                        "Data sync lag: complete syncs per hour (0 for 2 h = critical)",
                        self.polling_successes,
                    ),
                ],
                [
                    graph("Webhook events not published to EventBridge", self.publish_failures),
                    graph("Deliveries", api.metric_count(period=FIVE_MINUTES, statistic="Sum")),
                ],
            ],
        )
        cw.Dashboard(
            self,
            "Performance",
            dashboard_name=name("performance"),
            widgets=[
                [
                    graph("Webhook latency (ms)", *latency.values()),
                    graph(
                        "API response times (ms)",
                        api.metric_integration_latency(period=FIVE_MINUTES, statistic="p99"),
                        function.metric_duration(period=FIVE_MINUTES, statistic="p99"),
                    ),
                ],
                [
                    graph("ETL processing time (s)", self.etl_duration),
                    graph(
                        "Database",
                        database.metric_cpu_utilization(period=FIVE_MINUTES),
                        database.metric_database_connections(period=FIVE_MINUTES),
                        right=[
                            database.metric("ReadLatency", period=FIVE_MINUTES),
                            database.metric("WriteLatency", period=FIVE_MINUTES),
                        ],
                    ),
                ],
            ],
        )

        def billing(service: str) -> cw.Metric:
            # Billing metrics exist in us-east-1 only, once billing alerts are on.
            return cw.Metric(
                namespace="AWS/Billing",
                metric_name="EstimatedCharges",
                dimensions_map={"ServiceName": service, "Currency": "USD"},
                region="us-east-1",
                statistic="Maximum",
                period=Duration.hours(6),
                label=service,
            )

        def bucket_size(bucket: s3.IBucket) -> cw.Metric:
            return cw.Metric(
                namespace="AWS/S3",
                metric_name="BucketSizeBytes",
                dimensions_map={"BucketName": bucket.bucket_name, "StorageType": "StandardStorage"},
                statistic="Average",
                period=Duration.days(1),
            )

        cw.Dashboard(
            self,
            "CostTracking",
            dashboard_name=name("cost"),
            widgets=[
                [
                    graph(
                        "Month-to-date charges (USD)",
                        *(
                            billing(service)
                            for service in (
                                "AWSLambda",
                                "AmazonApiGateway",
                                "AmazonRDS",
                                "AmazonECS",
                                "AmazonS3",
                                "AmazonDynamoDB",
                                "awswaf",
                                "AmazonCloudWatch",
                            )
                        ),  # fmt: skip
                        width=24,
                    )
                ],
                [
                    graph(
                        "Lambda invocations and duration (GB-s driver)",
                        function.metric_invocations(period=ONE_HOUR, statistic="Sum"),
                        right=[function.metric_duration(period=ONE_HOUR, statistic="Sum")],
                    ),
                    graph(
                        "Fargate runs (hourly polls) and their minutes",
                        self.polling_successes,
                        self.polling_failures,
                        right=[self.etl_duration],
                    ),
                ],
                [
                    graph(
                        "S3 storage (bytes)",
                        bucket_size(storage.raw_bucket),
                        bucket_size(storage.processed_bucket),
                    ),
                    graph(
                        "RDS instance and DynamoDB on-demand use",
                        database.metric_cpu_utilization(period=ONE_HOUR),
                        right=[
                            storage.idempotency_table.metric_consumed_write_capacity_units(
                                period=ONE_HOUR, statistic="Sum"
                            )
                        ],
                    ),
                ],
            ],
        )

    def _trail(self, storage: StorageStack) -> cloudtrail.Trail:
        bucket = s3.Bucket(
            self,
            "TrailBucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=storage.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="retention",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER,
                            transition_after=Duration.days(90),
                        )
                    ],
                    expiration=Duration.days(self.config.retention.expire_after.days),
                    noncurrent_version_expiration=Duration.days(30),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        trail = cloudtrail.Trail(
            self,
            "Trail",
            trail_name=self.config.resource_name("audit"),
            bucket=bucket,
            encryption_key=storage.key,
            enable_file_validation=True,
            is_multi_region_trail=True,
            include_global_service_events=True,
        )
        trail.add_s3_event_selector(
            [
                cloudtrail.S3EventSelector(bucket=storage.raw_bucket),
                cloudtrail.S3EventSelector(bucket=storage.processed_bucket),
            ],
            read_write_type=cloudtrail.ReadWriteType.ALL,
            include_management_events=True,
        )
        return trail
