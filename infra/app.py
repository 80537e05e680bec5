"""Entry point of `cdk synth` / `cdk deploy` (cdk.json): see hostpms_infra/app.py."""

from hostpms_infra.app import build_app

build_app().synth()
