#!/usr/bin/env python3
"""Check SGLang PD router (``smg``) command lines with smg's own parser.

Run with the interpreter of the venv that has ``smg`` installed::

    .cache/parsers/smg-venv/bin/python tests/tools/smg_argcheck.py < cases.json

stdin: a JSON list ``[{"id": "...", "args": [...]}]`` where ``args`` are the
router arguments without the program name and without the ``launch``
subcommand (what follows ``smg launch`` or ``python -m smg.launch_router``).

stdout: a JSON list ``[{"id", "ok", "error", "parsed", "warnings",
"rust_validated", "smg_version"}]`` in input order.

How a case is checked (smg 1.13.0; the launcher is Python argparse, the
router core is Rust behind PyO3, there is no clap on the ``smg launch`` path):

1. Launcher stage (always, in-process, no sockets, no threads started):
   exactly what ``smg launch ARGS`` does before it starts serving --
   ``smg.cli.create_parser().parse_known_args(["launch", *ARGS])`` then
   ``smg.launch_router.parse_router_args(unknown)`` (argparse built by
   ``RouterArgs.add_cli_args(parser, use_router_prefix=False)`` followed by
   ``RouterArgs.from_cli_args``), then ``selected_discovery_provider()``,
   ``_validate_router_args()`` and ``smg.router.Router.from_args()`` (which
   builds the Rust ``smg_rs.Router`` object: enum mapping, integer range
   checks such as ports > 65535, backend/history choices).  argparse errors
   (``SystemExit(2)``) and exceptions are captured as text.
2. Rust stage (default on; ``--no-rust`` skips it): the only remaining checks,
   ``to_router_config()`` + ``RouterConfig::validate()`` (URL schemes, PD
   policy constraints, ...), run only inside ``smg_rs.Router.start()``.  To
   reach them without a live router, a child process re-does stage 1 and
   calls ``start()`` inside a fresh, empty network namespace
   (``unshare --net``: only a downed loopback, so nothing can leave it),
   with logging forced to INFO on the console and ``log_dir`` unset (so
   nothing is written to disk).  ``start()`` raises ``ValueError(
   "Configuration error: ..."/"Configuration validation failed: ...")``
   before any server work; the Rust log line ``Tokio runtime sized`` is
   printed right after validation and logging init, so seeing it means the
   config passed, and the child is killed at once.  When ``unshare`` is not
   usable the stage is skipped and ``rust_validated`` is null.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import re
import selectors
import shutil
import subprocess
import sys
import time

RUST_MARKERS = ("Tokio runtime sized", "Starting router on")
RUST_TIMEOUT_S = 30.0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def smg_version() -> str:
    try:
        from importlib.metadata import version

        return version("smg")
    except Exception:  # pragma: no cover - smg missing
        return "unknown"


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def launcher_stage(args: list[str]):
    """Run the launcher's own parsing/validation. Returns (router_args, error, notes)."""
    from smg import cli
    from smg.launch_router import parse_router_args
    from smg.router import Router

    notes: list[str] = []
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            # `smg launch ARGS`: the top-level parser leaves every router arg
            # in `unknown`, which is handed to parse_router_args.
            top, unknown = cli.create_parser().parse_known_args(["launch", *args])
            if top.command != "launch":
                return None, f"smg cli did not select 'launch' (got {top.command!r})", notes
            if list(unknown) != list(args):
                notes.append(f"smg cli passed {unknown!r} to the router parser")
            router_args = parse_router_args(list(unknown))
            if router_args.selected_discovery_provider() and not router_args.enable_igw:
                router_args.enable_igw = True
            router_args._validate_router_args()
            Router.from_args(router_args)
    except SystemExit as exc:
        text = (err.getvalue() + out.getvalue()).strip()
        lines = [ln for ln in text.splitlines() if "error:" in ln]
        msg = lines[-1] if lines else (text.splitlines()[-1] if text else "")
        if exc.code in (0, None):
            msg = "argparse exited 0 (--help?) instead of returning arguments"
        return None, f"argparse exit {exc.code}: {msg}".strip(), notes
    except Exception as exc:  # captured as text, never fatal
        return None, f"{type(exc).__name__}: {exc}", notes
    return router_args, None, notes


