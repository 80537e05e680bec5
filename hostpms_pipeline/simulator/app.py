"""The ASGI app: the HostPMS v3 API under ``/v3`` and the control API under ``/_simulator``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.simulator import admin
from hostpms_pipeline.simulator.faults import (
    DropConnection,
    MalformedBody,
    SlowResponse,
    StatusFault,
)
from hostpms_pipeline.simulator.ratelimit import Verdict
from hostpms_pipeline.simulator.service import HostPMSSimulator
from hostpms_pipeline.simulator.store import InvalidCursor, PageRequest, decode_cursor
from hostpms_pipeline.simulator.webhooks import UnknownEvent

API_PREFIX = "/v3"
DROP_CONNECTION_SCOPE_KEY = "hostpms_simulator.drop_connection"
MALFORMED_BODY = b'{"data": [{"reservation_id": "RSV-1", "updated_at": '


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def error(status: int, code: str, detail: str | None = None, **headers: str) -> Response:
    body = {"error": code} if detail is None else {"error": code, "detail": detail}
    return json_response(body, status, headers or None)


class TokenRequest(BaseModel):
    grant_type: str
    client_id: str
    client_secret: str


class SubscribeRequest(BaseModel):
    property_id: str
    url: str
    events: list[str]


class UnsubscribeRequest(BaseModel):
    subscription_id: str


class Refused(Exception):
    """A request turned away before any fault or data: carries the answer."""

    def __init__(self, response: Response):
        super().__init__(response.status_code)
        self.response = response


class BadRequest(Exception):
    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class Api:
    def __init__(self, simulator: HostPMSSimulator):
        self.sim = simulator

    def routes(self) -> list[Route]:
        return [
            Route(contract.TOKEN_PATH, self.token, methods=["POST"]),
            Route(
                contract.collection_path("{property_id}", "{collection}"),  # type: ignore[arg-type]
                self.collection,
                methods=["GET"],
            ),
            Route(contract.SUBSCRIBE_PATH, self.subscribe, methods=["POST"]),
            Route(contract.UNSUBSCRIBE_PATH, self.unsubscribe, methods=["POST"]),
        ]

    # --- OAuth -----------------------------------------------------------------
    async def token(self, request: Request) -> Response:
        try:
            form = await _json_or_form(request)
            credentials = TokenRequest.model_validate(form)
        except (ValueError, ValidationError):
            return error(400, "invalid_request")
        if credentials.grant_type != "client_credentials":
            return error(400, "unsupported_grant_type")
        token = self.sim.tokens.issue(credentials.client_id, credentials.client_secret)
        if token is None:
            return error(401, contract.ERROR_INVALID_CLIENT)
        return json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": int(self.sim.tokens.lifetime),
            }
        )

    def _client_of(self, request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return self.sim.tokens.client_for(token) if scheme.lower() == "bearer" else None

    # --- collections -------------------------------------------------------------
    async def collection(self, request: Request) -> Response:
        property_id = request.path_params["property_id"]
        collection = request.path_params["collection"]
        self.sim.property_requests[property_id] += 1
        try:
            verdict = self._admit(request, property_id, collection)
        except Refused as refused:
            return refused.response
        faulted = await self._apply_fault(request, collection, verdict)
        if faulted is not None:
            return faulted
        try:
            page_request = _page_request(request)
        except BadRequest as bad:
            return error(400, "invalid_request", bad.detail, **verdict.headers())
        return self._serve_page(property_id, collection, page_request, verdict)

    def _admit(self, request: Request, property_id: str, collection: str) -> Verdict:
        """The rate-limit verdict of an admitted request; raises ``Refused`` otherwise."""
        if collection not in contract.COLLECTIONS:
            raise Refused(error(404, "not_found"))
        client_id = self._client_of(request)
        if client_id is None:
            raise Refused(error(401, contract.ERROR_INVALID_TOKEN))
        verdict = self.sim.rate_limiter.check(client_id, collection)
        if not verdict.allowed:
            retry_after = {contract.HEADER_RETRY_AFTER: str(verdict.retry_after)}
            raise Refused(error(429, "rate_limited", **verdict.headers(), **retry_after))
        if property_id not in self.sim.dataset.property_ids:
            raise Refused(error(404, "unknown_property", **verdict.headers()))
        return verdict

    def _serve_page(
        self,
        property_id: str,
        collection: contract.Collection,
        request: PageRequest,
        verdict: Verdict,
    ) -> Response:
        page = self.sim.dataset.page(property_id, collection, request, self.sim.clock.now())
        body = orjson.dumps(
            {"data": [v.record for v in page.versions], "next_cursor": page.next_cursor}
        )
        served = [version.key for version in page.versions]
        to_change = self.sim.faults.records_to_change(property_id, collection, served)
        if to_change:
            self.sim.change_records(property_id, collection, to_change)
        return Response(body, 200, verdict.headers(), media_type="application/json")

    async def _apply_fault(
        self, request: Request, collection: str, verdict: Verdict
    ) -> Response | None:
        fault = self.sim.faults.take(collection)
        match fault:
            case StatusFault(status=status, retry_after=retry_after):
                extra = (
                    {} if retry_after is None else {contract.HEADER_RETRY_AFTER: str(retry_after)}
                )
                return error(status, "simulated_fault", **verdict.headers(), **extra)
            case DropConnection():
                await request.scope[DROP_CONNECTION_SCOPE_KEY]()
                return Response(status_code=500)  # never reaches the client
            case MalformedBody():
                return Response(
                    MALFORMED_BODY, 200, verdict.headers(), media_type="application/json"
                )
            case SlowResponse(delay_seconds=delay):
                await asyncio.sleep(delay)
        return None

    # --- webhooks ----------------------------------------------------------------
    async def subscribe(self, request: Request) -> Response:
        if self._client_of(request) is None:
            return error(401, contract.ERROR_INVALID_TOKEN)
        try:
            body = SubscribeRequest.model_validate_json(await request.body())
        except ValidationError:
            return error(400, "invalid_request")
        if body.property_id not in self.sim.dataset.property_ids:
            return error(404, "unknown_property")
        try:
            subscription = self.sim.webhooks.subscribe(body.property_id, body.url, body.events)
        except UnknownEvent as unknown:
            return error(400, "invalid_request", str(unknown))
        return json_response(
            {"subscription_id": subscription.subscription_id, "secret": subscription.secret}, 201
        )

    async def unsubscribe(self, request: Request) -> Response:
        if self._client_of(request) is None:
            return error(401, contract.ERROR_INVALID_TOKEN)
        try:
            body = UnsubscribeRequest.model_validate_json(await request.body())
        except ValidationError:
            return error(400, "invalid_request")
        if not self.sim.webhooks.unsubscribe(body.subscription_id):
            return error(404, "unknown_subscription")
        return json_response({"subscription_id": body.subscription_id, "status": "unsubscribed"})


async def _json_or_form(request: Request) -> dict[str, Any]:
    body = await request.body()
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(body.decode()))  # Starlette's form parser needs another package
    parsed = orjson.loads(body)
    if not isinstance(parsed, dict):
        raise ValueError("token request body must be an object")
    return parsed


def _page_request(request: Request) -> PageRequest:
    params = request.query_params
    return PageRequest(
        updated_since=_timestamp_param(params, contract.PARAM_UPDATED_SINCE),
        updated_before=_timestamp_param(params, contract.PARAM_UPDATED_BEFORE),
        limit=_limit_param(params.get(contract.PARAM_LIMIT)),
        after=_cursor_param(params.get(contract.PARAM_CURSOR)),
    )


def _timestamp_param(params: QueryParams, name: str) -> datetime | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        raise BadRequest(f"{name} must carry a time zone")
    return moment.astimezone(UTC)


def _limit_param(value: str | None) -> int:
    if value is None:
        return contract.DEFAULT_PAGE_LIMIT
    if not value.isdigit() or not contract.MIN_PAGE_LIMIT <= int(value) <= contract.MAX_PAGE_LIMIT:
        raise BadRequest(f"limit must be {contract.MIN_PAGE_LIMIT}..{contract.MAX_PAGE_LIMIT}")
    return int(value)


def _cursor_param(value: str | None) -> tuple[datetime, str] | None:
    if value is None:
        return None
    try:
        return decode_cursor(value)
    except InvalidCursor as invalid:
        raise BadRequest(str(invalid)) from None


class ConnectionDropper:
    """Outermost ASGI layer: lets a handler close its socket without any answer.

    uvicorn answers 500 to an app that fails before responding, so a dropped
    connection cannot be an exception; instead the handler closes the transport
    itself (uvicorn hands it to the app as ``send.__self__.transport``), and
    uvicorn, seeing the client gone, sends nothing more.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[DROP_CONNECTION_SCOPE_KEY] = lambda: _close_transport(send)
        await self.app(scope, receive, send)


async def _close_transport(send: Send) -> None:
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError("dropping connections needs the simulator served by uvicorn")
    transport.close()
    await asyncio.sleep(0.01)  # let uvicorn notice the disconnect before the app returns


def build_app(simulator: HostPMSSimulator) -> ASGIApp:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        worker = asyncio.create_task(simulator.webhooks.run())
        try:
            yield
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    starlette = Starlette(
        routes=[
            Mount(API_PREFIX, routes=Api(simulator).routes()),
            Mount(admin.ADMIN_PREFIX, routes=admin.routes(simulator)),
        ],
        lifespan=lifespan,
    )
    return ConnectionDropper(starlette)
