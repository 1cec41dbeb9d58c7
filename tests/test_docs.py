"""Docs that must match the code."""

from __future__ import annotations

from pathlib import Path

from pdfleet.dialects import translation_table

ROOT = Path(__file__).resolve().parent.parent


def test_dialect_page_holds_the_generated_translation_table():
    page = (ROOT / "docs/dialects.md").read_text()
    start = page.index("<!-- generated: pdfleet.dialects.translation_table() -->\n") + len(
        "<!-- generated: pdfleet.dialects.translation_table() -->\n"
    )
    end = page.index("<!-- end generated -->")
    assert page[start:end] == translation_table(), "regenerate the table in docs/dialects.md:\n" + translation_table()


def test_readme_names_the_test_command_that_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text()
    command = "PDFLEET_REQUIRE_PARSERS=1 .venv/bin/python -m pytest"
    assert command in readme and command in ci
    assert "pdfleet sandbox up" in readme
