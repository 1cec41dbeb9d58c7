"""Fewer round trips on a converged cluster: the facts a run will read, read in one command.

pyinfra reads every fact with its own command, one SSH round trip each, and a converge reads about seventy per
node. `install()` (first line of each deploy) runs, in one command per host, the fact commands the previous run
from this machine read on that host, and answers those facts from the result while nothing has changed on the
host. The first command that is not a fact read (an operation's change, a file upload) ends it: from there every
fact is read live again, so what an operation decides after a change is always current. A fact the batch did not
hold (the previous run took another branch: after a converge, a no-op reads the sha1 of files it had uploaded) is
read live on its own; being a read, it leaves the batch's other answers current.

The lists live on the machine running pyinfra (`$XDG_CACHE_HOME/pdfleet/fact-commands/<cluster>/<node>.<deploy>.json`),
one per host, rewritten at the end of each run. A first run, or `--data pdfleet_fact_prefetch=0`, reads every fact
live. Only for root logins: facts read through sudo would need the batch to run with each fact's own arguments.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shlex
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

    def answer(self, command: str) -> tuple[bool, CommandOutput] | None:
        """The batch's answer to a fact command, or None when it must be read live; remembered for the next run."""
        if command not in self.asked:
            self.asked.append(command)
        return None if self.live else self.answers.get(command)

    def changed(self) -> None:
        """Something other than a fact read ran on the host: from here every fact is read live."""
        self.live = True


_memos: WeakKeyDictionary[Host, _Memo] = WeakKeyDictionary()


def cache_file(cluster: str, node: str, deploy: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pdfleet" / "fact-commands" / cluster / f"{node}.{deploy}.json"


# Fact commands that many reads share a program for, recognised by pyinfra's exact text: the batch runs one
# sha1sum, one stat and one `systemctl show` per property for all of them instead of a process each, and
# answers each command from that program's output (what it would have printed alone; see the tests).
_SHA1 = re.compile(
    r"^test -e (?P<p>\S+) && \( sha1sum (?P=p) 2> /dev/null \|\| shasum (?P=p) 2> /dev/null"
    r" \|\| sha1 (?P=p) 2> /dev/null \) \|\| true$"
)
_STAT_FORMAT = "user=%U group=%G mode=%A atime=%X mtime=%Y ctime=%Z size=%s %N"
_STAT = re.compile(
    r"^! \(test -e (?P<p>\S+) \|\| test -L (?P=p) \) \|\| \( stat -c '"
    + re.escape(_STAT_FORMAT)
    + r"' (?P=p) 2> /dev/null \|\| stat -f '[^']*' (?P=p) \|\| ls -ld (?P=p) \)$"
)
_SHOW = re.compile(
    r"^if command -v systemctl >/dev/null 2>&1; then \( systemctl show --all --property Id --property (?P<prop>\w+)"
    r" (?P<p>[A-Za-z0-9@._:-]+) \); else echo '##PYINFRA_NOCMD##'; fi$"
)
_STAT_SEPARATOR = "|@@|"


def _group_of(command: str) -> tuple[str, str] | None:
    """(group, argument) for a command the batch can answer from a shared program's output."""
    for name, pattern in (("sha1", _SHA1), ("stat", _STAT)):
        match = pattern.match(command)
        if match and "'" not in match["p"] and '"' not in match["p"]:
            return name, match["p"]
    match = _SHOW.match(command)
    if match:
        return f"show {match['prop']}", match["p"]
    return None


def _grouped(commands: list[str]) -> dict[str, list[tuple[str, str]]]:
    groups: dict[str, list[tuple[str, str]]] = {}
    for command in commands:
        found = _group_of(command)
        if found:
            groups.setdefault(found[0], []).append((command, found[1]))
    return groups


def _group_program(group: str, args: list[str]) -> str:
    joined = " ".join(args)
    if group == "sha1":
        return f"sha1sum {joined} 2>/dev/null"
    if group == "stat":
        return f"stat -c '%n{_STAT_SEPARATOR}{_STAT_FORMAT}' {joined} 2>/dev/null"
    prop = group.split()[1]
    return f"systemctl show --all --property Id --property {prop} {joined}"


def _answers_of_group(group: str, members: list[tuple[str, str]], lines: list[str]) -> dict[str, list[str]]:
    """Each member command's stdout, from the shared program's output; {} when it cannot be told apart."""
    if group == "sha1":
        by_path = {}
        for line in lines:
            digest, sep, path = line.partition("  ")
            if sep and len(digest) == 40:
                by_path[path] = [line]
        return {command: by_path.get(shlex.split(arg)[0], []) for command, arg in members}
    if group == "stat":
        by_path = {}
        for line in lines:
            path, sep, rest = line.partition(_STAT_SEPARATOR)
            if sep:
                by_path[path] = [rest]
        return {command: by_path.get(shlex.split(arg)[0], []) for command, arg in members}
    blocks: list[list[str]] = [[]]
    for line in lines:
        if line == "":
            blocks.append([])
        else:
            blocks[-1].append(line)
    blocks = [block for block in blocks if block]
    if len(blocks) != len(members) or any(not block[0].startswith("Id=") for block in blocks):
        return {}
    return {command: block for (command, _), block in zip(members, blocks, strict=True)}


def batch_script(commands: list[str], group: bool = True) -> str:
    """One shell script running each command in a subshell, its stdout and stderr framed by marker lines (each
    marker starts on a line of its own: output without a final newline stays whole). Commands of a known group
    run as one program per group (framed `MARK group NAME`)."""
    parts = ["d=$(mktemp -d) || exit 1"]
    groups = _grouped(commands) if group else {}
    grouped = {command for members in groups.values() for command, _ in members}
    for name, members in groups.items():
        program = _group_program(name, [arg for _, arg in members])
        parts.append(f'echo "{MARK} group {name}"; {program}; printf "\\n{MARK} end\\n"')
    for i, command in enumerate(commands):
        if command in grouped:
            continue
        parts.append(f'echo "{MARK} {i}"; ( {command}\n) 2>"$d/{i}"; printf "\\n{MARK} {i} exit=%s\\n" $?')
    parts.append(f'for f in "$d"/*; do echo "{MARK} stderr ${{f##*/}}"; cat "$f"; printf "\\n{MARK} end\\n"; done')
    parts.append('rm -rf "$d"')
    return "\n".join(parts)


def parse_batch(commands: list[str], lines: list[str]) -> dict[str, tuple[bool, CommandOutput]]:
    """The answers of a batch_script run, as host.run_shell_command would have returned each command's."""
    stdout: dict[int, list[str]] = {}
    stderr: dict[int, list[str]] = {}
    status: dict[int, bool] = {}
    group_output: dict[str, list[str]] = {}
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
            if len(words) >= 2 and words[0] == "group":
                target = group_output.setdefault(" ".join(words[1:]), [])
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
    for name, members in _grouped(commands).items():
        if name not in group_output:
            continue  # cut off: read them live
        for command, lines in _answers_of_group(name, members, group_output[name]).items():
            # Each of these exits 0 alone (`|| true`, `! test || stat`, systemctl show) and prints nothing on stderr.
            answers[command] = (True, CommandOutput([OutputLine("stdout", line) for line in lines]))
    for i, command in enumerate(commands):
        if i not in status or command in answers:
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
        if memo.in_fact:
            known = memo.answer(_text(command))
            if known is not None:
                return known
        else:
            memo.changed()
        return real_run(command, *args, **kwargs)

    def put_file(*args, **kwargs):
        memo.changed()
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
