#!/usr/bin/env bash
# README's first command: from a fresh Debian 12 or Ubuntu 24.04 machine (root) to a verified PD endpoint on the
# sandbox, a simulated copy of the reference cluster on this machine. Safe to run again: every step converges.
#
#   sudo bash quickstart.sh
#
# 1. host packages and .venv (.ci/setup);  2. the sandbox's hosts (pdfleet sandbox up: the image is built once,
# about a minute);  3. deploys/pd.py from fresh hosts: host layer with its reboots, runtime, weights from the
# sandbox's stand-in hub, DeepGEMM, units, router, and the health gate through the router;  4. the endpoint's URL
# and one real answer through the router.
set -euo pipefail
cd "$(dirname "$0")"

.ci/setup

printf '\n==> %s\n' "the sandbox's hosts (pdfleet sandbox up)"
.venv/bin/pdfleet sandbox up

printf '\n==> %s\n' "converge: pyinfra -y inventories/sandbox.py deploys/pd.py"
.venv/bin/pyinfra -y inventories/sandbox.py deploys/pd.py

printf '\n==> %s\n' "the endpoint"
.venv/bin/python - <<'PY'
import json
import urllib.request

from pdfleet.inventory import load
from pdfleet.serving import plan

cluster = load("inventories/sandbox.py")
url = plan(cluster).router.url
body = {"model": cluster.model.served_name, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
request = urllib.request.Request(
    f"{url}/v1/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
)
with urllib.request.urlopen(request, timeout=60) as response:
    answer = json.load(response)
print(f"endpoint: {url}/v1  (OpenAI API; model {cluster.model.served_name!r})")
print(f"asked 'Say hello.', answered: {answer['choices'][0]['message']['content']!r}")
print("stop everything: sudo .venv/bin/pdfleet sandbox down")
PY