def summarize(ra) -> dict:
    pd = bool(ra.pd_disaggregation)
    return {
        "pd_disaggregation": pd,
        "epd_disaggregation": bool(ra.epd_disaggregation),
        "prefill": [{"url": u, "bootstrap_port": p} for (u, p) in ra.prefill_urls],
        "decode": list(ra.decode_urls),
        "worker_urls": list(ra.worker_urls),
        "policy": ra.policy,
        "prefill_policy": ra.prefill_policy,
        "decode_policy": ra.decode_policy,
        # what the PD router ends up using (smg: unset -> main --policy)
        "effective_prefill_policy": ra.prefill_policy or ra.policy,
        "effective_decode_policy": ra.decode_policy or ra.policy,
        "host": ra.host,
        "port": ra.port,
        "prometheus_host": ra.prometheus_host,
        "prometheus_port": ra.prometheus_port,
        "worker_startup_timeout_secs": ra.worker_startup_timeout_secs,
        "worker_startup_check_interval": ra.worker_startup_check_interval,
        "health_check_endpoint": ra.health_check_endpoint,
        "health_check_interval_secs": ra.health_check_interval_secs,
        "health_check_timeout_secs": ra.health_check_timeout_secs,
        "disable_health_check": ra.disable_health_check,
        "request_timeout_secs": ra.request_timeout_secs,
        "max_payload_size": ra.max_payload_size,
        "log_level": ra.log_level,
        "log_dir": ra.log_dir,
        "backend": ra.backend,
        "model_path": ra.model_path,
        "tokenizer_path": ra.tokenizer_path,
        "api_key_set": ra.api_key is not None,
        "enable_igw": bool(ra.enable_igw),
        "router_args": _jsonable(dataclasses.asdict(ra)),
    }


def warnings_for(args: list[str], ra) -> list[str]:
    """Things smg accepts silently but that are almost certainly mistakes."""
    warns: list[str] = []
    pd = ra.pd_disaggregation or ra.epd_disaggregation
    if (ra.prefill_urls or ra.decode_urls) and not pd:
        warns.append("--prefill/--decode given without --pd-disaggregation: Router.from_args drops them")
    if pd and ra.worker_urls:
        warns.append("--worker-urls is ignored in PD mode (Router.from_args empties it)")
    if ra.pd_disaggregation and bool(ra.prefill_urls) != bool(ra.decode_urls):
        # Both absent is pdfleet's way (workers registered through the API by pdfleet-router-members); one of
        # the two alone is a list cut short.
        warns.append("PD mode with --prefill or --decode alone: /readiness stays 503 until the other role comes")
    # --prefill is nargs='+': values after URL [BOOTSTRAP_PORT] are accepted and ignored
    for i, a in enumerate(args):
        if a in ("--prefill", "--encode"):
            vals = []
            for b in args[i + 1 :]:
                if b.startswith("--"):
                    break
                vals.append(b)
            if len(vals) > 2:
                warns.append(f"{a} {' '.join(vals)}: values after the bootstrap port are ignored")
    return warns


# ---------------------------------------------------------------- Rust stage


def _unshare_cmd() -> list[str] | None:
    exe = shutil.which("unshare")
    if not exe:
        return None
    try:
        r = subprocess.run([exe, "--net", "true"], capture_output=True, timeout=10)
    except Exception:
        return None
    if r.returncode == 0:
        return [exe, "--net", "--"]
    try:
        r = subprocess.run([exe, "--net", "--map-root-user", "true"], capture_output=True, timeout=10)
    except Exception:
        return None
    return [exe, "--net", "--map-root-user", "--"] if r.returncode == 0 else None


