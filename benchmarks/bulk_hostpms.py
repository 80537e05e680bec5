"""A lean HostPMS API for whole-sync benchmarks: millions of records, never the bottleneck.

It follows the contract (``shared/hostpms-api-contract.md``): OAuth client credentials,
``GET /v3/properties/{property_id}/{collection}`` with ``updated_since`` (inclusive),
``updated_before`` (exclusive), ``limit`` 1..500 and an opaque keyset cursor, records in
ascending ``(updated_at, id)`` order, the ``X-RateLimit-*`` headers and, when a limit is
set, ``429`` with ``Retry-After`` past it (per client and endpoint, a window aligned to the
minute, as the simulator's). Records come from ``benchmarks/raw_generator`` (Portuguese
values for ``PT-*`` properties, Spanish for ``ES-*``), are generated once, kept sorted and
pre-serialized, and a page is the join of its records' bytes.

Control endpoints for the benchmark (not part of the contract):

    POST /_bench/change?fraction=0.1&span=3600   a random share of every collection gets a
                                                 newer state (updated_at in the last span s)
    POST /_bench/reset                           back to the generated records, counters zero
    GET  /_bench/stats                           requests, pages, records served, 429s sent,
                                                 first/last request time, the server's CPU

    python -m benchmarks.bulk_hostpms --rows 100000 --entities all --port 8600 [--rate-limit 100]
"""

from __future__ import annotations

import argparse
import base64
import bisect
import math
import resource
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs

import numpy as np
import orjson

from benchmarks.raw_generator import RECORDS, VOCABULARY

CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret"
COLLECTIONS = ("reservations", "guests", "rooms", "payments")
ID_FIELD = {
    "reservations": "reservation_id",
    "guests": "guest_id",
    "rooms": "room_id",
    "payments": "payment_id",
}
# Records per collection for N reservations when every entity is served.
ALL_ENTITIES_SHARE = {"reservations": 1.0, "guests": 0.5, "rooms": 0.05, "payments": 0.5}
MAX_LIMIT, DEFAULT_LIMIT = 500, 100
GENERATED_PER_CALL = 500
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # every updated_at to the second: text order = time order
JSON = [(b"content-type", b"application/json")]

Key = tuple[int, str]  # (updated_at in unix seconds, id): the keyset


