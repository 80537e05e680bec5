"""One environment: five stacks in dependency order, each for one concern."""

from __future__ import annotations

from aws_cdk import Environment, Stage, Tags
from constructs import Construct

from hostpms_infra.config import StageConfig
from hostpms_infra.data import DataStack
from hostpms_infra.monitoring import MonitoringStack
from hostpms_infra.orchestration import OrchestrationStack
from hostpms_infra.receiver import ReceiverStack
from hostpms_infra.storage import StorageStack

STACKS = ("Storage", "Data", "Receiver", "Orchestration", "Monitoring")


class HostPmsStage(Stage):
    def __init__(self, scope: Construct, id: str, *, config: StageConfig, **kwargs) -> None:
        super().__init__(
            scope, id, env=Environment(account=config.account, region=config.region), **kwargs
        )
        protected = config.name == "production"
        self.storage = StorageStack(
            self, "Storage", config=config, termination_protection=protected
        )
        self.data = DataStack(
            self, "Data", config=config, storage=self.storage, termination_protection=protected
        )
        self.receiver = ReceiverStack(
            self, "Receiver", config=config, storage=self.storage, data=self.data
        )
        self.orchestration = OrchestrationStack(
            self, "Orchestration", config=config, storage=self.storage, data=self.data
        )
        self.monitoring = MonitoringStack(
            self,
            "Monitoring",
            config=config,
            storage=self.storage,
            data=self.data,
            receiver=self.receiver,
            orchestration=self.orchestration,
        )
        Tags.of(self).add("project", "hostpms")
        Tags.of(self).add("stage", config.name)
