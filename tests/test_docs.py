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


def _uncommented(text: str, start: str, end: str) -> str:
    """prod.yaml with the commented knobs between two markers made live (their trailing comments kept)."""
    head, rest = text.split(start, 1)
    marker_rest, rest = rest.split("\n", 1)  # the marker's own line stays a comment
    block, tail = rest.split(end, 1)
    live = "\n".join(line.replace("  # ", "  ", 1) if line.startswith("  # ") else line for line in block.splitlines())
    return head + start + marker_rest + "\n" + live + "\n" + end + tail


def test_the_router_and_peer_watch_defaults_written_in_prod_yaml_are_the_codes(tmp_path):
    """The commented knobs of prod.yaml, made live, give the same cluster: they are the defaults, each documented."""
    from pdfleet.cluster import load_cluster

    original = (ROOT / "inventories/prod.yaml").read_text()
    text = _uncommented(original, "  # Keeping the endpoint up", "\nmodel:")
    text = _uncommented(text, "  # start_timeout: 3600", "\nruntime:")
    assert text != original and "\n  health:" in text and "\n    interval_secs: 2 " in text
    live = tmp_path / "prod.yaml"
    live.write_text(text)
    documented, default = load_cluster(live), load_cluster(ROOT / "inventories/prod.yaml")
    assert documented.router == default.router
    assert documented.peer_watch == default.peer_watch


def _runbook_commands() -> list[tuple[str, list[str]]]:
    """Every `pdfleet ...` and `pyinfra ...` command of the runbooks' indented blocks and `inline` code."""
    import re
    import shlex

    found = []
    for page in sorted((ROOT / "docs/runbooks").glob("*.md")):
        text = page.read_text()
        lines = [line[4:] for line in text.splitlines() if line.startswith("    ") and not line.startswith("     ")]
        lines += re.findall(r"`((?:pdfleet|pyinfra) [^`]+)`", text)
        for line in lines:
            command = line.split("  #", 1)[0].strip()
            is_output = command.startswith("pyinfra ") and "deploys/" not in command  # pyinfra's own messages
            if command.startswith(("pdfleet ", "pyinfra ")) and "..." not in command and not is_output:
                found.append((page.name, shlex.split(command)))
    return found


def test_every_runbook_command_parses_and_a_test_runs_its_form():
    """Each command of docs/runbooks/: pdfleet's parse with pdfleet's own CLI; its subcommand (or deploy) and every
    option it uses appear in a test that runs it (tests/, sandbox ring included)."""
    from click.testing import CliRunner

    from pdfleet.cli import main

    tests = (
        "\n".join(p.read_text() for p in (ROOT / "tests").rglob("*.py"))
        + (ROOT / "benchmarks").joinpath("faults.py").read_text()
        + (ROOT / "benchmarks/replace.py").read_text()
        + (ROOT / "benchmarks/upgrade.py").read_text()  # run by tests/sandbox/test_upgrade.py
    )
    commands = _runbook_commands()
    assert len(commands) >= 20, commands
    for page, argv in commands:
        if argv[0] == "pdfleet":
            parsed = CliRunner().invoke(main, [*argv[1:3], "--help"])
            assert parsed.exit_code == 0, (page, argv, parsed.output)
            for option in (a.split("=", 1)[0] for a in argv if a.startswith("--")):
                assert option in parsed.output, (page, argv, option)
            subject = argv[1]
        else:
            subject = next(a for a in argv if a.startswith("deploys/"))
        assert f'"{subject}"' in tests or f"'{subject}'" in tests or f"{subject}" in tests, (page, subject)
        for option in (a.split("=", 1)[0] for a in argv if a.startswith("--")):
            assert f'"{option}' in tests, (page, argv, option)
