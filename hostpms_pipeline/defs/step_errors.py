"""How an asset step fails: at once for a configuration error, after bounded retries otherwise.

Every asset body runs inside :func:`fail_or_retry`. A configuration error becomes
``Failure(allow_retries=False)`` whose description is the one line of
:mod:`hostpms_pipeline.errors`; a transient one becomes ``RetryRequested`` after one
WARNING line (what failed, which property, when the next try comes), as long as the
run's waits stay within ``HOSTPMS_MAX_RETRY_WAIT_SECONDS``; then a ``Failure`` too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from dagster import (
    AssetExecutionContext,
    Backoff,
    Failure,
    MetadataValue,
    RetryPolicy,
    RetryRequested,
)

from hostpms_pipeline import errors, stopping
from hostpms_pipeline.settings import get_settings
from hostpms_pipeline.warehouse import property_lock

# Metadata of the Failure: the cause's line, for the CLI's summary and alerts.
CAUSE_METADATA = "hostpms/cause"

# Seconds of retry waits this process has asked for: `hostpms sync` runs every property
# in-process, so its waits add up to at most the budget however many properties fail.
_waited_in_process = [0.0]


def sync_retry_policy() -> RetryPolicy:
    """Dagster's policy for what escapes :func:`fail_or_retry`: the same bounded schedule."""
    delays = errors.retry_delays(get_settings().max_retry_wait_seconds)
    if not delays:  # HOSTPMS_MAX_RETRY_WAIT_SECONDS=0: never retry (a backoff needs a delay)
        return RetryPolicy(max_retries=0)
    return RetryPolicy(
        max_retries=len(delays),
        delay=delays[0] if delays else None,
        backoff=Backoff.EXPONENTIAL,
    )


@contextmanager
def fail_or_retry(
    context: AssetExecutionContext, property_id: str, *, retryable: bool = True
) -> Iterator[None]:
    """Run an asset's body; turn what it raises into a one-line Failure or a logged retry."""
    try:
        stopping.check()  # a stop asked before this step: it does not start
        yield
    except (Failure, RetryRequested):
        raise
    except stopping.StopRequested:
        raise Failure(
            description="stopped: the sync was asked to stop", allow_retries=False
        ) from None
    except Exception as error:
        problem = errors.classify_for(error, get_settings())
        budget = get_settings().max_retry_wait_seconds
        decision = (
            errors.next_retry(problem, context.retry_number, budget)
            if retryable
            else errors.RetryDecision(None, 0)
        )
        if decision.wait is not None and (_waited_in_process[0] + decision.wait > budget + 1e-6):
            decision = errors.RetryDecision(None, decision.retries)  # the sync's budget is spent
        if decision.wait is None:
            line = problem.message
            if problem.transient and retryable and (context.retry_number or _waited_in_process[0]):
                line += (
                    f" (still failing after {_waited_in_process[0]:.0f} s of retry waits; "
                    "HOSTPMS_MAX_RETRY_WAIT_SECONDS bounds the wait)"
                )
            raise Failure(
                description=line,
                metadata={CAUSE_METADATA: MetadataValue.text(line)},
                allow_retries=False,
            ) from error
        _waited_in_process[0] += decision.wait
        next_try = datetime.now().astimezone() + timedelta(seconds=decision.wait)
        context.log.warning(
            f"{property_id}: {problem.message}; retry {context.retry_number + 1} of "
            f"{decision.retries} at {next_try:%H:%M:%S} (in {decision.wait:.0f} s)"
        )
        raise RetryRequested(max_retries=decision.retries, seconds_to_wait=decision.wait) from error


@contextmanager
def one_sync_per_property(connect: property_lock.Connect, property_id: str) -> Iterator[None]:
    """Poll only while holding the property's lock; else fail in one line after the wait."""
    wait = get_settings().property_lock_wait_seconds
    with property_lock.hold(connect, property_id, wait_seconds=wait) as held:
        if not held:
            raise Failure(
                description=(
                    f"{property_lock.busy_line(property_id)} (waited {wait:.0f} s; "
                    "HOSTPMS_PROPERTY_LOCK_WAIT_SECONDS)"
                ),
                allow_retries=False,
            )
        yield
