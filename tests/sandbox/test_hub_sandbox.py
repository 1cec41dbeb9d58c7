"""The stand-in hub as `pdfleet sandbox up` runs it: its own namespace and cgroup, listening on 10.77.0.2:8080 only,
its token required, and the weights stager on a sandbox host downloading through it "over the WAN".

The stager runs in a scratch directory of its own on prefill-0 (not the deploy's /models path) and is removed after.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from pdfleet.sandbox.hosts import cgroup_root
from pdfleet.sandbox.hub import checkpoint
from pdfleet.sandbox.paths import HUB_NETNS
from tests.sandbox.conftest import PDFLEET, ROOT, on_host, pdfleet

HUB = ROOT / ".cache/sandbox/hub"
ENDPOINT = "http://10.77.0.2:8080"
REPO = "deepseek-ai/DeepSeek-V3.2"
REVISION = "a7e62ac04ecb2c0a54d736dc46601c5606cf10a6"
SCRATCH = "/root/hub-sandbox-test"


def put(host: str, path: str, content: str, mode: str = "600") -> None:
    result = subprocess.run(
        [PDFLEET, "sandbox", "ssh", host, f"umask 077; mkdir -p $(dirname {path}); cat > {path}; chmod {mode} {path}"],
        input=content,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_hub_runs_alone_in_its_namespace_and_cgroup(sandbox):
    status = pdfleet("sandbox", "status").stdout.splitlines()
    row = next(line.split() for line in status if line.startswith("(hub)"))
    assert row[1] == "10.77.0.2:8080" and row[3] == "running"
    pid = int(row[2])
    assert f"{cgroup_root().name}/hub" in Path(f"/proc/{pid}/cgroup").read_text()
    listening = subprocess.run(
        ["ip", "netns", "exec", HUB_NETNS, "ss", "-Hltn"], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    # The hub and its CDN, another origin as the real hub's is (a hub client stops at the redirect to it).
    assert sorted(line.split()[3] for line in listening if line.strip()) == ["10.77.0.2:8080", "10.77.0.2:8081"]
    token = (HUB / "token").read_text().strip()
    assert token.startswith("hf_") and (HUB / "token").stat().st_mode & 0o777 == 0o600


def test_a_host_stages_the_model_through_the_hub(sandbox):
    HUB.joinpath("requests.jsonl").write_text("")  # count from here
    stager = (ROOT / "pdfleet/onhost/weights.py").read_text()
    put("prefill-0", f"{SCRATCH}/pdfleet-weights.py", stager, mode="755")
    put("prefill-0", f"{SCRATCH}/hub-token", (HUB / "token").read_text())
    cfg = {
        "node": "prefill-0",
        "repo": REPO,
        "revision": REVISION,
        "path": f"{SCRATCH}/model",
        "endpoint": ENDPOINT,
        "token_file": f"{SCRATCH}/hub-token",
        "peers": [],
        "checksums": True,
        "workers": 4,
        "free_margin_bytes": 0,
    }
    put("prefill-0", f"{SCRATCH}/config.json", json.dumps(cfg))
    try:
        staged = on_host("prefill-0", f"/usr/bin/python3 {SCRATCH}/pdfleet-weights.py stage {SCRATCH}/config.json")
        assert f"staged {REPO}@{REVISION[:12]}" in staged.stdout
        assert (
            on_host("prefill-0", f"python3 {SCRATCH}/pdfleet-weights.py verify {SCRATCH}/config.json").returncode == 0
        )
        log = [json.loads(line) for line in HUB.joinpath("requests.jsonl").read_text().splitlines()]
        files = checkpoint(REPO, REVISION)
        fetched = sorted(r["file"] for r in log if r["kind"] in ("resolve", "cdn") and r["status"] == 200)
        assert fetched == sorted(files)
        assert {r["client"] for r in log} == {"10.77.0.11"}
        assert not any(r["auth"] for r in log if r["kind"] == "cdn")
        listing = on_host("prefill-0", f"cd {SCRATCH}/model && find . -type f -printf '%P %s\\n'").stdout
        sizes = dict(line.rsplit(" ", 1) for line in listing.splitlines())
        assert {k: int(v) for k, v in sizes.items() if not k.startswith(".pdfleet/")} == {
            k: len(v) for k, v in files.items()
        }
        # No token, no entry.
        refused = on_host(
            "prefill-1",
            f"python3 -c \"import urllib.request as u; u.urlopen('{ENDPOINT}/api/models/{REPO}/revision/{REVISION}')\"",
            check=False,
        )
        assert refused.returncode != 0 and "401" in refused.stderr
    finally:
        on_host("prefill-0", f"rm -rf {SCRATCH}", check=False)
