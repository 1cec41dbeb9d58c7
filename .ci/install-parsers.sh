#!/usr/bin/env bash
# Parser environments for checking generated command lines with the real programs' own parsers (CPU only):
#
#   .cache/parsers/venv                    Python 3.11 venv with the pinned imports SGLang's ServerArgs needs
#   .cache/parsers/sglang-<VERSION>        `pip install --no-deps --target` of each SGLang version
#   .cache/parsers/smg-venv                the smg router (its launcher's argparse), pinned
#   .cache/parsers/bench-venv              the bench client pdfleet bench installs on nodes (pdfleet/benchclient.py)
#
# Usage: .ci/install-parsers.sh [SGLANG_VERSION ...]     (default: 0.5.6.post2 0.5.23)
# Check: PYTHONPATH=.cache/parsers/sglang-0.5.23 .cache/parsers/venv/bin/python tests/tools/sglang_argcheck.py < cases.json
#
# Idempotent: each part leaves a stamp holding what it installed, and a second run with the same pins does nothing.
# Start from scratch with `rm -rf .cache/parsers`. Environment: PDFLEET_PARSERS_PYTHON (default python3.11),
# PDFLEET_PARSERS_SMG=0 skips the smg venv, PDFLEET_PARSERS_BENCH=0 the bench venv.
#
# Why this dependency set (measured with `import sglang.srt.server_args` + ServerArgs.add_cli_args on a CPU machine):
# 0.5.23 imports numpy torch orjson psutil pybase64 requests triton packaging pillow starlette msgspec pydantic pyzmq
# tqdm ipython aiohttp; 0.5.6.post2 also safetensors fastapi openai partial_json_parser huggingface_hub transformers
# dill sentencepiece and torchvision (sglang/srt/multimodal/internvl_utils.py: `import torchvision.transforms`, reached
# from sglang.srt.configs). PyPI's torchvision needs a CUDA build of torch (its _C.so links libc10_cuda.so), so the
# CPU torch 2.13.0 cannot serve 0.5.6.post2; torch 2.14.1 + torchvision 0.29.1 (CUDA 13 builds, which import fine
# without a GPU) serve both versions from this one venv. The list below is the full `pip freeze --all` of that venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache/parsers"
VENV="$CACHE/venv"
SMG_VENV="$CACHE/smg-venv"
LOGS="$CACHE/logs"
PY="${PDFLEET_PARSERS_PYTHON:-python3.11}"
if (($#)); then VERSIONS=("$@"); else VERSIONS=(0.5.6.post2 0.5.23); fi

read -r -d '' PINS <<'EOF' || true
aiohappyeyeballs==2.7.1
aiohttp==3.14.5
aiosignal==1.4.0
annotated-doc==0.0.7
annotated-types==0.8.0
anyio==4.16.0
asttokens==3.0.2
attrs==26.1.0
certifi==2026.10.18
charset-normalizer==3.5.2
click==8.5.1
cuda-bindings==13.5.0
cuda-pathfinder==1.9.0
cuda-toolkit==13.0.3.0
dill==0.4.1
executing==2.3.0
fastapi==0.165.0
filelock==4.2.11
frozenlist==1.8.0
fsspec==2026.9.0
h11==0.16.0
hf-xet==1.8.0
httpcore2==2.16.2
httpx2==2.16.2
huggingface_hub==2.4.0
idna==3.20
ipython==9.18.1
ipython_pygments_lexers==1.1.1
jedi==0.20.1
Jinja2==3.1.6
jiter==0.19.0
markdown-it-py==4.3.0
MarkupSafe==3.0.4
matplotlib-inline==0.2.2
mdurl==0.1.2
mpmath==1.3.0
msgspec==0.22.0
multidict==7.2.1
networkx==3.6.1
numpy==2.4.6
nvidia-cublas==13.1.1.3
nvidia-cuda-cupti==13.0.85
nvidia-cuda-nvrtc==13.0.88
nvidia-cuda-runtime==13.0.96
nvidia-cudnn-cu13==9.24.0.43
nvidia-cufft==12.0.0.61
nvidia-cufile==1.15.1.6
nvidia-curand==10.4.0.35
nvidia-cusolver==12.0.4.66
nvidia-cusparse==12.6.3.3
nvidia-cusparselt-cu13==0.8.1
nvidia-nccl-cu13==2.30.7
nvidia-nvjitlink==13.5.37
nvidia-nvshmem-cu13==3.4.5
nvidia-nvtx==13.0.85
openai==3.54.0
opentelemetry-api==1.45.2
orjson==3.13.0
packaging==26.3
parso==0.8.7
partial-json-parser==0.2.1.1.post7
pexpect==4.9.0
pillow==13.0.0
prompt_toolkit==3.0.53
propcache==0.5.4
psutil==7.2.2
ptyprocess==0.7.0
pure_eval==0.2.4
pybase64==1.5.1
pydantic==2.14.3
pydantic_core==2.50.4
Pygments==2.21.0
PyYAML==6.0.3
pyzmq==27.3.0
regex==2026.11.15
requests==2.34.2
rich==15.0.0
safetensors==0.8.0
sentencepiece==0.2.3
setuptools==84.2.1
shellingham==1.5.4
sniffio==1.3.1
stack-data==0.6.3
starlette==1.10.0
sympy==1.14.0
tokenizers==0.23.3
torch==2.14.1
torchvision==0.29.1
tqdm==4.70.1
traitlets==5.16.1
transformers==5.23.0
triton==3.8.0
truststore==0.10.5
typer==0.29.2
typing-inspection==0.4.5
typing_extensions==4.16.0
urllib3==2.8.0
wcwidth==0.9.4
yarl==1.25.1
EOF

read -r -d '' SMG_PINS <<'EOF' || true
grpcio==1.85.1
grpcio-health-checking==1.85.1
protobuf==7.36.2
PyYAML==6.0.3
setproctitle==1.3.8
smg==1.13.0
typing_extensions==4.16.0
EOF

PIP_FLAGS=(--disable-pip-version-check --no-input --progress-bar off)
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf 'install-parsers: %s\n' "$*"; }

# run LOGNAME CMD...: quiet on success, the log's tail on failure.
run() {
    local log="$LOGS/$1.log"
    shift
    if ! "$@" >"$log" 2>&1; then
        say "FAILED: $* (last lines of $log follow)"
        tail -n 40 "$log" >&2
        exit 1
    fi
}

stamp_ok() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

# ensure_venv DIR: a working venv of $PY at DIR (kept if it already runs that Python).
ensure_venv() {
    local dir="$1" want
    want="$("$PY" -c 'import sys; print(sys.version.split()[0])')"
    if [[ -x "$dir/bin/python" ]] && [[ "$("$dir/bin/python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)" == "$want" ]]; then
        say "venv ${dir#"$ROOT"/} exists (Python $want)"
        return
    fi
    say "creating venv ${dir#"$ROOT"/} (Python $want)"
    rm -rf "$dir"
    run "venv-$(basename "$dir")" "$PY" -m venv "$dir"
}

# 0. Python 3.11 with venv (sglang 0.5.23 ships a cp311 wheel only).
if ! command -v "$PY" >/dev/null; then
    say "FAILED: $PY not found (set PDFLEET_PARSERS_PYTHON to a Python 3.11 interpreter)"
    exit 1
fi
if [[ "$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "3.11" ]]; then
    say "FAILED: $PY is not Python 3.11"
    exit 1
fi
mkdir -p "$CACHE" "$LOGS"
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null; then flock 9; fi
if ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
        say "installing python3.11-venv (Debian)"
        run apt-venv bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11-venv'
    else
        say "FAILED: $PY has no venv/ensurepip (Debian: apt-get install python3.11-venv)"
        exit 1
    fi
fi
PYVER="$("$PY" -c 'import sys; print(sys.version.split()[0])')"

# 1. The shared dependency venv.
want="$(printf 'python %s\n%s\n' "$PYVER" "$PINS" | sha256sum | cut -d' ' -f1)"
if stamp_ok "$VENV/.pdfleet-stamp" "$want"; then
    say "venv .cache/parsers/venv up to date ($(grep -c . <<<"$PINS") pinned packages), nothing to do"
else
    ensure_venv "$VENV"
    printf '%s\n' "$PINS" >"$CACHE/requirements.txt"
    say "installing $(grep -c . <<<"$PINS") pinned packages into .cache/parsers/venv (torch 2.14.1, torchvision 0.29.1, ...; a few minutes the first time)"
    run pip-venv "$VENV/bin/python" -m pip install "${PIP_FLAGS[@]}" --prefer-binary -r "$CACHE/requirements.txt"
    printf '%s' "$want" >"$VENV/.pdfleet-stamp"
    say "venv ready ($(du -sh "$VENV" | cut -f1))"
fi

# 2. Each SGLang version, without its dependencies, in its own directory for PYTHONPATH.
for version in "${VERSIONS[@]}"; do
    target="$CACHE/sglang-$version"
    if stamp_ok "$target/.pdfleet-stamp" "sglang==$version" && [[ -f "$target/sglang/srt/server_args.py" ]]; then
        say "sglang $version already in .cache/parsers/sglang-$version, nothing to do"
        continue
    fi
    say "installing sglang==$version (--no-deps) into .cache/parsers/sglang-$version"
    rm -rf "$target.tmp"
    run "pip-sglang-$version" "$VENV/bin/python" -m pip install "${PIP_FLAGS[@]}" --no-deps --only-binary=:all: \
        --target "$target.tmp" "sglang==$version"
    say "checking that sglang $version's ServerArgs.add_cli_args builds a parser"
    run "smoke-sglang-$version" env PYTHONPATH="$target.tmp" "$VENV/bin/python" -c '
import argparse, sys
import sglang
from sglang.srt.server_args import ServerArgs
parser = argparse.ArgumentParser()
ServerArgs.add_cli_args(parser)
assert sglang.__version__ == sys.argv[1], (sglang.__version__, sys.argv[1])
print(sglang.__version__, len(parser._actions), "arguments")' "$version"
    rm -rf "$target"
    mv "$target.tmp" "$target"
    printf 'sglang==%s' "$version" >"$target/.pdfleet-stamp"
    say "sglang $version ready ($(tail -n 1 "$LOGS/smoke-sglang-$version.log"))"
done

# 3. The smg router's launcher (tests/tools/smg_argcheck.py runs in it).
if [[ "${PDFLEET_PARSERS_SMG:-1}" == "0" ]]; then
    say "smg venv skipped (PDFLEET_PARSERS_SMG=0)"
else
    want="$(printf 'python %s\n%s\n' "$PYVER" "$SMG_PINS" | sha256sum | cut -d' ' -f1)"
    if stamp_ok "$SMG_VENV/.pdfleet-stamp" "$want"; then
        say "smg venv .cache/parsers/smg-venv up to date, nothing to do"
    else
        ensure_venv "$SMG_VENV"
        printf '%s\n' "$SMG_PINS" >"$CACHE/smg-requirements.txt"
        say "installing smg 1.13.0 ($(grep -c . <<<"$SMG_PINS") pinned packages) into .cache/parsers/smg-venv"
        run pip-smg "$SMG_VENV/bin/python" -m pip install "${PIP_FLAGS[@]}" --prefer-binary -r "$CACHE/smg-requirements.txt"
        run smoke-smg "$SMG_VENV/bin/python" -c 'import importlib.metadata as m, smg.launch_router; print("smg", m.version("smg"))'
        printf '%s' "$want" >"$SMG_VENV/.pdfleet-stamp"
        say "smg venv ready ($(tail -n 1 "$LOGS/smoke-smg.log"))"
    fi
fi

# 4. The benchmark client `pdfleet bench` installs on the router's node: exactly its pinned set (pdfleet/benchclient.py,
#    --no-deps, no torch), which tests/test_bench_loopback.py runs against the real router. Not the parser venv: the
#    client keeps SGLang 0.5.6.post2's own transformers pin (4.57.1, with huggingface_hub < 1.0).
BENCH_VENV="$CACHE/bench-venv"
if [[ "${PDFLEET_PARSERS_BENCH:-1}" == "0" ]]; then
    say "bench venv skipped (PDFLEET_PARSERS_BENCH=0)"
else
    BENCH_PINS="$("$PY" "$ROOT/pdfleet/benchclient.py")"
    want="$(printf 'python %s\n%s\n' "$PYVER" "$BENCH_PINS" | sha256sum | cut -d' ' -f1)"
    if stamp_ok "$BENCH_VENV/.pdfleet-stamp" "$want"; then
        say "bench venv .cache/parsers/bench-venv up to date, nothing to do"
    else
        ensure_venv "$BENCH_VENV"
        printf '%s\n' "$BENCH_PINS" >"$CACHE/bench-requirements.txt"
        say "installing the bench client ($(grep -c . <<<"$BENCH_PINS") pinned wheels, --no-deps) into .cache/parsers/bench-venv"
        run pip-bench "$BENCH_VENV/bin/python" -m pip install "${PIP_FLAGS[@]}" --no-deps --only-binary=:all: \
            -r "$CACHE/bench-requirements.txt"
        run smoke-bench env HF_HUB_OFFLINE=1 "$BENCH_VENV/bin/python" -c '
import importlib.metadata as m, sglang.bench_serving
print("sglang.bench_serving", m.version("sglang"), "transformers", m.version("transformers"))'
        printf '%s' "$want" >"$BENCH_VENV/.pdfleet-stamp"
        say "bench venv ready ($(tail -n 1 "$LOGS/smoke-bench.log"))"
    fi
fi
say "done: $(printf 'sglang-%s ' "${VERSIONS[@]}")in .cache/parsers"
