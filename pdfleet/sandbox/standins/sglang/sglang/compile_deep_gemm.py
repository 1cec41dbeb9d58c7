"""`python3 -m sglang.compile_deep_gemm ARGS [--timeout N]`: stand-in for SGLang 0.5.23's DeepGEMM precompiler.

Parses exactly what the real one parses (the server's options plus CompileArgs' `--timeout`, int, default 3600;
bad arguments: argparse's message, exit 2), logs event "compile" (argv, environment, cache directory), takes
`compile-seconds` (knob: env SGLANG_STANDIN_COMPILE_SECONDS or /etc/sglang-standin/compile-seconds, default 2) and
fills the DeepGEMM JIT cache the way DeepGEMM lays it out: `<cache>/cache/kernel.<name>.<hash>/kernel.{cu,cubin}`,
each kernel directory written under a temporary name and renamed into place. The cache directory is SGLang's
`SGLANG_DG_CACHE_DIR`, else `$SGLANG_CACHE_DIR/deep_gemm`, else `~/.cache/sglang/deep_gemm`. When the compile time
exceeds --timeout it fails as the real one does ("DeepGEMM Kernels compilation timeout."), exit 1. Logs
"compile_done" with the files at the end. SIGTERM / SIGINT stop it (exit 1, nothing half-written left behind).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

from sglang import _argtable
from sglang._standin import knob_float, log_event

MODULE = "sglang.compile_deep_gemm"
KERNELS = (
    "sm90_fp8_gemm_1d2d",
    "sm90_m_grouped_fp8_gemm_contiguous_1d2d",
    "sm90_m_grouped_fp8_gemm_masked_1d2d",
    "sm90_fp8_mqa_logits",
)


def cache_dir() -> Path:
    if os.environ.get("SGLANG_DG_CACHE_DIR"):
        return Path(os.path.expanduser(os.environ["SGLANG_DG_CACHE_DIR"]))
    base = os.environ.get("SGLANG_CACHE_DIR") or os.path.expanduser("~/.cache/sglang")
    return Path(os.path.expanduser(base)) / "deep_gemm"


def _kernel_files(args) -> dict[str, bytes]:
    shape = "|".join(
        str(x)
        for x in (args.model_path, args.tp_size, args.dp_size, getattr(args, "attn_dp_size", 1), args.moe_a2a_backend)
    )
    files = {}
    for name in KERNELS:
        digest = hashlib.sha256(f"{name}|{shape}".encode()).hexdigest()[:32]
        directory = f"kernel.{name}.{digest}"
        source = f"// sglang stand-in: {name} for {shape}\n".encode()
        files[f"{directory}/kernel.cu"] = source
        files[f"{directory}/kernel.cubin"] = b"\x7fELF-standin-cubin\n" + hashlib.sha256(source).digest() * 64
    return files


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _argtable.parse("compile_deep_gemm", argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            log_event("compile_rejected", module=MODULE, argv=argv, status=exc.code)
        raise
    target = cache_dir()
    seconds = knob_float("compile-seconds", 2)
    log_event(
        "compile",
        module=MODULE,
        executable=sys.executable,
        argv=argv,
        env=dict(os.environ),
        cwd=os.getcwd(),
        cache_dir=str(target),
        seconds=seconds,
        timeout=args.timeout,
    )
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    print("Begin DeepGEMM Kernels compilation...", flush=True)
    if stop.wait(min(seconds, args.timeout)):
        log_event("compile_done", module=MODULE, status=1, error="interrupted")
        return 1
    if seconds > args.timeout:
        message = "DeepGEMM Kernels compilation timeout.\n\nFeel free and please restart the command."
        print(f"TimeoutError: {message}", file=sys.stderr, flush=True)
        log_event("compile_done", module=MODULE, status=1, error="timeout")
        return 1

    written = []
    root = target / "cache"
    root.mkdir(parents=True, exist_ok=True)
    files = _kernel_files(args)
    for directory in sorted({name.split("/", 1)[0] for name in files}):
        final = root / directory
        if final.is_dir():
            written += [str(p) for p in sorted(final.iterdir())]
            continue
        tmp = root / f".{directory}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name, data in files.items():
            if name.startswith(directory + "/"):
                (tmp / name.split("/", 1)[1]).write_bytes(data)
        os.replace(tmp, final)
        written += [str(p) for p in sorted(final.iterdir())]
    print("\nDeepGEMM Kernels compilation finished successfully.", flush=True)
    log_event("compile_done", module=MODULE, status=0, cache_dir=str(target), files=written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