def rust_child_main() -> int:
    """Child: re-run the launcher stage, then Router.start() (inside unshare --net)."""
    from smg.router import Router

    args = json.loads(sys.stdin.read())
    ra, error, _ = launcher_stage(args)
    if error:
        print(f"LAUNCHER-ERROR {error}", flush=True)
        return 3
    ra.log_level = "info"
    ra.log_dir = None
    ra.log_json = False
    router = Router.from_args(ra)
    try:
        router.start()
    except Exception as exc:
        print(f"RUST-ERROR {type(exc).__name__}: {exc}", flush=True)
        return 4
    print("RUST-RETURNED", flush=True)
    return 0


def rust_stage(args: list[str], prefix: list[str]) -> tuple[bool, str | None]:
    """Returns (passed, error_text)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", NO_COLOR="1")
    proc = subprocess.Popen(
        [*prefix, sys.executable, os.path.abspath(__file__), "--rust-child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    captured: list[str] = []
    verdict: tuple[bool, str | None] | None = None
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(args).encode())
        proc.stdin.close()
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + RUST_TIMEOUT_S
        buf = b""
        while verdict is None:
            left = deadline - time.monotonic()
            if left <= 0:
                verdict = (False, f"rust stage inconclusive: no validation verdict within {RUST_TIMEOUT_S:.0f}s")
                break
            if not sel.select(timeout=min(left, 0.5)):
                if proc.poll() is not None and not buf:
                    break
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = _ANSI.sub("", line.decode("utf-8", "replace")).rstrip()
                captured.append(text)
                if text.startswith("RUST-ERROR ") or text.startswith("LAUNCHER-ERROR "):
                    verdict = (False, text.split(" ", 1)[1])
                    break
                if any(m in text for m in RUST_MARKERS):
                    verdict = (True, None)
                    break
        if verdict is None:
            proc.wait(timeout=10)
            tail = " | ".join(t for t in captured[-5:] if t.strip())
            verdict = (False, f"rust stage: child exited {proc.returncode} without verdict: {tail}")
    finally:
        if proc.poll() is None:
            proc.kill()  # this child only, by its pid
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    return verdict


# ---------------------------------------------------------------------- main


def check_case(case: dict, version: str, rust_prefix: list[str] | None, rust_enabled: bool) -> dict:
    cid = case.get("id") if isinstance(case, dict) else None
    result = {
        "id": cid,
        "ok": False,
        "error": None,
        "parsed": None,
        "warnings": [],
        "rust_validated": None,
        "smg_version": version,
    }
    args = case.get("args") if isinstance(case, dict) else None
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        result["error"] = "case must be an object with 'args': list of strings"
        return result
    ra, error, notes = launcher_stage(args)
    if error:
        result["error"] = error
        return result
    result["parsed"] = summarize(ra)
    result["warnings"] = notes + warnings_for(args, ra)
    if rust_enabled and rust_prefix is not None:
        passed, rust_error = rust_stage(args, rust_prefix)
        result["rust_validated"] = passed
        if not passed:
            result["error"] = rust_error
            return result
    result["ok"] = True
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--no-rust", action="store_true", help="skip the Rust RouterConfig validation stage (unshare --net child)"
    )
    ap.add_argument("--rust-child", action="store_true", help=argparse.SUPPRESS)
    opts = ap.parse_args(argv)
    if opts.rust_child:
        return rust_child_main()

    try:
        cases = json.loads(sys.stdin.read() or "[]")
    except json.JSONDecodeError as exc:
        print(json.dumps({"error": f"stdin is not JSON: {exc}"}))
        return 2
    if not isinstance(cases, list):
        print(json.dumps({"error": "stdin must be a JSON list of cases"}))
        return 2
    version = smg_version()
    rust_prefix = None if opts.no_rust else _unshare_cmd()
    results = [check_case(c, version, rust_prefix, not opts.no_rust) for c in cases]
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
