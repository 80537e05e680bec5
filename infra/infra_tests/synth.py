"""Synthesize a stage and hand its templates to ``aws_cdk.assertions``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk.assertions import Template

from hostpms_infra.app import build_app
from hostpms_infra.stage import STACKS


def synthesize(stage: str, outdir: Path) -> dict[str, Template]:
    """Stack name (``Storage``, ...) → its template; the stage's only stacks."""
    assembly = build_app({"stage": stage}, outdir=str(outdir)).synth()
    [stage_assembly] = [artifact.nested_assembly for artifact in assembly.nested_assemblies]
    templates = {
        stack.stack_name.removeprefix(f"hostpms-{stage}-"): stack for stack in stage_assembly.stacks
    }
    assert sorted(templates) == sorted(STACKS)
    for stack in templates.values():
        assert (stack.environment.account, stack.environment.region) == (
            "111111111111",
            "eu-west-1",
        )
    return {name: Template.from_json(stack.template) for name, stack in templates.items()}


def resources(template: Template, type_: str) -> dict[str, dict[str, Any]]:
    """Logical id → properties of every resource of one type."""
    return {
        logical_id: resource.get("Properties", {})
        for logical_id, resource in template.to_json()["Resources"].items()
        if resource["Type"] == type_
    }
