"""HTTP client for the HostPMS API: OAuth, cursor pagination, the error table.

What the API looks like (paths, parameters, headers, envelopes) comes from
``contract``; this module decides how to behave towards it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from pydantic import ValidationError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    wait_random_exponential,
)

from hostpms_pipeline.hostpms import contract

if TYPE_CHECKING:
    from hostpms_pipeline.hostpms.rate_limiter import RequestLimiter

log = logging.getLogger(__name__)

TOKEN_REFRESH_MARGIN_SECONDS = 60  # refresh this long before the token expires
SERVER_ERROR_RETRIES = 3
MAX_RATE_LIMIT_WAITS = 5
# Marks a request to a rate-limited endpoint (httpx request extension): its value is
# the endpoint, so every request actually sent, the retry after a 401 included, is paced.
ENDPOINT_EXTENSION = "hostpms_endpoint"


class HostPMSError(Exception):
    """Any failure talking to HostPMS; messages never carry secrets or guest data."""


class InvalidCredentials(HostPMSError):
    """401 invalid_client: wrong client id or secret. Never retried."""


class UnknownProperty(HostPMSError):
    """404: HostPMS does not know this property (or these credentials cannot see it)."""


class ServiceUnavailable(HostPMSError):
    """503: stop this sync without advancing its checkpoint; it resumes later."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class MalformedResponse(HostPMSError):
    """A 200 whose body is not a page of the contract's shape: never landed."""


class TransientServerError(HostPMSError):
    """500, a timeout or a dropped connection: retried with backoff and jitter."""


class ApiUnreachable(HostPMSError):
    """The API's host refused the connection or does not exist: a configuration error,
    never retried (``reason`` completes "the HostPMS API at host:port ...")."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class RateLimited(HostPMSError):
    def __init__(self, retry_after: float | None):
        super().__init__("HostPMS rate limit exceeded")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str = field(repr=False)


class OAuthClientCredentials(httpx.Auth):
    """Bearer auth with a cached client-credentials token.

    The token is refreshed shortly before it expires and once more when a request
    is answered ``401 invalid_token`` (expired early or revoked).
    """

    requires_response_body = True

    def __init__(self, token_url: str, credentials: Credentials):
        self._token_url = token_url
        self._credentials = credentials
        self._token: str | None = None
        self._expires_at = 0.0
        self.tokens_fetched = 0
        self.tokens_refused = 0  # how often HostPMS answered 401 invalid_token

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        if self._needs_refresh():
            yield from self._refresh()
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401 and _error_code(response) == contract.ERROR_INVALID_TOKEN:
            self.tokens_refused += 1
            self._token = None
            yield from self._refresh()
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request

    def fetch_token(self, http: httpx.Client) -> None:
        """One token request now, outside any other request (``HostPMSClient.check_credentials``)."""
        flow = self._refresh()
        request = next(flow)
        response = http.send(request, auth=None)  # the token request itself carries no token
        try:
            flow.send(response)
        except StopIteration:
            pass

    def _needs_refresh(self) -> bool:
        return self._token is None or time.monotonic() >= self._expires_at

    def _refresh(self) -> Iterator[httpx.Request]:
        response = yield httpx.Request(
            "POST",
            self._token_url,
            json={
                "grant_type": "client_credentials",
                "client_id": self._credentials.client_id,
                "client_secret": self._credentials.client_secret,
            },
        )
        if response.status_code == 401:
            raise InvalidCredentials(
                f"HostPMS refused client id {self._credentials.client_id!r}: invalid_client"
            )
        if response.status_code in (404, 405):  # a wrong base URL (no /v3, another service)
            raise ApiUnreachable(
                f"token endpoint answered {response.status_code}",
                f"has no HostPMS token endpoint at {response.request.url.path} "
                f"(answered {response.status_code})",
            )
        if response.status_code != 200:
            raise TransientServerError(f"token endpoint answered {response.status_code}")
        token = contract.TokenResponse.model_validate_json(response.content)
        self._token = token.access_token
        margin = min(TOKEN_REFRESH_MARGIN_SECONDS, token.expires_in / 10)
        self._expires_at = time.monotonic() + token.expires_in - margin
        self.tokens_fetched += 1


def _error_code(response: httpx.Response) -> str | None:
    try:
        return response.json().get("error")
    except (ValueError, AttributeError):
        return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get(contract.HEADER_RETRY_AFTER)
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


@dataclass
class RateLimitWindow:
    """What the last response said about this endpoint's budget."""

    remaining: int | None = None
    reset_at: float | None = None  # unix seconds

    def update(self, response: httpx.Response) -> None:
        remaining = response.headers.get(contract.HEADER_RATE_REMAINING)
        reset = response.headers.get(contract.HEADER_RATE_RESET)
        if remaining is not None and reset is not None:
            self.remaining, self.reset_at = int(remaining), float(reset)

    def wait_if_exhausted(self) -> None:
        if self.remaining == 0 and self.reset_at is not None:
            delay = self.reset_at - time.time()
            if delay > 0:
                log.info("HostPMS budget for this endpoint is spent; waiting %.1fs", delay)
                time.sleep(delay)
            self.remaining = None


