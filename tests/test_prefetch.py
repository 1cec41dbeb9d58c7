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
