"""The documentation stays true: the configuration reference matches the settings model,
every link between pages resolves, and no page depends on a file outside the repository."""

import re

import pytest

from hostpms_pipeline import settings_reference
from hostpms_pipeline.cli.commands import PROJECT_ROOT
from hostpms_pipeline.settings import Settings

PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_configuration_reference_is_generated_from_the_settings_model():
    written = (PROJECT_ROOT / "docs" / "configuration.md").read_text()
    assert written == settings_reference.render(), (
        f"docs/configuration.md is stale; regenerate it: {settings_reference.COMMAND}"
    )


def test_every_setting_is_in_the_reference_with_its_variable():
    reference = settings_reference.render()
    for name in Settings.model_fields:
        assert f"| `HOSTPMS_{name.upper()}` |" in reference
    assert "`HOSTPMS_PAGE_LIMIT`" in reference and "`HOSTPMS_HTTP_TIMEOUT_SECONDS`" in reference


def test_a_setting_without_a_description_cannot_be_documented(monkeypatch):
    field = Settings.model_fields["page_limit"]
    monkeypatch.setattr(field, "description", None)
    with pytest.raises(ValueError, match="page_limit"):
        settings_reference.render()


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_links_between_pages_resolve(page):
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_pages_stand_on_their_own(page):
    text = page.read_text()
    assert "/work/" not in text and "shared/" not in text, (
        f"{page.name} points outside the repository"
    )
