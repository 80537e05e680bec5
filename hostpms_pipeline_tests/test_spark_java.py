"""The Spark engine says plainly when Java 17+ is missing, before starting any JVM."""

from __future__ import annotations

import pytest

from hostpms_pipeline.defs.engine_resource import EngineResource
from hostpms_pipeline.engine.spark.java import JavaMissing, check_java
from hostpms_pipeline.errors import classify


def fake_java(folder, version: str):
    java = folder / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2021-01-19' >&2\n")
    java.chmod(0o755)
    return folder


def test_no_java_at_all_is_named(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaMissing, match=r"needs Java 17 or later: no `java` on PATH"):
        check_java()


def test_an_old_java_is_named_with_its_version(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(fake_java(tmp_path, "11.0.2")))
    with pytest.raises(JavaMissing, match=r"java is Java 11; install a Java 17\+ runtime"):
        check_java()


def test_java_17_passes(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(fake_java(tmp_path, "17.0.15")))
    check_java()


def test_the_spark_engine_fails_in_one_line_without_java(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    resource = EngineResource(name="spark", staging_url=str(tmp_path))
    with pytest.raises(JavaMissing) as raised:
        resource.engine()
    problem = classify(raised.value, database_url=None, api_base_url=None, stores={})
    assert not problem.transient and problem.message.startswith("HOSTPMS_ENGINE=spark needs Java")


def test_the_local_engine_needs_no_java(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert EngineResource().engine().name == "local"
