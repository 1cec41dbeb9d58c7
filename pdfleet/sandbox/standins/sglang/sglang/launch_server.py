"""`python3 -m sglang.launch_server ARGS`: the sandbox's stand-in for SGLang 0.5.23's server (no GPU, no model).

1. Parses ARGS with SGLang 0.5.23's options (sglang/_argtable.py); bad arguments: argparse's message, exit 2
   (logged as event "launch_rejected").
2. Logs event "launch" with argv, the whole environment, pid, cwd (knob `log`, see sglang/_standin.py).
3. Fails like SGLang when an absolute --model-path does not exist (knob require-model-path).
4. Multi-node (--nnodes > 1 with --dist-init-addr): waits for every rank (sglang/_rendezvous.py).
5. Waits `startup-seconds`, then listens: rank 0 the API on --host/--port (+ the bootstrap server on
   --disaggregation-bootstrap-port for prefill), ranks >= 1 a health stub on the same port (sglang/_server.py).
6. SIGTERM / SIGINT: drains as SGLang does (tokenizer_manager's sigterm_watchdog): /health answers 503, requests
   in flight finish ("Gracefully exiting... Remaining number of requests N" every 5 s), then a clean stop (event
   "shutdown"), exit 0; at once with SGL_FORCE_SHUTDOWN set or nothing in flight. Knob nonzero-rank-sigterm=ignore
   reproduces SGLang 0.5.23's ranks >= 1, which log the signal and keep waiting for rank 0's shutdown broadcast.
7. A peer rank lost (multi-node): with knob peer-loss=hang (the default, as SGLang: sglang #3099) the process stays,
   its collectives hang: requests never finish, /health answers 503 after SGLANG_HEALTH_CHECK_TIMEOUT, and it exits
   with status 1 after peer-loss-exit-seconds (NCCL's watchdog, 600 s); peer-loss=exit fails at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import warnings

from sglang import _argtable, _server
from sglang._rendezvous import Rendezvous, RendezvousError
from sglang._standin import knob, knob_bool, knob_float, log_event

MODULE = "sglang.launch_server"


def _fail(message: str, status: int = 1) -> int:
    print(f"[sglang stand-in] ERROR: {message}", file=sys.stderr, flush=True)
    log_event("exit", module=MODULE, status=status, error=message)
    return status


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _argtable.parse("launch_server", argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            log_event("launch_rejected", module=MODULE, argv=argv, status=exc.code)
        raise
    log_event("launch", module=MODULE, executable=sys.executable, argv=argv, env=dict(os.environ), cwd=os.getcwd())

    absolute = args.model_path.startswith("/")
    if absolute and knob_bool("require-model-path", True) and not os.path.exists(args.model_path):
        return _fail(f"--model-path {args.model_path} does not exist (SGLang cannot load the model)")

    stop = threading.Event()
    draining = threading.Event()
    outcome = {"status": 0, "reason": None}
    state = {"engine": None, "lost_at": None}

    def on_signal(signum, frame):
        name = signal.Signals(signum).name
        if args.node_rank > 0 and signum == signal.SIGTERM and knob("nonzero-rank-sigterm", "exit") == "ignore":
            print(
                f"[sglang stand-in] SIGTERM received on node_rank {args.node_rank}; waiting for the rank-0 "
                "ShutdownReq broadcast to stop the schedulers.",
                file=sys.stderr,
                flush=True,
            )
            log_event("signal_ignored", module=MODULE, signal=name)
            return
        outcome["reason"] = name
        engine = state["engine"]
        if engine is None or os.environ.get("SGL_FORCE_SHUTDOWN") or draining.is_set():
            stop.set()
            return
        print("SIGTERM received. Draining requests and shutting down...", file=sys.stderr, flush=True)
        engine.exiting = True
        draining.set()

    def on_lost(message: str | None):
        engine = state["engine"]
        if message is not None and engine is not None and knob("peer-loss", "hang") == "hang":
            # The ranks' collectives hang: nothing fails until NCCL's watchdog gives up.
            print(
                f"[sglang stand-in] {message}: collectives wait for it (NCCL watchdog, "
                f"{knob_float('peer-loss-exit-seconds', 600):g} s)",
                file=sys.stderr,
                flush=True,
            )
            log_event("peer_lost", module=MODULE, message=message)
            engine.unhealthy = message
            state["lost_at"] = time.monotonic()
            return
        if message is not None:
            print(f"[sglang stand-in] ERROR: {message}", file=sys.stderr, flush=True)
            outcome["status"] = 1
        outcome["reason"] = message or "rank 0 shut down"
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    rendezvous = None
    if args.nnodes > 1 and args.dist_init_addr and knob_bool("rendezvous", True):
        try:
            rendezvous = Rendezvous(args.dist_init_addr, args.nnodes, args.node_rank, stop, on_lost)
            if args.node_rank == 0:
                rendezvous.listen()
                while not stop.is_set() and not rendezvous.ready.wait(0.2):
                    pass
            else:
                rendezvous.join(knob_float("rendezvous-timeout", 600))
        except RendezvousError as exc:
            if rendezvous is not None:
                rendezvous.close()
            return _fail(str(exc))
        if not stop.is_set():
            log_event("rendezvous", module=MODULE, nnodes=args.nnodes, node_rank=args.node_rank)

    if not stop.is_set():
        stop.wait(knob_float("startup-seconds", 0))

    servers = []
    if not stop.is_set():
        engine = _server.Engine(args, argv)
        state["engine"] = engine
        try:
            servers = _server.make_servers(engine)
        except OSError as exc:
            if rendezvous is not None:
                rendezvous.close()
            return _fail(f"error while attempting to bind on address ({args.host!r}, {args.port}): {exc}")
        _server.serve(servers)
        log_event(
            "listening",
            module=MODULE,
            role=engine.role,
            node_rank=args.node_rank,
            ports={name: server.server_address[1] for name, server in servers},
        )
        print(
            f"[sglang stand-in] serving {engine.served_model_name} ({engine.role}, node rank {args.node_rank}) "
            f"on {args.host}:{args.port}",
            file=sys.stderr,
            flush=True,
        )
        last_report = 0.0
        while not stop.wait(0.5):
            if draining.is_set():
                if engine.running == 0:
                    stop.set()
                elif time.monotonic() - last_report >= 5:
                    print(
                        f"Gracefully exiting... Remaining number of requests {engine.running}",
                        file=sys.stderr,
                        flush=True,
                    )
                    last_report = time.monotonic()
            lost_at = state["lost_at"]
            if lost_at is not None and time.monotonic() - lost_at > knob_float("peer-loss-exit-seconds", 600):
                print("[sglang stand-in] ERROR: NCCL watchdog timeout: exiting", file=sys.stderr, flush=True)
                outcome["status"], outcome["reason"] = 1, engine.unhealthy
                stop.set()

    if rendezvous is not None:
        rendezvous.close()
    _server.shutdown(servers)
    log_event("shutdown", module=MODULE, reason=outcome["reason"], status=outcome["status"])
    return outcome["status"]


if __name__ == "__main__":
    warnings.warn(
        "'python -m sglang.launch_server' is still supported, but "
        "'sglang serve' is the recommended entrypoint.\n"
        "  Example: sglang serve --model-path <model> [options]",
        UserWarning,
        stacklevel=1,
    )
    sys.exit(main())
