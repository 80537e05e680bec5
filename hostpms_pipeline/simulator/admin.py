"""Control endpoints under ``/_simulator``: faults, tokens, clock, events, state.

Unauthenticated on purpose: the simulator listens on loopback, and a test or a
pipeline in another process must be able to steer it.
"""

from __future__ import annotations

import orjson
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.simulator.faults import FAULT_ADAPTER
from hostpms_pipeline.simulator.service import HostPMSSimulator
from hostpms_pipeline.simulator.webhooks import UnknownEvent

ADMIN_PREFIX = "/_simulator"


class AdvanceRequest(BaseModel):
    seconds: float = Field(ge=0)


class EmitRequest(BaseModel):
    property_id: str
    type: str
    record_id: str | None = None


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def routes(sim: HostPMSSimulator) -> list[Route]:
    async def state(request: Request) -> Response:
        return _json(sim.state())

    async def add_fault(request: Request) -> Response:
        try:
            fault = FAULT_ADAPTER.validate_json(await request.body())
        except ValidationError as invalid:
            return _json(
                {"error": "invalid_request", "detail": invalid.errors(include_url=False)}, 400
            )
        sim.faults.add(fault)
        return _json({"armed": fault.model_dump()}, 201)

    async def clear_faults(request: Request) -> Response:
        sim.faults.clear()
        return _json({"cleared": True})

    async def revoke_tokens(request: Request) -> Response:
        return _json({"revoked": sim.revoke_tokens()})

    async def clock(request: Request) -> Response:
        return _json({"now": contract.format_timestamp(sim.clock.now())})

    async def advance(request: Request) -> Response:
        try:
            body = AdvanceRequest.model_validate_json(await request.body())
        except ValidationError:
            return _json({"error": "invalid_request"}, 400)
        return _json({"now": contract.format_timestamp(sim.advance_clock(body.seconds))})

    async def emit(request: Request) -> Response:
        try:
            body = EmitRequest.model_validate_json(await request.body())
            event_id = sim.emit_event(body.property_id, body.type, body.record_id)
        except (ValidationError, UnknownEvent):
            return _json({"error": "invalid_request"}, 400)
        except (KeyError, IndexError):
            return _json({"error": "not_found"}, 404)
        return _json({"event_id": event_id}, 202)

    return [
        Route("/state", state, methods=["GET"]),
        Route("/faults", add_fault, methods=["POST"]),
        Route("/faults", clear_faults, methods=["DELETE"]),
        Route("/revoke-tokens", revoke_tokens, methods=["POST"]),
        Route("/clock", clock, methods=["GET"]),
        Route("/clock/advance", advance, methods=["POST"]),
        Route("/events", emit, methods=["POST"]),
    ]
