"""The ``hostpms`` command: its allocators are chosen before anything else is imported."""

from hostpms_pipeline.engine import memory


def main() -> None:
    memory.use_lean_allocators()
    from hostpms_pipeline.cli.commands import main as hostpms

    hostpms()
