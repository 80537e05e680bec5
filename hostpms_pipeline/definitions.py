"""The code location: one ``Definitions`` object for the whole connector, built when it loads."""

from dagster import Definitions, definitions

from hostpms_pipeline.defs import build_definitions
from hostpms_pipeline.settings import get_settings


@definitions
def defs() -> Definitions:
    return build_definitions(get_settings())
