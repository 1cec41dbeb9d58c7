"""NCCL all-reduce bus bandwidth across one node's GPUs, through PyTorch: for nodes without nccl-tests.

Self-contained (standard library + torch), because the preflight sends this file's text to the node and runs it
there with `python3 -c` (roles.facts.AllreduceBandwidth); it can also be run by hand:

    python3 pdfleet/allreduce_bench.py [--gpus N] [--sizes-mib 8,64,256,1024,4096] [--iterations 20]

One process per GPU (this script starts them again with --rank), NCCL through torch.distributed, bf16 tensors,
in-place all-reduce (sum). Per size: 5 warm-up all-reduces, then ITERATIONS back-to-back, each timed by CUDA
events on its rank's stream; an iteration's time is the slowest rank's; the median iteration counts.
algbw = bytes / time, busbw = algbw * 2 * (n - 1) / n (nccl-tests' definition for all-reduce), in GB/s (1e9).
Before timing, one all-reduce of (rank + 1) checks the sum on every rank.

NVLink SHARP (multicast) is off unless the environment says otherwise: the preflight's threshold was measured
with it off (NCCL_NVLS_ENABLE=0), and on shared machines multicast must stay off.

Prints one JSON object on stdout: {"status": "ok", "world": N, "results": [{size_mb, time_us, algbw_gbs,
busbw_gbs}...]}, or {"status": "unavailable" | "no-gpus" | "error", "reason": "..."}; exit status 0 either way.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
WARMUP = 5
MIB = 1 << 20


def bus_bandwidth(size_bytes: int, seconds: float, world: int) -> tuple[float, float]:
    """(algbw, busbw) in GB/s of one all-reduce of size_bytes over world ranks that took seconds."""
    algbw = size_bytes / seconds / 1e9
    return algbw, algbw * 2 * (world - 1) / world


def _emit(payload: dict) -> None:
    print(json.dumps(payload), flush=True)


def _worker(args) -> None:
    import torch
    import torch.distributed as dist

    rank, world = args.rank, args.gpus
    torch.cuda.set_device(rank)
    device = torch.device("cuda", rank)
    dist.init_process_group(
        "nccl", init_method=f"tcp://127.0.0.1:{args.port}", rank=rank, world_size=world, device_id=device
    )
    check = torch.full((1024,), float(rank + 1), dtype=torch.bfloat16, device=device)
    dist.all_reduce(check)
    expected = world * (world + 1) / 2
    if not bool((check == expected).all()):
        raise RuntimeError(f"rank {rank}: all-reduce sum {check[0].item()} != {expected}")
    results = []
    for size_mib in args.sizes:
        elements = size_mib * MIB // 2  # bf16
        data = torch.zeros(elements, dtype=torch.bfloat16, device=device)
        for _ in range(WARMUP):
            dist.all_reduce(data)
        events = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(args.iterations)
        ]
        torch.cuda.synchronize()
        for start, end in events:
            start.record()
            dist.all_reduce(data)
            end.record()
        torch.cuda.synchronize()
        times = torch.tensor([s.elapsed_time(e) / 1e3 for s, e in events], dtype=torch.float64, device=device)
        dist.all_reduce(times, op=dist.ReduceOp.MAX)  # an iteration lasts as long as its slowest rank
        seconds = statistics.median(times.tolist())
        algbw, busbw = bus_bandwidth(elements * 2, seconds, world)
        results.append({"size_mb": size_mib, "time_us": seconds * 1e6, "algbw_gbs": algbw, "busbw_gbs": busbw})
        del data
        torch.cuda.empty_cache()
    dist.destroy_process_group()
    if rank == 0:
        _emit({"status": "ok", "world": world, "results": results})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args) -> dict:
    try:
        import torch
    except Exception as exc:  # not installed, or broken: nothing to measure with
        return {"status": "unavailable", "reason": f"torch not importable ({type(exc).__name__}: {exc})"}
    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        return {"status": "no-gpus", "reason": f"torch {torch.__version__} sees no CUDA device"}
    world = args.gpus or torch.cuda.device_count()
    if world > torch.cuda.device_count():
        return {"status": "no-gpus", "reason": f"asked for {world} GPUs, CUDA sees {torch.cuda.device_count()}"}
    if world < 2:
        return {"status": "unavailable", "reason": "one GPU: nothing to all-reduce across"}
    # Start this same program once per GPU: its own interpreter arguments (a file, -m module, or -c text) again.
    prefix = sys.orig_argv[1 : len(sys.orig_argv) - len(sys.argv) + 1]
    port = _free_port()
    env = {**os.environ, **{k: os.environ.get(k, v) for k, v in MULTICAST_OFF.items()}}
    common = ["--gpus", str(world), "--port", str(port), "--iterations", str(args.iterations)]
    common += ["--sizes-mib", ",".join(str(s) for s in args.sizes)]
    procs = [
        subprocess.Popen(
            [sys.executable, *prefix, *common, "--rank", str(rank)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(world)
    ]
    deadline = time.monotonic() + args.timeout
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=max(1.0, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        return {"status": "error", "reason": f"the all-reduce did not finish in {args.timeout} s"}
    for rank, (proc, (_, err)) in enumerate(zip(procs, outputs, strict=True)):
        if proc.returncode != 0:
            lines = [line for line in err.strip().splitlines() if line.strip()]
            return {"status": "error", "reason": f"rank {rank} exited {proc.returncode}: {lines[-1] if lines else ''}"}
    for line in outputs[0][0].splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            result["nccl_nvls_enable"] = env.get("NCCL_NVLS_ENABLE")
            result["torch"] = torch.__version__
            result["nccl"] = ".".join(str(p) for p in torch.cuda.nccl.version())
            return result
    return {"status": "error", "reason": "rank 0 printed no result"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, default=0, help="GPUs to use (default: every GPU CUDA sees)")
    parser.add_argument(
        "--sizes-mib",
        dest="sizes",
        default="8,64,256,1024,4096",
        type=lambda s: [int(x) for x in s.split(",")],
        help="message sizes in MiB, comma-separated",
    )
    parser.add_argument("--iterations", type=int, default=20, help="timed all-reduces per size")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before the measurement is stopped")
    parser.add_argument("--rank", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rank is not None:
        _worker(args)
        return
    try:
        _emit(_launch(args))
    except Exception as exc:  # whatever breaks is a reading for the preflight, not a crash
        _emit({"status": "error", "reason": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    main()


def remote_command(pythons: list[str], gpus: int, sizes_mib: list[int], iterations: int, timeout: int) -> str:
    """A shell command that runs this file's text on a node with the first of `pythons` found there."""
    import base64
    import shlex
    from pathlib import Path

    encoded = base64.b64encode(Path(__file__).read_text().encode()).decode()
    code = shlex.quote(f'import base64;exec(base64.b64decode("{encoded}").decode())')
    args = f"--gpus {int(gpus)} --sizes-mib {','.join(str(int(s)) for s in sizes_mib)}"
    args += f" --iterations {int(iterations)} --timeout {int(timeout)}"
    candidates = " ".join(shlex.quote(p) for p in pythons)
    unavailable = json.dumps({"status": "unavailable", "reason": f"no Python on the node ({', '.join(pythons)})"})
    return (
        f'for py in {candidates}; do if command -v "$py" >/dev/null 2>&1; then '
        f'"$py" -c {code} {args} 2>&1; exit 0; fi; done; echo {shlex.quote(unavailable)}'
    )


def parse_output(text: str) -> dict:
    """The JSON object the measurement printed (its last JSON line), or an error reading."""
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    tail = [line for line in text.strip().splitlines() if line.strip()]
    return {"status": "error", "reason": f"no result printed{': ' + tail[-1] if tail else ''}"}
