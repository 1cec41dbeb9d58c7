"""roles/drain.py's several-agents-at-once shell lines, run by the nodes' own sh (dash on Debian and Ubuntu): every
call runs, a failing one fails the whole (dash's `jobs -p` lists nothing in a script, so PIDs are kept)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from roles import drain


class Shell:
    """A pyinfra host stand-in whose commands run in this machine's /bin/sh."""

    def run_shell_command(self, command: str, print_output: bool = False):
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)

        class Output:
            stdout_lines = done.stdout.splitlines()
            stderr_lines = done.stderr.splitlines()

        return done.returncode == 0, Output


@pytest.fixture
def agent(tmp_path, monkeypatch):
    """A stand-in agent: prints its arguments, sleeps a little, fails for instance 'bad'."""
    script = tmp_path / "agent.py"
    script.write_text(
        "import sys, time\ntime.sleep(0.3)\nprint('pdfleet-router-members:', *sys.argv[1:])\n"
        "sys.exit(3 if 'bad' in sys.argv else 0)\n"
    )
    monkeypatch.setattr(drain, "MEMBERS_AGENT", str(script))
    monkeypatch.setattr(sys, "argv", sys.argv)  # nothing else of this process changes
    return script


def test_every_call_runs_at_once_and_one_failure_fails_the_whole(agent):
    started = time.monotonic()
    ok, lines = drain.agents_at_once(Shell(), [("drain", "a"), ("drain", "b"), ("drain", "c")])
    assert ok and time.monotonic() - started < 0.9  # three calls of 0.3 s, together
    assert sorted(lines) == [f"drain /etc/pdfleet/router-members.json {n}" for n in "abc"]
    ok, lines = drain.agents_at_once(Shell(), [("drain", "a"), ("drain", "bad")])
    assert not ok and len(lines) == 2
