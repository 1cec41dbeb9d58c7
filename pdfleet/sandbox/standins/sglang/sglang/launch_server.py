"""`python3 -m sglang.launch_server ARGS`: the sandbox's stand-in for SGLang 0.5.23's server (no GPU, no model).

1. Parses ARGS with SGLang 0.5.23's options (sglang/_argtable.py); bad arguments: argparse's message, exit 2
   (logged as event "launch_rejected").
2. Logs event "launch" with argv, the whole environment, pid, cwd (knob `log`, see sglang/_standin.py).
3. Fails like SGLang when an absolute --model-path does not exist (knob require-model-path).
4. Multi-node (--nnodes > 1 with --dist-init-addr): waits for every rank (sglang/_rendezvous.py).
5. Waits `startup-seconds`, then listens: rank 0 the API on --host/--port (+ the bootstrap server on
   --disaggregation-bootstrap-port for prefill), ranks >= 1 a health stub on the same port (sglang/_server.py).
6. SIGTERM / SIGINT: stops cleanly (event "shutdown"), exit 0. Knob nonzero-rank-sigterm=ignore reproduces
   SGLang 0.5.23's ranks >= 1, which log the signal and keep waiting for rank 0's shutdown broadcast.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
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
    outcome = {"status": 0, "reason": None}

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
        stop.set()

    def on_lost(message: str | None):
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
        while not stop.wait(0.5):
            pass

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