@dataclass(frozen=True)
class FetchedPage:
    property_id: str
    collection: contract.Collection
    request_params: dict[str, Any]
    data: bytes  # the records' JSON array, exactly as HostPMS sent it
    record_count: int
    next_cursor: str | None
    received_at: datetime
    max_updated_at: datetime | None
    updated_at_range: tuple[str, str] | None  # (min, max) of the records' updated_at, as text

    @cached_property
    def records(self) -> list[dict[str, Any]]:
        """The records decoded (only where a record must be looked into: redaction, tests)."""
        return orjson.loads(self.data)

    def with_records(self, records: list[Any]) -> FetchedPage:
        """The same page holding ``records`` instead (a redacted copy)."""
        stamps = [r["updated_at"] for r in records if isinstance(r, dict) and "updated_at" in r]
        page = dataclasses.replace(
            self,
            data=orjson.dumps(records),
            record_count=len(records),
            updated_at_range=(min(stamps), max(stamps)) if stamps else None,
        )
        page.__dict__["records"] = records
        return page


class HostPMSClient:
    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        timeout: float = 30.0,
        page_limit: int = contract.DEFAULT_PAGE_LIMIT,
        initial_backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        limiter: RequestLimiter | None = None,
    ):
        """``limiter`` paces every collection request (see ``rate_limiter``); without one
        the client relies on HostPMS's rate-limit headers and 429s alone."""
        self.base_url = base_url.rstrip("/")
        self.page_limit = page_limit
        self.client_id = credentials.client_id
        self.auth = OAuthClientCredentials(self.base_url + contract.TOKEN_PATH, credentials)
        self._limiter = limiter
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=self.auth,
            timeout=timeout,
            event_hooks={"request": [self._pace]},
        )
        self._windows: dict[str, RateLimitWindow] = {}
        self._initial_backoff = initial_backoff_seconds
        self._max_backoff = max_backoff_seconds

    def close(self) -> None:
        self._http.close()
        close_limiter = getattr(self._limiter, "close", None)
        if close_limiter is not None:
            close_limiter()

    def __enter__(self) -> HostPMSClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _pace(self, request: httpx.Request) -> None:
        endpoint = request.extensions.get(ENDPOINT_EXTENSION)
        if endpoint is not None and self._limiter is not None:
            self._limiter.acquire(self.client_id, endpoint)

    def check_credentials(self) -> None:
        """One token request: raises ``InvalidCredentials`` naming ``invalid_client`` when
        HostPMS refuses the client id and secret."""
        with _transport_errors(contract.TOKEN_PATH):
            self.auth.fetch_token(self._http)

    def subscribe(
        self, property_id: str, url: str, events: tuple[str, ...] = contract.WEBHOOK_EVENTS
    ) -> contract.Subscription:
        """Subscribe ``url`` to the property's webhook events; HostPMS returns the signing secret."""
        body = {"property_id": property_id, "url": url, "events": list(events)}
        response = self._post(contract.SUBSCRIBE_PATH, body)
        if response.status_code not in (200, 201):
            _raise_for_status(contract.SUBSCRIBE_PATH, response)
        try:
            return contract.Subscription.model_validate_json(response.content)
        except ValidationError:
            raise MalformedResponse(
                f"{contract.SUBSCRIBE_PATH}: no subscription in the answer"
            ) from None

    def unsubscribe(self, subscription_id: str) -> bool:
        """Remove a subscription; False if HostPMS no longer knows it (already removed)."""
        response = self._post(contract.UNSUBSCRIBE_PATH, {"subscription_id": subscription_id})
        if response.status_code == 404:
            return False
        _raise_for_status(contract.UNSUBSCRIBE_PATH, response)
        return True

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        with _transport_errors(path):
            return self._http.post(path, json=body)

    def iter_pages(
        self,
        property_id: str,
        collection: contract.Collection,
        *,
        updated_since: datetime | None = None,
        updated_before: datetime | None = None,
        cursor: str | None = None,
    ) -> Iterator[FetchedPage]:
        """Pages in the contract's (updated_at, id) order, starting at ``cursor`` if given."""
        while True:
            params: dict[str, Any] = {contract.PARAM_LIMIT: self.page_limit}
            if updated_since is not None:
                params[contract.PARAM_UPDATED_SINCE] = contract.format_timestamp(updated_since)
            if updated_before is not None:
                params[contract.PARAM_UPDATED_BEFORE] = contract.format_timestamp(updated_before)
            if cursor is not None:
                params[contract.PARAM_CURSOR] = cursor
            page = self.fetch_page(property_id, collection, params)
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def fetch_page(
        self, property_id: str, collection: contract.Collection, params: dict[str, Any]
    ) -> FetchedPage:
        path = contract.collection_path(property_id, collection)
        response = self._get_with_retries(path, params, endpoint=collection)
        received_at = datetime.now().astimezone()
        try:
            content = contract.read_page(response.content)
            newest = contract.newest_timestamp(content.updated_at)
        except ValueError as error:
            raise MalformedResponse(
                f"{path}: response is not a page of the contract's shape ({type(error).__name__})"
            ) from None
        stamps = content.updated_at
        return FetchedPage(
            property_id=property_id,
            collection=collection,
            request_params=params,
            data=content.data,
            record_count=len(stamps),
            next_cursor=content.next_cursor,
            received_at=received_at,
            max_updated_at=newest,
            updated_at_range=(min(stamps), max(stamps)) if stamps else None,
        )

    def _get_with_retries(self, path: str, params: dict[str, Any], endpoint: str) -> httpx.Response:
        window = self._windows.setdefault(endpoint, RateLimitWindow())
        retrying = Retrying(
            retry=retry_if_exception_type((TransientServerError, RateLimited)),
            stop=_stop_for(SERVER_ERROR_RETRIES, MAX_RATE_LIMIT_WAITS),
            wait=_wait_for(self._initial_backoff, self._max_backoff),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                window.wait_if_exhausted()
                response = self._send(path, params, endpoint)
                window.update(response)  # error answers carry the budget too
                _raise_for_status(path, response)
        return response

    def _send(self, path: str, params: dict[str, Any], endpoint: str) -> httpx.Response:
        with _transport_errors(path):
            return self._http.get(path, params=params, extensions={ENDPOINT_EXTENSION: endpoint})


@contextmanager
def _transport_errors(path: str) -> Iterator[None]:
    """A request that got no answer, as the contract's errors: a host that cannot be reached
    is a configuration error (never retried), a timeout or dropped connection transient."""
    try:
        yield
    except httpx.ConnectError as error:
        reason = _unreachable_reason(error)
        raise ApiUnreachable(f"{path}: HostPMS {reason}", reason) from None
    except (httpx.TimeoutException, httpx.TransportError) as error:
        raise TransientServerError(f"{path}: {type(error).__name__}") from None


def _unreachable_reason(error: httpx.ConnectError) -> str:
    text = str(error).lower()
    if "refused" in text:
        return "refused the connection"
    if "name or service not known" in text or "name resolution" in text or "nodename" in text:
        return "is an unknown host"
    return "cannot be reached"


# The contract's error table: the exception each non-200 answer becomes.
_ERROR_FOR_STATUS: dict[int, Callable[[str, httpx.Response], HostPMSError]] = {
    401: lambda path, _: InvalidCredentials(f"{path}: token refused after one refresh"),
    404: lambda path, _: UnknownProperty(f"{path}: HostPMS does not know this property"),
    429: lambda _, response: RateLimited(_retry_after(response)),
    500: lambda path, _: TransientServerError(f"{path}: HostPMS answered 500"),
    503: lambda path, response: ServiceUnavailable(
        f"{path}: HostPMS is unavailable", _retry_after(response)
    ),
}


def _raise_for_status(path: str, response: httpx.Response) -> None:
    status = response.status_code
    if status == 200:
        return
    if status in _ERROR_FOR_STATUS:
        raise _ERROR_FOR_STATUS[status](path, response)
    if status == 400:  # the answer's error code and detail name what was wrong
        detail = _error_code(response) or "invalid_request"
        raise HostPMSError(f"{path}: HostPMS refused the request ({detail})")
    if status > 500:  # 502, 504...: like a 500
        raise TransientServerError(f"{path}: HostPMS answered {status}")
    raise HostPMSError(f"{path}: unexpected status {status}")


def _stop_for(server_retries: int, rate_limit_waits: int):
    """Up to 3 retries for server errors; rate-limit waits are counted on their own."""

    def stop(state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimited):
            return _count(state, RateLimited) > rate_limit_waits
        return _count(state, TransientServerError) > server_retries

    return stop


def _count(state: RetryCallState, kind: type[BaseException]) -> int:
    counts = state.retry_object.statistics.setdefault("counts", {})
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, kind):
        counts[kind.__name__] = counts.get(kind.__name__, 0) + 1
    return counts.get(kind.__name__, 0)


def _wait_for(initial_backoff: float, max_backoff: float):
    # Full jitter: uniform in [0, initial × 2^retry], capped; clients retrying at once spread out.
    backoff = wait_random_exponential(multiplier=initial_backoff, max=max_backoff)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return error.retry_after
        return backoff(state)

    return wait
