"""The repo's Dockerfile, built by `cdk deploy` (synth only copies the build context)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# On top of .dockerignore: never copy synth output into its own next build context.
IMAGE_EXCLUDES = ["infra/cdk.out", "infra/node_modules", ".venv", ".git"]
