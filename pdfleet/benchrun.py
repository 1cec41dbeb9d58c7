"""Runs one bench_serving scenario on the router's node and streams its output as lines (installed as
/opt/pdfleet/bench/pdfleet-bench-run by roles/bench.py; standard library only).

    pdfleet-bench-run --log LOG --fresh JSONL [--key-file FILE] -- PYTHON -m sglang.bench_serving ARGS...

bench_serving's progress bar (tqdm) redraws one line with carriage returns, which never reaches a line-based reader
such as an SSH channel until the run ends. This runner splits the output on carriage returns and newlines, prints
every line at once with the marker `@@bench ` (pdfleet bench shows those and nothing else of pyinfra's), keeps a
progress line at most every PROGRESS_EVERY seconds (and the last one), says how long it has run when the client
is silent for HEARTBEAT seconds (long prompts finish together at the end), writes everything to LOG, and ends
with `@@bench-exit STATUS`, the client's exit status, which is also its own. JSONL (bench_serving appends to its
--output-file) is removed first, so the file holds this run's record only. With --key-file (the router node's
root-only API key file) the client gets the key as OPENAI_API_KEY, which bench_serving sends as
`Authorization: Bearer` (its get_auth_headers): never on a command line.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time

MARK = "@@bench "
EXIT_MARK = "@@bench-exit "
PROGRESS_EVERY = 10.0
HEARTBEAT = 30.0
# tqdm's bar: "  40%|████      | 200/500 [00:12<00:18, 16.1it/s]"
PROGRESS = re.compile(r"^\s*\d+%\|.*\|\s*\d+/\d+ \[")


def _reader(stream, lines: queue.Queue) -> None:
    pending = b""
    while True:
        chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
        if not chunk:
            break
        pending += chunk
        *complete, pending = re.split(rb"[\r\n]", pending)
        for line in complete:
            lines.put(line.decode("utf-8", "replace"))
    if pending:
        lines.put(pending.decode("utf-8", "replace"))
    lines.put(None)


def _elapsed(seconds: float) -> str:
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"


def run(argv: list[str], log_path: str, jsonl: str | None, out=sys.stdout, key_file: str | None = None) -> int:
    if jsonl and os.path.exists(jsonl):
        os.unlink(jsonl)
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:

        def say(text: str) -> None:
            out.write(MARK + text + "\n")
            out.flush()

        try:
            env = None
            if key_file:
                with open(key_file, encoding="utf-8") as handle:
                    env = {**os.environ, "OPENAI_API_KEY": handle.read().strip()}
            child = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        except OSError as error:
            say(f"cannot start {argv[0]}: {error}")
            out.write(f"{EXIT_MARK}127\n")
            out.flush()
            return 127
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_reader, args=(child.stdout, lines), daemon=True).start()
        last_said, last_progress_said = started, float("-inf")  # the first bar shows at once
        held = ""  # a progress line not shown yet (shown when the next one is due, or at the end)
        while True:
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                now = time.monotonic()
                if now - last_said >= HEARTBEAT:
                    say(f"running for {_elapsed(now - started)}" + (f", {held.strip()}" if held else ""))
                    last_said = now
                continue
            if line is None:
                break
            if not line.strip():
                continue
            log.write(line + "\n")
            log.flush()
            now = time.monotonic()
            if PROGRESS.match(line):
                held = line
                if now - last_progress_said < PROGRESS_EVERY and not line.lstrip().startswith("100%"):
                    continue
                last_progress_said = now
                held = ""
            elif held:  # the last progress line before other output: show where it stood
                say(held.strip())
                held = ""
            say(line.strip() if PROGRESS.match(line) else line.rstrip())
            last_said = now
        status = child.wait()
        if held:
            say(held.strip())
    out.write(f"{EXIT_MARK}{status}\n")
    out.flush()
    return status


def main(args: list[str]) -> int:
    log, jsonl, key_file = None, None, None
    while args and args[0] != "--":
        flag, value, args = args[0], args[1] if len(args) > 1 else None, args[2:]
        if flag == "--log":
            log = value
        elif flag == "--fresh":
            jsonl = value
        elif flag == "--key-file":
            key_file = value
        else:
            print(f"pdfleet-bench-run: unknown option {flag}", file=sys.stderr)
            return 2
    if not log or len(args) < 2:
        print("usage: pdfleet-bench-run --log LOG [--fresh JSONL] -- COMMAND...", file=sys.stderr)
        return 2
    return run(args[1:], log, jsonl, key_file=key_file)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
