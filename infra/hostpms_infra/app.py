"""The CDK app: one Stage per environment, `hostpms-staging` and `hostpms-production`.

Context (``-c name=value``): ``stage`` synthesizes one stage only; ``account`` is that
stage's AWS account (default: a placeholder, enough to synthesize); ``alarm_email``
subscribes an address to the alerts topic.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import App

from hostpms_infra.config import STAGES, stage_config
from hostpms_infra.stage import HostPmsStage


def build_app(context: Mapping[str, str] | None = None, outdir: str | None = None) -> App:
    app = App(context=dict(context or {}), outdir=outdir)
    only = app.node.try_get_context("stage")
    if only is not None and only not in STAGES:
        raise ValueError(f"unknown stage {only!r}; stages: {', '.join(STAGES)}")
    for name in [only] if only else STAGES:
        config = stage_config(
            name,
            account=app.node.try_get_context("account"),
            alarm_email=app.node.try_get_context("alarm_email"),
        )
        HostPmsStage(app, f"hostpms-{name}", config=config)
    return app
