"""Fewer round trips on a converged cluster: the facts a run will read, read in one command.

pyinfra reads every fact with its own command, one SSH round trip each, and a converge reads about seventy per
node. `install()` (first line of each deploy) runs, in one command per host, the fact commands the previous run
from this machine read on that host, and answers those facts from the result while nothing has changed on the
host. The first command that is not a known fact read (an operation's change, a file upload, a new fact) ends it:
from there every fact is read live again, so what an operation decides after a change is always current.

The lists live on the machine running pyinfra (`$XDG_CACHE_HOME/pdfleet/fact-commands/<cluster>/<node>.<deploy>.json`),
one per host, rewritten at the end of each run. A first run, or `--data pdfleet_fact_prefetch=0`, reads every fact
live. Only for root logins: facts read through sudo would need the batch to run with each fact's own arguments.
"""

from __future__ import annotations

import atexit
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from weakref import WeakKeyDictionary

from pyinfra import host, logger
from pyinfra.api.host import Host
from pyinfra.connectors.util import CommandOutput, OutputLine

from roles import common

MARK = "@@pdfleet-prefetch"


@dataclass
class _Memo:
    path: Path
    answers: dict[str, tuple[bool, CommandOutput]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)  # fact commands of this run, in order
    in_fact: int = 0
    live: bool = False  # something changed on the host: answers are no longer current


_memos: WeakKeyDictionary[Host, _Memo] = WeakKeyDictionary()


def cache_file(cluster: str, node: str, deploy: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pdfleet" / "fact-commands" / cluster / f"{node}.{deploy}.json"


def batch_script(commands: list[str]) -> str:
    """One shell script running each command in a subshell, its stdout and stderr framed by marker lines (each
    marker starts on a line of its own: output without a final newline stays whole)."""
    parts = ["d=$(mktemp -d) || exit 1"]
    for i, command in enumerate(commands):
        parts.append(f'echo "{MARK} {i}"; ( {command}\n) 2>"$d/{i}"; printf "\\n{MARK} {i} exit=%s\\n" $?')
    parts.append(f'for f in "$d"/*; do echo "{MARK} stderr ${{f##*/}}"; cat "$f"; printf "\\n{MARK} end\\n"; done')
    parts.append('rm -rf "$d"')
    return "\n".join(parts)


def parse_batch(commands: list[str], lines: list[str]) -> dict[str, tuple[bool, CommandOutput]]:
    """The answers of a batch_script run, as host.run_shell_command would have returned each command's."""
    stdout: dict[int, list[str]] = {}
    stderr: dict[int, list[str]] = {}
    status: dict[int, bool] = {}
    target: list[str] | None = None

    def close() -> None:
        # The newline printed before a closing marker: one trailing empty line that is not the command's.
        if target and target[-1] == "":
            target.pop()

    for line in lines:
        if line.startswith(MARK + " "):
            words = line[len(MARK) + 1 :].split()
            if len(words) == 1 and words[0].isdigit():
                target = stdout.setdefault(int(words[0]), [])
                continue
            if len(words) == 2 and words[0].isdigit() and words[1].startswith("exit="):
                close()
                status[int(words[0])] = words[1] == "exit=0"
                target = None
                continue
            if len(words) == 2 and words[0] == "stderr" and words[1].isdigit():
                target = stderr.setdefault(int(words[1]), [])
                continue
            if words == ["end"]:
                close()
                target = None
                continue
        if target is not None:
            target.append(line)
    answers = {}
    for i, command in enumerate(commands):
        if i not in status:
            continue  # cut off: read it live
        combined = [OutputLine("stdout", line) for line in stdout.get(i, [])]
        combined += [OutputLine("stderr", line) for line in stderr.get(i, [])]
        answers[command] = (status[i], CommandOutput(combined))
    return answers


def _text(command) -> str:
    return command if isinstance(command, str) else command.get_raw_value()


def _enabled() -> bool:
    switch = str(host.data.get("pdfleet_fact_prefetch", "1")).lower() not in ("0", "false", "no", "off")
    return switch and common.cluster().ssh.user == "root" and not host.data.get("_sudo")


def install(deploy: str) -> None:
    """Answer this host's facts from one batched read until something changes on it (see the module doc).

    + deploy: the deploy's name (host, serve, pd): each deploy reads its own list of facts
    """
    if host in _memos or not _enabled():
        return
    memo = _Memo(cache_file(common.cluster().name, common.node_name(), deploy))
    _memos[host] = memo
    real_run, real_put, real_get_fact = host.run_shell_command, host.put_file, host.get_fact
    try:
        known = json.loads(memo.path.read_text())
    except (OSError, ValueError):
        known = []
    if known:
        ok, output = real_run(batch_script(known), print_output=False)
        if ok:
            memo.answers = parse_batch(known, output.stdout_lines)

    def get_fact(*args, **kwargs):
        memo.in_fact += 1
        try:
            return real_get_fact(*args, **kwargs)
        finally:
            memo.in_fact -= 1

    def run_shell_command(command, *args, **kwargs):
        text = _text(command)
        if memo.in_fact:
            if text not in memo.asked:
                memo.asked.append(text)
            if not memo.live and text in memo.answers:
                return memo.answers[text]
        memo.live = True
        return real_run(command, *args, **kwargs)

    def put_file(*args, **kwargs):
        memo.live = True
        return real_put(*args, **kwargs)

    # Instance attributes: only this host's Host object, only for this run.
    host.get_fact = get_fact
    host.run_shell_command = run_shell_command
    host.put_file = put_file


@atexit.register
def _save() -> None:
    for memo in list(_memos.values()):
        if not memo.asked:
            continue
        try:
            memo.path.parent.mkdir(parents=True, exist_ok=True)
            partial = memo.path.with_suffix(".partial")
            partial.write_text(json.dumps(memo.asked, indent=0))
            partial.replace(memo.path)
        except OSError as error:
            logger.debug(f"fact prefetch: cannot save {memo.path}: {error}")
