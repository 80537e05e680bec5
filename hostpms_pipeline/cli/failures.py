"""The per-property summary of a failed run: its cause in one line, never a Dagster class."""

from __future__ import annotations

import os

from hostpms_pipeline import errors

# Dagster's own wrappers around the error that actually happened.
_FRAMEWORK_PREFIXES = ("Dagster", "RetryRequested", "Failure")


def run_failure_line(result) -> str:
    """``FAILED: <cause>; check <setting>`` for a failed ``execute_in_process`` result."""
    from hostpms_pipeline.cli import signals

    if signals.received():
        return (
            f"INTERRUPTED by {signals.name()} (checkpoints stay where the last landed page "
            "left them)"
        )
    failures = [event for event in result.all_events if event.is_step_failure]
    if not failures:
        checks = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        return f"FAILED ({len(checks)} checks evaluated; see the Dagster UI)"
    event = failures[0]
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return f"FAILED: {data.user_failure_data.description.splitlines()[0]}"
    names = []
    error = data.error
    while error is not None:
        names.append(error.cls_name or "")
        error = error.cause or error.context
    causes = [name for name in names if name and not name.startswith(_FRAMEWORK_PREFIXES)]
    if "KeyboardInterrupt" in names or "DagsterExecutionInterruptedError" in names:
        return "INTERRUPTED (checkpoints stay where the last landed page left them)"
    step = event.step_key or "a step"
    return (
        f"FAILED in {step}: {causes[-1] if causes else 'unexpected error'} (rerun with --verbose)"
    )


def exception_line(error: BaseException) -> str:
    """The one line for an error raised outside a run (settings, the instance, ...)."""
    problem = errors.classify(
        error,
        database_url=os.getenv("HOSTPMS_DATABASE_URL"),
        api_base_url=os.getenv("HOSTPMS_API_BASE_URL"),
    )
    if problem.message.startswith("unexpected error"):
        return f"{problem.message}; rerun with --verbose for the traceback"
    return problem.message
