"""The console logger of every run: the assets' own lines only, unless tracebacks are asked for.

Dagster's default console logger prints each step failure with its whole stack trace
(75 lines for a refused connection). Run by ``hostpms sync`` (or a run worker), a
person needs the assets' progress lines, the one-line retry notices and, at the end,
the CLI's one-line summary; the stack stays in the run's event log (the UI shows
it). ``HOSTPMS_VERBOSE=1`` (``hostpms --verbose``) restores Dagster's full console.
"""

from __future__ import annotations

import logging
import os
import sys

from dagster import Field, InitLoggerContext, logger
from dagster._utils.log import create_console_logger

from hostpms_pipeline import QUIET_ENV, VERBOSE_ENV

_META = "dagster_meta"
_FRAMEWORK_NOTICES = ("Dependencies for step ",)


def verbose() -> bool:
    return os.getenv(VERBOSE_ENV, "").lower() in ("1", "true", "yes")


def quiet_asked() -> bool:
    return os.getenv(QUIET_ENV, "").lower() in ("1", "true", "yes")


class AssetLinesOnly(logging.Filter):
    """Keeps what the assets log themselves (``context.log``): no Dagster event, no stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        meta = getattr(record, _META, None)
        if not isinstance(meta, dict):
            return True
        if meta.get("dagster_event") is not None:
            return False
        message = str(meta.get("orig_message", ""))
        if message.startswith(_FRAMEWORK_NOTICES):
            return False  # the steps skipped after a failure: the summary says what failed
        record.msg, record.args = message or record.getMessage(), None
        return True


@logger(
    config_schema={
        "log_level": Field(str, default_value="INFO", is_required=False),
        "name": Field(str, default_value="dagster", is_required=False),
    },
    description="The assets' own lines on stderr; Dagster's full console with HOSTPMS_VERBOSE=1.",
)
def hostpms_console_logger(init_context: InitLoggerContext) -> logging.Logger:
    name = init_context.logger_config["name"]
    level = init_context.logger_config["log_level"].upper()
    if quiet_asked():  # `hostpms --quiet`: warnings (retries) and errors only
        level = max(logging.getLevelName(level), logging.WARNING)
    if verbose():
        return create_console_logger(name, level)
    quiet = logging.Logger(name, level=level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    handler.addFilter(AssetLinesOnly())
    quiet.addHandler(handler)
    return quiet
