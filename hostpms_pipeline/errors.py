"""What went wrong, in one line that names the cause and the setting to check.

Two kinds of failure, told apart here for the assets, the CLI and the receiver:

- a **configuration** error will not heal by waiting (connection refused, authentication
  failed, unknown host, a setting out of range, a property HostPMS does not know): the
  sync fails at once;
- a **transient** error may (a dropped connection, a timeout, HostPMS's 503, a store
  that refused a write): the sync waits and tries again, for at most
  ``HOSTPMS_MAX_RETRY_WAIT_SECONDS`` in all, one log line per wait, then fails with
  the same one line.

Lines never hold a secret: a database URL may carry a password, so only its host
and port are named; no message from a body (guest data) is repeated.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import psycopg
from pydantic import ValidationError

from hostpms_pipeline.hostpms.client import (
    ApiUnreachable,
    HostPMSError,
    InvalidCredentials,
    MalformedResponse,
    ServiceUnavailable,
    UnknownProperty,
)
from hostpms_pipeline.hostpms.credentials import MissingSecret
from hostpms_pipeline.hostpms.secret_store import UnsafeSecretsFile
from hostpms_pipeline.lake.storage import StorageError
from hostpms_pipeline.property_ids import InvalidPropertyId
from hostpms_pipeline.settings import Settings

# Retries: the first waits this long, each next one twice as long, all within the budget.
RETRY_BASE_DELAY_SECONDS = 60.0
MAX_RETRIES = 3

# psycopg's connection errors that no wait will cure, and the words a person needs.
_DATABASE_CONFIGURATION_ERRORS = (
    ("connection refused", "refused the connection"),
    ("password authentication failed", "refused the credentials"),
    ("authentication failed", "refused the credentials"),
    ("no password supplied", "asks for a password"),
    ("could not translate host name", "is an unknown host"),
    ("name or service not known", "is an unknown host"),
    ("no pg_hba.conf entry", "refused this client (pg_hba.conf)"),
    ("does not exist", "has no such database or role"),
    ("no such file or directory", "has no server on that socket"),
    ("network is unreachable", "is unreachable"),
    ("no route to host", "is unreachable"),
)


@dataclass(frozen=True)
class Problem:
    """One line for a person, and whether waiting may help."""

    message: str
    transient: bool
    retry_after: float | None = None  # what the other side asked for, if it did


class ConfigurationError(Exception):
    """Raised where a configuration problem is found outside an asset (the CLI's checks)."""


def database_location(url: str | None) -> str:
    """``host:port`` of a PostgreSQL URL (never its user or password); the embedded server."""
    if not url:
        return "the embedded PostgreSQL"
    try:
        parts = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "PostgreSQL (an unreadable HOSTPMS_DATABASE_URL)"
    host = str(parts.get("host") or "localhost")
    if host.startswith("/"):
        return f"PostgreSQL on socket {host}"
    return f"PostgreSQL at {host}:{parts.get('port') or 5432}"


def api_location(base_url: str | None) -> str:
    if not base_url:
        return "the embedded HostPMS simulator"
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"the HostPMS API at {parts.hostname}:{port}"


def settings_line(error: ValidationError) -> str:
    """pydantic's error as ``HOSTPMS_X: reason`` (the input value is left out: it may be a secret)."""
    parts = []
    for detail in error.errors():
        setting = "HOSTPMS_" + "_".join(str(loc) for loc in detail["loc"]).upper()
        reason = detail["msg"].removeprefix("Value error, ")
        parts.append(reason if reason.startswith(setting) else f"{setting}: {reason}")
    return "; ".join(parts) or "settings are invalid"


def classify(
    error: BaseException,
    *,
    database_url: str | None = None,
    api_base_url: str | None = None,
    stores: Mapping[str, tuple[str, str]] | None = None,
) -> Problem:
    """What ``error`` (or the first known error in its chain) means for a sync.

    ``stores`` maps a store's URL to its name and setting, to say which store failed.
    """
    for cause in _chain(error):
        problem = _classify_one(cause, database_url, api_base_url, stores or {})
        if problem is not None:
            return problem
    return Problem(f"unexpected error ({type(error).__name__})", transient=True)


def classify_for(error: BaseException, settings: Settings) -> Problem:
    """:func:`classify` with what ``settings`` point at (to name the part that failed)."""
    database_url = settings.database_url.get_secret_value() if settings.database_url else None
    stores = {
        settings.resolved_raw_url: ("the raw store", "HOSTPMS_RAW_URL"),
        settings.resolved_processed_url: ("the processed store", "HOSTPMS_PROCESSED_URL"),
    }
    return classify(
        error, database_url=database_url, api_base_url=settings.api_base_url, stores=stores
    )


def _chain(error: BaseException):
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _classify_one(  # noqa: C901 - one table of cases, read top to bottom
    error: BaseException,
    database_url: str | None,
    api_base_url: str | None,
    stores: Mapping[str, tuple[str, str]],
) -> Problem | None:
    if isinstance(error, ValidationError) and error.title == "Settings":
        return Problem(settings_line(error), transient=False)
    if isinstance(error, InvalidPropertyId | ConfigurationError | UnsafeSecretsFile):
        return Problem(str(error), transient=False)
    if isinstance(error, InvalidCredentials):
        return Problem(
            "HostPMS refused the client credentials; check HOSTPMS_CLIENT_ID and "
            "HOSTPMS_CLIENT_SECRET (or the property's secret in Secrets Manager)",
            transient=False,
        )
    if isinstance(error, UnknownProperty):
        return Problem(
            "HostPMS does not know this property; check HOSTPMS_PROPERTY_IDS", transient=False
        )
    if isinstance(error, MissingSecret):
        return Problem(f"{error}; check HOSTPMS_USE_SECRETS_MANAGER", transient=False)
    if isinstance(error, ApiUnreachable):
        return Problem(
            f"{api_location(api_base_url)} {error.reason}; check HOSTPMS_API_BASE_URL",
            transient=False,
        )
    if isinstance(error, ServiceUnavailable):
        return Problem(
            "HostPMS is unavailable (503)", transient=True, retry_after=error.retry_after
        )
    if isinstance(error, MalformedResponse):
        return Problem(
            "HostPMS answered with something that is not a page; check HOSTPMS_API_BASE_URL",
            transient=True,
        )
    if isinstance(error, HostPMSError):
        return Problem(f"HostPMS kept failing ({type(error).__name__})", transient=True)
    if isinstance(error, httpx.ConnectError):
        return Problem(
            f"{api_location(api_base_url)} cannot be reached; check HOSTPMS_API_BASE_URL",
            transient=False,
        )
    if isinstance(error, httpx.TimeoutException):
        return Problem(f"{api_location(api_base_url)} timed out", transient=True)
    if isinstance(error, psycopg.OperationalError):
        return _database_problem(error, database_url)
    if isinstance(error, StorageError):
        return _storage_problem(error, stores)
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return Problem("the disk is full (No space left on device)", transient=True)
    return None


def _database_problem(error: psycopg.OperationalError, database_url: str | None) -> Problem:
    where = database_location(database_url)
    text = str(error).lower()
    connecting = "connection failed" in text or "connection to server" in text
    for needle, meaning in _DATABASE_CONFIGURATION_ERRORS:
        if needle in text and (connecting or needle != "does not exist"):
            return Problem(f"{where} {meaning}; check HOSTPMS_DATABASE_URL", transient=False)
    if "timeout expired" in text:
        return Problem(
            f"{where} did not answer in time; check HOSTPMS_DATABASE_URL", transient=True
        )
    return Problem(f"{where} closed the connection; check HOSTPMS_DATABASE_URL", transient=True)


def _storage_problem(error: StorageError, stores: Mapping[str, tuple[str, str]]) -> Problem:
    os_error = next((e for e in _chain(error) if isinstance(e, OSError)), None)
    reason = (os_error.strerror if os_error is not None and os_error.strerror else None) or (
        "refused the operation"
    )
    text = str(error)
    for url, (name, setting) in sorted(stores.items(), key=lambda item: -len(item[0])):
        if url and url in text:
            return Problem(f"{name} at {url} cannot be used ({reason}); check {setting}", True)
    return Problem(
        f"an object store cannot be used ({reason}); check HOSTPMS_RAW_URL and "
        "HOSTPMS_PROCESSED_URL",
        transient=True,
    )


# --- the retry budget ------------------------------------------------------------------------


def retry_delays(budget_seconds: float) -> list[float]:
    """The waits before each retry: 60 s doubling, at most 3, adding up to at most the budget."""
    delays: list[float] = []
    total = 0.0
    for attempt in range(MAX_RETRIES):
        delay = min(RETRY_BASE_DELAY_SECONDS * 2**attempt, budget_seconds - total)
        if delay <= 0:
            break
        delays.append(delay)
        total += delay
    return delays


@dataclass(frozen=True)
class RetryDecision:
    """``wait`` seconds before the next try, or ``None``: give up now."""

    wait: float | None
    retries: int  # how many retries the budget allows in all


def next_retry(problem: Problem, retry_number: int, budget_seconds: float) -> RetryDecision:
    """Whether the ``retry_number``-th failure (0 = first try) may be retried, and after how long.

    Waits follow :func:`retry_delays`, so a run's waits add up to at most the budget
    however its tries went. A ``Retry-After`` longer than the slot's wait gives up
    rather than overstay the budget (the next sync resumes from the checkpoint).
    """
    delays = retry_delays(budget_seconds)
    if not problem.transient or retry_number >= len(delays):
        return RetryDecision(None, len(delays))
    slot = delays[retry_number]
    if problem.retry_after is not None:
        if problem.retry_after > slot:
            return RetryDecision(None, len(delays))
        return RetryDecision(max(problem.retry_after, 0.0), len(delays))
    return RetryDecision(slot, len(delays))
