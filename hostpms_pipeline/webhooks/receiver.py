"""The receiver as an ASGI app (Starlette): served by uvicorn or, through Mangum, by Lambda.

- ``POST /webhooks/hostpms/{property_id}/{event}``: a HostPMS delivery.
- ``GET /health``: liveness for load balancers.
- ``GET /metrics``: Prometheus text.

Every answer is JSON; a refusal is ``{"error": "<outcome>", "detail": "..."}``.
"""

from __future__ import annotations

import time

import orjson
from anyio import CapacityLimiter, to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.webhooks import verification
from hostpms_pipeline.webhooks.acceptance import Acceptance, Delivery, WebhookAcceptor
from hostpms_pipeline.webhooks.access_log import RequestRecord
from hostpms_pipeline.webhooks.idempotency import POOL_MAX_SIZE
from hostpms_pipeline.webhooks.metrics import ReceiverMetrics
from hostpms_pipeline.webhooks.outcome_log import OutcomeLog
from hostpms_pipeline.webhooks.outcomes import HTTP_STATUS, RETRY_AFTER_SECONDS, Outcome, Refusal

WEBHOOK_PATH = "/webhooks/hostpms/{property_id}/{event}"
# Deliveries accepted at once per process, each on a thread (the stores are blocking
# clients): as many as the PostgreSQL pool has connections, so that no thread waits
# for one (anyio's default is 40 threads). Further deliveries wait on the event loop.
ACCEPT_THREADS = POOL_MAX_SIZE
_ROUTING_OUTCOMES = {404: Outcome.NOT_FOUND, 405: Outcome.METHOD_NOT_ALLOWED}


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def refusal_response(refusal: Refusal) -> Response:
    retry_after = RETRY_AFTER_SECONDS.get(refusal.outcome)
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return json_response(
        {"error": refusal.outcome.value, "detail": refusal.detail}, refusal.status, headers
    )


def acceptance_response(acceptance: Acceptance) -> Response:
    body = {"status": acceptance.outcome.value, "event_id": acceptance.event_id}
    return json_response(body, HTTP_STATUS[acceptance.outcome])


class WebhookEndpoint:
    def __init__(
        self, acceptor: WebhookAcceptor, metrics: ReceiverMetrics, outcomes: OutcomeLog | None
    ) -> None:
        self.acceptor = acceptor
        self.metrics = metrics
        self.outcomes = outcomes
        self.threads = CapacityLimiter(ACCEPT_THREADS)

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        record = RequestRecord()
        try:
            response = await self._receive(request, record)
        finally:
            record.latency_ms = (time.perf_counter() - started) * 1000
            self.metrics.observe(record.outcome, record.latency_ms / 1000)
            if self.outcomes is not None and record.property_id is not None:
                self.outcomes.add(record.property_id, record.outcome)
            record.emit()
        return response

    async def _receive(self, request: Request, record: RequestRecord) -> Response:
        property_id = request.path_params["property_id"]
        event_type = request.path_params["event"]
        try:
            verification.check_path(property_id, event_type)
            record.property_id, record.event_type = property_id, event_type
            verification.check_declared_length(request.headers.get("content-length"))
            body = await verification.read_body(request.stream())
            delivery = Delivery(
                property_id,
                event_type,
                request.headers.get(contract.HEADER_TIMESTAMP),
                request.headers.get(contract.HEADER_SIGNATURE),
                body,
            )
            # Secrets, PostgreSQL/DynamoDB and the raw store are blocking clients.
            acceptance = await to_thread.run_sync(
                self.acceptor.accept, delivery, limiter=self.threads
            )
        except Refusal as refusal:
            record.outcome, record.event_id = refusal.outcome, refusal.event_id
            return refusal_response(refusal)
        except ClientDisconnect:  # the sender went away mid-body: its problem, not a bug
            record.outcome = Outcome.CLIENT_DISCONNECTED
            return Response(status_code=HTTP_STATUS[Outcome.CLIENT_DISCONNECTED])
        record.outcome, record.event_id = acceptance.outcome, acceptance.event_id
        return acceptance_response(acceptance)


async def _health(request: Request) -> Response:
    return json_response({"status": "ok"})


async def _routing_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    outcome = _ROUTING_OUTCOMES.get(error.status_code)
    code = outcome.value if outcome else "http_error"
    return json_response({"error": code, "detail": error.detail}, error.status_code, error.headers)


def create_app(
    acceptor: WebhookAcceptor,
    metrics: ReceiverMetrics | None = None,
    outcomes: OutcomeLog | None = None,
) -> Starlette:
    """``outcomes``, when given, counts every answer per property in PostgreSQL (``hostpms status``)."""
    metrics = metrics or ReceiverMetrics()

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    routes = [
        Route(WEBHOOK_PATH, WebhookEndpoint(acceptor, metrics, outcomes).handle, methods=["POST"]),
        Route("/health", _health, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _routing_error})
