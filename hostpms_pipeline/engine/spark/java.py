"""Spark runs on a JVM: check for Java 17 or later before starting one, and say plainly what is missing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from hostpms_pipeline.errors import ConfigurationError

MINIMUM_JAVA = 17
_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


class JavaMissing(ConfigurationError):
    """No usable Java for a local Spark session (a configuration error: one line, no retry)."""


def java_command() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return os.path.join(home, "bin", "java")
    return shutil.which("java")


def java_major_version(command: str) -> int | None:
    try:
        result = subprocess.run(
            [command, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(result.stderr + result.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8" is Java 8


def check_java() -> None:
    """Raise JavaMissing naming what is missing, unless Java 17+ is on JAVA_HOME or PATH."""
    command = java_command()
    install = "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
    if command is None:
        raise JavaMissing(
            f"HOSTPMS_ENGINE=spark needs Java {MINIMUM_JAVA} or later: no `java` on PATH "
            f"or in JAVA_HOME; {install}, or set HOSTPMS_SPARK_CONNECT_URL to a Spark Connect server"
        )
    major = java_major_version(command)
    if major is None or major < MINIMUM_JAVA:
        found = f"Java {major}" if major else "a `java` whose version could not be read"
        raise JavaMissing(
            f"HOSTPMS_ENGINE=spark needs Java {MINIMUM_JAVA} or later: {command} is {found}; "
            f"{install}"
        )
