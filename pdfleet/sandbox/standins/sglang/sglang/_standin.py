"""What the stand-in needs besides parsing: its settings ("knobs") and its JSON-lines log.

Knobs come from the environment (`SGLANG_STANDIN_<NAME>`, upper case, `-` -> `_`) or, so that a sandbox image can
set them without touching the deploy's units, from the file `/etc/sglang-standin/<name>` (first line); else the
default. The directory can be moved with SGLANG_STANDIN_CONFIG_DIR (for tests).

| knob               | default | effect                                                                           |
|--------------------|---------|----------------------------------------------------------------------------------|
| log                | /var/log/sglang-standin/launch.jsonl | where the JSON lines go                             |
| compile-seconds    | 2       | how long `sglang.compile_deep_gemm` takes                                        |
| startup-seconds    | 0       | delay before the HTTP port opens (model loading)                                 |
| latency-ms         | 0       | added to every generate / completion request                                     |
| require-model-path | 1       | an absolute --model-path that does not exist fails the launch, as in SGLang      |
| check-bootstrap    | 1       | decode asks the prefill's bootstrap server (GET /route) before answering         |
| bootstrap-timeout  | 5       | seconds decode keeps trying that bootstrap server before failing the request     |
| rendezvous         | 1       | multi-node: ranks meet on --dist-init-addr before serving (torch's TCP store)    |
| context-length     | 163840  | max_model_len when neither --context-length nor <model>/config.json tells        |
| rendezvous-timeout | 600     | seconds a rank >= 1 keeps trying to reach rank 0                                 |
| nonzero-rank-sigterm | exit  | `ignore`: ranks >= 1 ignore SIGTERM and wait for rank 0, as SGLang 0.5.23 does   |
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

DEFAULT_LOG = "/var/log/sglang-standin/launch.jsonl"
CONFIG_DIR = "/etc/sglang-standin"
FAKE_BOOTSTRAP_HOST = "2.2.2.2"  # sglang.srt.disaggregation.utils: warm-up / health requests use it

_lock = threading.Lock()


def knob(name: str, default: str) -> str:
    env = "SGLANG_STANDIN_" + name.upper().replace("-", "_")
    if env in os.environ:
        return os.environ[env]
    path = Path(os.environ.get("SGLANG_STANDIN_CONFIG_DIR", CONFIG_DIR)) / name
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return default
    return text.splitlines()[0].strip() if text else default


def knob_float(name: str, default: float) -> float:
    raw = knob(name, str(default))
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"sglang stand-in: knob {name}={raw!r} is not a number") from None


def knob_bool(name: str, default: bool) -> bool:
    return knob(name, "1" if default else "0").strip().lower() not in ("0", "false", "no", "off", "")


def log_path() -> Path:
    return Path(knob("log", DEFAULT_LOG) or DEFAULT_LOG)


def log_event(event: str, **fields) -> None:
    """Append one JSON line (one write on an O_APPEND descriptor, so concurrent processes do not interleave)."""
    record = {"event": event, "time": round(time.time(), 6), "pid": os.getpid(), **fields}
    line = (json.dumps(record, sort_keys=False, default=str) + "\n").encode("utf-8")
    path = log_path()
    with _lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return repr(value)
