"""The configuration reference, ``docs/configuration.md``, generated from the settings model.

    python -m hostpms_pipeline.settings_reference > docs/configuration.md

Each ``Settings`` field becomes one row: its environment variable, type, limits, default
and description. A test fails when the file in the repository differs from this output,
so a setting cannot be added without its documentation.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from hostpms_pipeline import VERBOSE_ENV
from hostpms_pipeline.lake.storage import KMS_KEY_ID_VARIABLE
from hostpms_pipeline.settings import Settings

COMMAND = "python -m hostpms_pipeline.settings_reference > docs/configuration.md"

# Variables read outside the settings model: (name, meaning, when unset).
OTHER_VARIABLES = (
    (
        KMS_KEY_ID_VARIABLE,
        "SSE-KMS key the raw objects are encrypted with on S3.",
        "SSE-S3",
    ),
    (
        VERBOSE_ENV,
        "Full tracebacks and Dagster's step-by-step log (what `hostpms --verbose` sets).",
        "off",
    ),
    (
        "DAGSTER_HOME",
        "The Dagster instance (runs, schedules, sensors); `hostpms` copies the project's "
        "`dagster.yaml` there when it picks the default.",
        "`{HOSTPMS_HOME}/dagster`",
    ),
    (
        "DAGSTER_PG_URL",
        "PostgreSQL URL of the Dagster instance's storage, once the `storage:` block of "
        "`dagster.yaml` is uncommented.",
        "SQLite under `DAGSTER_HOME`",
    ),
    (
        "AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL, ...",
        "S3, Secrets Manager, DynamoDB, EventBridge and SNS are reached through the standard "
        "AWS variables and credential chain.",
        "boto3's defaults",
    ),
)


def environment_variable(name: str) -> str:
    prefix = Settings.model_config.get("env_prefix", "")
    return f"{prefix}{name}".upper()


def _type_name(annotation: Any) -> str:
    optional = False
    if get_origin(annotation) in (Union, UnionType):
        members = [arg for arg in get_args(annotation) if arg is not NoneType]
        optional = len(members) < len(get_args(annotation))
        annotation = members[0]
    if get_origin(annotation) is tuple:
        name = "comma-separated list"
    else:
        name = {
            SecretStr: "secret",
            Path: "path",
            bool: "boolean",
            int: "integer",
            float: "number",
            str: "text",
        }.get(annotation, getattr(annotation, "__name__", str(annotation)))
    return f"{name}, optional" if optional else name


def _limits(field: FieldInfo) -> str:
    signs = {Ge: ("≥", "ge"), Gt: (">", "gt"), Le: ("≤", "le"), Lt: ("<", "lt")}
    parts = []
    for constraint in field.metadata:
        for kind, (sign, attribute) in signs.items():
            if isinstance(constraint, kind):
                bound = getattr(constraint, attribute)
                parts.append(f"{sign} {bound:g}" if isinstance(bound, float) else f"{sign} {bound}")
    return ", ".join(parts)


def _default(field: FieldInfo) -> str:
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        value = ",".join(value)
    elif isinstance(value, bool):
        value = str(value).lower()
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from hostpms_pipeline/settings.py; do not edit by hand. Regenerate with:",
        f"     {COMMAND} -->",
        "",
        "Every setting is an environment variable (a `.env` file is not read: set them in the",
        "shell, the service unit or the container). Nothing set means everything runs locally:",
        "the HostPMS simulator, folders under `.hostpms/` for the buckets and a private",
        "PostgreSQL. A value out of range stops a command before it starts, in one line naming",
        "the variable (exit 2). Secrets are never logged.",
        "",
        "| variable | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        kind = _type_name(field.annotation)
        limits = _limits(field)
        if limits:
            kind = f"{kind} ({limits})"
        description = field.description
        if not description:
            raise ValueError(f"Settings.{name} has no description")
        lines.append(
            f"| `{environment_variable(name)}` | {kind} | {_cell(_default(field))} "
            f"| {_cell(description)} |"
        )
    lines += [
        "",
        "## Read outside the settings model",
        "",
        "| variable | meaning | when unset |",
        "|---|---|---|",
    ]
    for name, meaning, unset in OTHER_VARIABLES:
        lines.append(f"| `{name}` | {_cell(meaning)} | {_cell(unset)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
