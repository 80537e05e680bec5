"""Alerts for the PRD's thresholds, sent through a notifier: the log by default,
a Slack incoming webhook or an SNS topic when configured.

An alert names a property and what went wrong; never guest data or secrets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import boto3
import httpx
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

log = logging.getLogger(__name__)

Severity = Literal["warning", "critical"]
CONSECUTIVE_FAILURES_CRITICAL = 3  # the PRD: "polling job failures > 2 consecutive" is critical
FAILURES_LOOKED_AT = 10  # latest syncs of each kind (runs, `hostpms sync`) counted back
SYNC_LAG_CRITICAL = timedelta(hours=2)  # the PRD: "data sync lag > 2 hours" is critical


@dataclass(frozen=True)
class Alert:
    severity: Severity
    property_id: str
    title: str
    detail: str

    def text(self) -> str:
        return f"[{self.severity.upper()}] HostPMS {self.property_id}: {self.title}. {self.detail}"


class Notifier(Protocol):
    def notify(self, alert: Alert) -> None: ...


class LogNotifier:
    def notify(self, alert: Alert) -> None:
        level = logging.ERROR if alert.severity == "critical" else logging.WARNING
        log.log(level, alert.text())


@dataclass(frozen=True)
class SlackNotifier:
    webhook_url: str

    def notify(self, alert: Alert) -> None:
        httpx.post(self.webhook_url, json={"text": alert.text()}, timeout=10).raise_for_status()


@dataclass(frozen=True)
class SNSNotifier:
    topic_arn: str

    def notify(self, alert: Alert) -> None:
        boto3.client("sns").publish(
            TopicArn=self.topic_arn,
            Subject=f"HostPMS {alert.severity}: {alert.property_id}"[:100],
            Message=json.dumps({"severity": alert.severity, "property_id": alert.property_id,
                                "title": alert.title, "detail": alert.detail}),
        )  # fmt: skip


def consecutive_failures(
    instance: DagsterInstance,
    property_id: str,
    property_tag: str,
    cli_outcomes: Sequence[tuple[datetime, bool]] = (),
    limit: int = FAILURES_LOOKED_AT,
) -> int:
    """How many of the property's latest syncs failed in a row (newest first): its finished
    Dagster runs and its ``hostpms sync``s (``cli_outcomes``: finished at, succeeded)."""
    records = instance.get_run_records(
        filters=RunsFilter(
            tags={property_tag: property_id},
            statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE],
        ),
        limit=limit,
    )
    finished = [
        (datetime.fromtimestamp(r.end_time, UTC), r.dagster_run.status == DagsterRunStatus.SUCCESS)
        for r in records
        if r.end_time is not None
    ]
    return failures_in_a_row([*finished, *cli_outcomes])


def failures_in_a_row(outcomes: Sequence[tuple[datetime, bool]]) -> int:
    """Failed ``(finished at, succeeded)`` outcomes since the latest success."""
    failures = 0
    for _, succeeded in sorted(outcomes, key=lambda o: o[0], reverse=True):
        if succeeded:
            break
        failures += 1
    return failures


def failure_alert(
    property_id: str, failures: int, job_name: str, problem: str | None = None
) -> Alert:
    """``problem``: the one line of a failed `hostpms sync` (a run's error is in the UI)."""
    severity: Severity = "critical" if failures >= CONSECUTIVE_FAILURES_CRITICAL else "warning"
    detail = (
        f"Latest failed: {job_name}: {problem}"
        if problem
        else f"Latest failed job: {job_name}. Open the run in the Dagster UI for the error."
    )
    return Alert(severity, property_id, f"{failures} consecutive failed sync run(s)", detail)


def stale_properties(
    last_sync: dict[str, datetime], property_ids: list[str], now: datetime
) -> dict[str, str]:
    """Properties whose data is older than the lag limit, with how old (or 'never synced')."""
    stale = {}
    for property_id in property_ids:
        synced = last_sync.get(property_id)
        if synced is None:
            stale[property_id] = "never synced"
        elif now - synced > SYNC_LAG_CRITICAL:
            stale[property_id] = f"last synced {(now - synced).total_seconds() / 3600:.1f} h ago"
    return stale