def _seconds(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _timestamp(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime(TIMESTAMP_FORMAT)


@dataclass
class Timeline:
    """One collection of one property: keys sorted, each record's bytes beside its key."""

    keys: list[Key] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def copy(self) -> Timeline:
        return Timeline(list(self.keys), list(self.bodies))

    def page(
        self, since: int | None, before: int | None, after: Key | None, limit: int
    ) -> tuple[list[bytes], Key | None]:
        start = 0 if since is None else bisect.bisect_left(self.keys, (since, ""))
        if after is not None:
            start = max(start, bisect.bisect_right(self.keys, after))
        end = len(self.keys) if before is None else bisect.bisect_left(self.keys, (before, ""))
        stop = min(start + limit, end)
        served = self.bodies[start:stop] if start < stop else []
        return served, (self.keys[stop - 1] if stop < end else None)


def generate(
    rows: int, entities: str, property_ids: list[str], seed: int = 7
) -> dict[tuple[str, str], Timeline]:
    """``rows`` reservations (and, for ``all``, the other entities in proportion), split
    evenly over the properties, each record serialized once."""
    rng = np.random.default_rng(seed)
    shares = ALL_ENTITIES_SHARE if entities == "all" else {"reservations": 1.0}
    timelines: dict[tuple[str, str], Timeline] = {}
    for collection in COLLECTIONS:
        count = int(rows * shares.get(collection, 0.0))
        for index, property_id in enumerate(property_ids):
            timeline = Timeline()
            timelines[(property_id, collection)] = timeline
            share = count // len(property_ids) + (index < count % len(property_ids))
            first = index * 10_000_000 + 1  # ids unique across properties
            for start in range(0, share, GENERATED_PER_CALL):
                numbers = list(range(first + start, first + min(share, start + GENERATED_PER_CALL)))
                records = RECORDS[collection](rng, property_id, numbers, start)
                for number, record in zip(numbers, records, strict=True):
                    if collection == "rooms":  # the generator reuses a few rooms; here each is one
                        record["room_id"] = f"RM-{number:09d}"
                    key = (_seconds(record["updated_at"]), record[ID_FIELD[collection]])
                    timeline.keys.append(key)
                    timeline.bodies.append(orjson.dumps(record))
            order = sorted(range(len(timeline.keys)), key=timeline.keys.__getitem__)
            timeline.keys = [timeline.keys[i] for i in order]
            timeline.bodies = [timeline.bodies[i] for i in order]
    return timelines


def _change(record: dict, collection: str, property_id: str) -> None:
    """Another state of the record: the fields a real update touches."""
    if collection == "reservations":
        statuses = VOCABULARY[property_id.split("-", 1)[0]]["status"]
        status = record.get("status")
        record["status"] = (
            statuses[(statuses.index(status) + 1) % len(statuses)]
            if status in statuses
            else statuses[0]
        )
        record["pricing"]["total"] = round(record["pricing"]["total"] + 10.5, 2)
    elif collection == "guests":
        record["marketing_consent"] = not record["marketing_consent"]
    elif collection == "rooms":
        record["status"] = "sujo" if record["status"] != "sujo" else "limpo"
    else:
        record["status"] = "reembolsado" if record["status"] != "reembolsado" else "pago"


@dataclass
class Counters:
    requests: int = 0
    pages: int = 0
    records: int = 0
    rate_limited: int = 0
    tokens: int = 0
    first_request_at: float | None = None  # unix seconds, collection requests only
    last_request_at: float | None = None


class BulkHostPMS:
    """The ASGI app (plain ASGI: no framework between the socket and the page join)."""

    def __init__(self, timelines: dict[tuple[str, str], Timeline], rate_limit: int | None):
        self.generated = timelines
        self.timelines = {key: timeline.copy() for key, timeline in timelines.items()}
        self.property_ids = sorted({property_id for property_id, _ in timelines})
        self.rate_limit = rate_limit
        self.tokens: dict[str, str] = {}
        self.used: dict[tuple[str, str, int], int] = {}
        self.counters = Counters()
        self.changes = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, headers, payload = self.handle(
            scope["method"], scope["path"], scope["query_string"].decode(), scope, body
        )
        await send({"type": "http.response.start", "status": status, "headers": JSON + headers})
        await send({"type": "http.response.body", "body": payload})

    def handle(self, method: str, path: str, query: str, scope, body: bytes):
        params = {name: values[-1] for name, values in parse_qs(query).items()}
        if path == "/v3/oauth/token" and method == "POST":
            return self.token(body)
        if path.startswith("/v3/properties/") and method == "GET":
            return self.collection(path, params, scope)
        if path == "/_bench/stats":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            stats = {**vars(self.counters), "changes": self.changes}
            stats["cpu_seconds"] = usage.ru_utime + usage.ru_stime
            return 200, [], orjson.dumps(stats)
        if path == "/_bench/reset" and method == "POST":
            self.timelines = {key: timeline.copy() for key, timeline in self.generated.items()}
            self.counters, self.used, self.changes = Counters(), {}, 0
            return 200, [], b'{"reset":true}'
        if path == "/_bench/change" and method == "POST":
            changed = self.change(
                float(params.get("fraction", "0.1")), int(params.get("span", "3600"))
            )
            return 200, [], orjson.dumps({"changed": changed})
        return 404, [], b'{"error":"not_found"}'

    def token(self, body: bytes):
        try:
            form = orjson.loads(body)
        except orjson.JSONDecodeError:
            form = {name: values[-1] for name, values in parse_qs(body.decode()).items()}
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return 401, [], b'{"error":"invalid_client"}'
        token = secrets.token_urlsafe(24)
        self.tokens[token] = CLIENT_ID
        self.counters.tokens += 1
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
        return 200, [], orjson.dumps(answer)

    def collection(self, path: str, params: dict[str, str], scope):
        self.counters.requests += 1
        self.counters.last_request_at = time.time()
        if self.counters.first_request_at is None:
            self.counters.first_request_at = self.counters.last_request_at
        _, _, _, property_id, collection = path.split("/", 4)
        if collection not in COLLECTIONS:
            return 404, [], b'{"error":"not_found"}'
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode()
        client = self.tokens.get(authorization.removeprefix("Bearer ").strip())
        if client is None:
            return 401, [], b'{"error":"invalid_token"}'
        allowed, headers = self.admit(client, collection)
        if not allowed:
            self.counters.rate_limited += 1
            return 429, headers, b'{"error":"rate_limited"}'
        timeline = self.timelines.get((property_id, collection))
        if timeline is None:
            return 404, headers, b'{"error":"unknown_property"}'
        try:
            since = _seconds(params["updated_since"]) if "updated_since" in params else None
            before = _seconds(params["updated_before"]) if "updated_before" in params else None
            limit = int(params.get("limit", DEFAULT_LIMIT))
            after = _decode_cursor(params["cursor"]) if "cursor" in params else None
        except (ValueError, KeyError):
            return 400, headers, b'{"error":"invalid_request"}'
        if not 1 <= limit <= MAX_LIMIT:
            return 400, headers, b'{"error":"invalid_request","detail":"limit must be 1..500"}'
        served, last = timeline.page(since, before, after, limit)
        self.counters.pages += 1
        self.counters.records += len(served)
        cursor = b"null" if last is None else b'"' + _encode_cursor(last) + b'"'
        return 200, headers, b'{"data":[' + b",".join(served) + b'],"next_cursor":' + cursor + b"}"

    def admit(self, client: str, endpoint: str) -> tuple[bool, list[tuple[bytes, bytes]]]:
        limit = self.rate_limit or 1_000_000_000
        now = time.time()
        window = math.floor(now / 60) * 60
        bucket = (client, endpoint, window)
        used = self.used.get(bucket, 0)
        allowed = used < limit
        if allowed:
            used = self.used[bucket] = used + 1
        headers = [
            (b"x-ratelimit-limit", str(limit).encode()),
            (b"x-ratelimit-remaining", str(limit - used).encode()),
            (b"x-ratelimit-reset", str(window + 60).encode()),
        ]
        if not allowed:
            headers.append((b"retry-after", str(max(1, math.ceil(window + 60 - now))).encode()))
        return allowed, headers

    def change(self, fraction: float, span: int) -> int:
        """A newer state for ``fraction`` of each collection's records, spread over the last
        ``span`` seconds before now (whole seconds; ties are ordered by id)."""
        self.changes += 1
        rng = np.random.default_rng(1000 + self.changes)
        now = int(time.time())
        changed = 0
        for (property_id, collection), timeline in self.timelines.items():
            chosen = np.flatnonzero(rng.random(len(timeline.keys)) < fraction)
            if not len(chosen):
                continue
            moments = now - span + (np.arange(len(chosen)) * span) // len(chosen)
            keep = np.ones(len(timeline.keys), dtype=bool)
            keep[chosen] = False
            keys = [key for key, kept in zip(timeline.keys, keep.tolist(), strict=True) if kept]
            bodies = [
                body for body, kept in zip(timeline.bodies, keep.tolist(), strict=True) if kept
            ]
            for index, moment in zip(
                rng.permutation(chosen).tolist(), moments.tolist(), strict=True
            ):
                record = orjson.loads(timeline.bodies[index])
                _change(record, collection, property_id)
                record["updated_at"] = _timestamp(moment)
                keys.append((moment, record[ID_FIELD[collection]]))
                bodies.append(orjson.dumps(record))
            order = sorted(range(len(keys)), key=keys.__getitem__)
            timeline.keys = [keys[i] for i in order]
            timeline.bodies = [bodies[i] for i in order]
            changed += len(chosen)
        return changed


def _encode_cursor(key: Key) -> bytes:
    return base64.urlsafe_b64encode(f"{key[0]}:{key[1]}".encode()).rstrip(b"=")


def _decode_cursor(cursor: str) -> Key:
    seconds, _, record_id = (
        base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
    )
    return int(seconds), record_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--entities", choices=("reservations", "all"), default="reservations")
    parser.add_argument("--properties", default="PT-LIS-001")
    parser.add_argument("--port", type=int, default=8600)
    parser.add_argument("--rate-limit", type=int, default=None, help="requests per minute")
    args = parser.parse_args()
    import uvicorn

    began = time.perf_counter()
    timelines = generate(args.rows, args.entities, args.properties.split(","))
    print(f"bulk HostPMS: generated in {time.perf_counter() - began:.1f} s", flush=True)
    app = BulkHostPMS(timelines, args.rate_limit)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
