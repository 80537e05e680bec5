"""AWS Lambda entry point behind API Gateway (REST v1 or HTTP v2 payloads), through Mangum.

Handler: ``hostpms_pipeline.webhooks.lambda_handler.handler``. The app is built on the
first invocation and reused while the execution environment lives. On Lambda, set
``HOSTPMS_IDEMPOTENCY_TABLE`` (DynamoDB), ``HOSTPMS_RAW_URL=s3://...`` and
``HOSTPMS_USE_SECRETS_MANAGER=true``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from mangum import Mangum
from starlette.types import ASGIApp

from hostpms_pipeline.webhooks.server import build_app


def make_handler(app: ASGIApp) -> Mangum:
    # No lifespan: the app holds no resources that need starting or stopping.
    return Mangum(app, lifespan="off")


@cache
def _default_handler() -> Mangum:
    return make_handler(build_app())


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _default_handler()(event, context)
