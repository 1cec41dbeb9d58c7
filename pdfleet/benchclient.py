"""The benchmark client `pdfleet bench` installs on the router's node: SGLang's own `sglang.bench_serving` at
0.5.6.post2, in a venv of its own, from one pinned wheel set. Standard library only: .ci/install-parsers.sh reads
the same set (`python3 pdfleet/benchclient.py`) to build the test copy, so what the tests run is what nodes run.

Why this set:

* `sglang==0.5.6.post2`, installed without its dependencies. The version GPUStack's published table was measured
  with (server side). Up to 0.5.10 the wheel is `py3-none-any` and `python -m sglang.bench_serving` imports no
  torch; from 0.5.11 `import sglang` pulls torch (shared/reference/monitoring-and-bench.md, "Install weight").
* What `sglang.bench_serving` and `import sglang` need at import time (read from the 0.5.6.post2 sources): aiohttp,
  numpy, requests, tqdm, transformers, pybase64, pillow, datasets (imported at the top although only some datasets
  use it), IPython and pydantic (`sglang.utils`), plus their dependencies.
* transformers at SGLang 0.5.6.post2's own pin, 4.57.1: the client counts prompt tokens with the model's tokenizer,
  as the server does. (Some transformers 5.x releases load DeepSeek's `LlamaTokenizerFast` config with a Metaspace
  pre-tokenizer and drop every space, huggingface/transformers#45488: the counts would be wrong.) That pin holds
  huggingface_hub below 1.0 and so datasets at 5.0.1.
* Every other version is what pip's resolver picked for these on 2026-12 (CPython 3.11 and 3.12 wheels exist for
  each, manylinux_2_28 at most: Debian 12, Ubuntu 24.04). Installed with `--no-deps`: the venv holds exactly this
  list, nothing resolved on the node, so a local index (runtime.index_url) needs exactly these wheels.

    python3 pdfleet/benchclient.py           # the requirement lines, one per wheel
"""

from __future__ import annotations

import re
import sys

CLIENT = "sglang"
CLIENT_VERSION = "0.5.6.post2"
# On the router's node: the venv, its requirement list and the runner (pdfleet/benchrun.py), side by side (a venv
# that differs from the list is synced without touching the others).
HOME = "/opt/pdfleet/bench"
VENV = f"{HOME}/venv"
REQUIREMENTS = f"{HOME}/requirements.txt"
RUNNER = f"{HOME}/pdfleet-bench-run"
# Where runs leave their files on the node (one directory per run), and the ShareGPT file looked for by default.
STATE_DIR = "/var/lib/pdfleet/bench"
DATASET = f"{STATE_DIR}/ShareGPT_V3_unfiltered_cleaned_split.json"

WHEELS: dict[str, str] = {
    "aiohappyeyeballs": "2.7.1",
    "aiohttp": "3.14.5",
    "aiosignal": "1.4.0",
    "annotated-types": "0.8.0",
    "anyio": "4.16.0",
    "asttokens": "3.0.2",
    "attrs": "26.1.0",
    "certifi": "2026.10.19.post1",
    "charset-normalizer": "3.5.3",
    "datasets": "5.0.1",
    "dill": "0.4.1",
    "executing": "2.3.0",
    "filelock": "4.3.2",
    "frozenlist": "1.8.0",
    "fsspec": "2026.6.0",
    "h11": "0.16.0",
    "hf-xet": "1.8.0",
    "httpcore": "1.0.9",
    "httpx": "0.29.0",
    "huggingface-hub": "0.36.2",
    "idna": "3.21",
    "ipython": "9.19.1",
    "ipython-pygments-lexers": "1.1.1",
    "jedi": "0.20.1",
    "matplotlib-inline": "0.2.2",
    "multidict": "7.2.1",
    "multiprocess": "0.70.19",
    "numpy": "2.4.6",
    "packaging": "26.4",
    "pandas": "3.1.1",
    "parso": "0.8.7",
    "pexpect": "4.9.0",
    "pillow": "13.0.0",
    "prompt-toolkit": "3.0.53",
    "propcache": "0.5.4",
    "psutil": "7.2.2",
    "ptyprocess": "0.7.0",
    "pure-eval": "0.2.4",
    "pyarrow": "26.0.1",
    "pybase64": "1.5.1",
    "pydantic": "2.14.4",
    "pydantic-core": "2.50.5",
    "pygments": "2.21.0",
    "python-dateutil": "4.0.0",
    "pyyaml": "6.0.4",
    "regex": "2026.12.2",
    "requests": "2.34.2",
    "safetensors": "0.8.0",
    CLIENT: CLIENT_VERSION,
    "stack-data": "0.6.3",
    "tokenizers": "0.22.2",
    "tqdm": "4.70.1",
    "traitlets": "5.16.1",
    "transformers": "4.57.1",
    "typing-extensions": "4.16.0",
    "typing-inspection": "0.4.5",
    "tzdata": "2026.6",
    "urllib3": "2.8.0",
    "wcwidth": "0.9.5",
    "xxhash": "4.1.0",
    "yarl": "1.25.1",
}


def normalize(name: str) -> str:
    """PEP 503 project name normalization (as pdfleet.runtimeplan.normalize, repeated here to stay stdlib only)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> list[str]:
    return [f"{name}=={version}" for name, version in sorted(WHEELS.items())]


if __name__ == "__main__":
    sys.stdout.write("".join(line + "\n" for line in requirements()))
