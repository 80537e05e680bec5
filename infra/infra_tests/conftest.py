"""The CDK app synthesized once per test module, offline: no AWS account, no lookups."""

from __future__ import annotations

import os

# jsii runs the construct library on the machine's Node.js; its end-of-life banner is noise.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
