"""roles.prefetch's batch: a real shell runs it, and each command's answer comes back as it would alone."""

from __future__ import annotations

import subprocess

from roles.prefetch import batch_script, parse_batch

COMMANDS = [
    "echo one; echo two",
    "echo oops >&2; exit 3",
    "printf 'no newline'",
    "true",
    "cat /nonexistent/file",
]


def run_alone(command: str) -> tuple[bool, list[str], list[str]]:
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
    return done.returncode == 0, done.stdout.splitlines(), done.stderr.splitlines()


def test_each_answer_equals_the_command_run_alone():
    done = subprocess.run(["sh", "-c", batch_script(COMMANDS)], capture_output=True, text=True, check=True)
    answers = parse_batch(COMMANDS, done.stdout.splitlines())
    assert set(answers) == set(COMMANDS)
    for command in COMMANDS:
        ok, output = answers[command]
        assert (ok, output.stdout_lines, output.stderr_lines) == run_alone(command), command


def test_a_cut_off_batch_answers_only_what_finished():
    done = subprocess.run(["sh", "-c", batch_script(COMMANDS)], capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    cut = lines[: lines.index("@@pdfleet-prefetch 2")]  # the third command never ran
    assert set(parse_batch(COMMANDS, cut)) == {COMMANDS[0], COMMANDS[1]}


def test_file_reads_run_as_one_sha1sum_and_one_stat_and_answer_as_each_alone(tmp_path):
    from pyinfra.facts.files import File, Sha1File

    (tmp_path / "a.conf").write_text("alpha\n")
    (tmp_path / "b dir").mkdir()
    (tmp_path / "b dir" / "c.conf").write_text("gamma\n")
    (tmp_path / "link").symlink_to(tmp_path / "a.conf")
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    paths = [str(tmp_path / name) for name in ("a.conf", "b dir/c.conf", "link", "dangling", "missing", "b dir")]
    commands = [str(Sha1File().command(path=p).get_raw_value()) for p in paths]
    commands += [str(File().command(path=p).get_raw_value()) for p in paths]
    commands.append("echo plain")
    script = batch_script(commands)
    # One program per group; the two paths pyinfra had to quote (a space) run alone, as before.
    assert script.count("sha1sum") == 1 + 2 and script.count("stat -c") == 1 + 2
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    answers = parse_batch(commands, done.stdout.splitlines())
    assert set(answers) == set(commands)
    for command in commands:
        ok, output = answers[command]
        assert (ok, output.stdout_lines, output.stderr_lines) == run_alone(command), command
    assert answers[commands[0]][1].stdout_lines[0].startswith("d046cd9b7ffb")  # sha1 of "alpha\n"


def test_venv_packages_read_by_the_shell_match_what_the_venvs_python_reports():
    import json
    import sys
    from pathlib import Path

    from pdfleet.runtimeplan import normalize
    from roles.runtime import VenvPackages

    venv = str(Path(sys.executable).parent.parent)  # the venv running these tests
    command = VenvPackages().command(venv=venv).get_raw_value()
    ok, lines, _ = run_alone(command)
    assert ok
    listing = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    reported = json.loads(subprocess.run([sys.executable, "-c", listing], capture_output=True, text=True).stdout)
    assert VenvPackages().process(lines) == {normalize(name): version for name, version in reported.items()}
    assert VenvPackages().process(run_alone(VenvPackages().command(venv="/nonexistent").get_raw_value())[1]) is None
