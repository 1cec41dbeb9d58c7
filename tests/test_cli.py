"""The pdfleet CLI and the pyinfra inventory, run as a person runs them (real processes, real git)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*args: str, cwd: Path = ROOT, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*args], cwd=cwd, capture_output=True, text=True, check=False, **kw)


def test_check_prints_the_topology():
    result = run(str(BIN / "pdfleet"), "check", "inventories/prod.py")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "inventories/prod.yaml: cluster prod is valid: 4 nodes, 32 GPUs, SGLang 0.5.23, "
        "deepseek-ai/DeepSeek-V3.2@a7e62ac04ecb, runtime venv"
    )
    assert any(line.split()[:6] == ["decode-1", "10.10.0.14", "8xH200", "decode", "decode", "1"] for line in lines)
    assert any(
        line.split()
        == ["decode", "decode", "decode-0,decode-1", "16", "16", "16", "16", "8055", "-", "10.10.0.13:5757"]
        for line in lines
    )


def test_invalid_inventory_exits_2_with_problems_and_no_traceback(tmp_path):
    text = (ROOT / "inventories/prod.yaml").read_text().replace("node: prefill-0 ", "node: prefill-9 ")
    (tmp_path / "bad.yaml").write_text(text)
    shutil.copy(ROOT / "inventories/prod.py", tmp_path / "bad.py")
    result = run(str(BIN / "pdfleet"), "check", "bad.py", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "pdfleet: bad.yaml is not a valid inventory; nothing was contacted:",
        f"  bad.yaml:{text.splitlines().index(next(x for x in text.splitlines() if 'prefill-9' in x)) + 1}: "
        "router: field 'node': found 'prefill-9', expected a node listed under nodes: "
        "prefill-0, prefill-1, decode-0, decode-1",
    ]
    # pyinfra itself stops at the inventory, before connecting anything.
    result = run(str(BIN / "pyinfra"), "-y", "bad.py", "exec", "--", "true", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "router: field 'node': found 'prefill-9'" in result.stderr
    assert "Connecting" not in result.stdout + result.stderr


def test_plan_json_shape():
    result = run(str(BIN / "pdfleet"), "plan", "inventories/prod.py", "--json", "--sglang-version", "0.5.6.post2")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["sglang_version"] == "0.5.6.post2"
    assert [(n["host"], n["role"], n["instance"], n["rank"]) for n in doc["nodes"]] == [
        ("prefill-0", "prefill", "prefill-0", 0),
        ("prefill-1", "prefill", "prefill-1", 0),
        ("decode-0", "decode", "decode", 0),
        ("decode-1", "decode", "decode", 1),
    ]
    node = doc["nodes"][3]
    # the venv of its pinned set, named by version and digest, beside any other set (pdfleet/runtimeplan.py)
    assert re.fullmatch(r"/opt/pdfleet/sglang/sglang-0\.5\.6\.post2-[0-9a-f]{12}/bin/python3", node["argv"][0])
    assert node["argv"][1:3] == ["-m", "sglang.launch_server"]
    assert "--enable-dp-attention" in node["argv"]
    assert node["precompile_argv"][-2:] == ["--timeout", "3600"]
    assert node["env"]["NCCL_IB_GID_INDEX"] == "3"
    paths = [f["path"] for f in node["files"]]
    assert paths == sorted(paths) and len(paths) == 30  # 4 of them monitoring, 3 the firewall
    assert "/etc/systemd/system/sglang-decode-peer-watch.service" in paths  # a rank of a multi-node instance
    assert {
        "/etc/pdfleet/decode.deepgemm-key",
        "/etc/pdfleet/decode.env",
        "/etc/systemd/system/sglang-decode-precompile.service",
        "/etc/systemd/system/sglang-decode.service",
        "/etc/modprobe.d/pdfleet-deepep.conf",
        "/etc/apt/preferences.d/pdfleet-nvidia.pref",
    } <= set(paths)
    assert doc["router"]["host"] == "prefill-0" and doc["router"]["url"] == "http://10.10.0.11:8000"


def test_plan_for_a_person_and_an_unknown_version():
    result = run(str(BIN / "pdfleet"), "plan", "inventories/prod.py")
    assert result.returncode == 0
    assert "== decode-1 (10.10.0.14): decode instance decode, rank 1 of 2, unit sglang-decode.service" in result.stdout
    result = run(str(BIN / "pdfleet"), "plan", "inventories/prod.py", "--sglang-version", "0.4.0")
    assert result.returncode == 2
    assert "sglang: field 'version': found '0.4.0', expected one of 0.5.6.post2, 0.5.23" in result.stderr


def test_pyinfra_debug_inventory_shows_groups_and_host_data():
    result = run(str(BIN / "pyinfra"), "inventories/prod.py", "debug-inventory")
    assert result.returncode == 0, result.stderr
    out = result.stderr  # pyinfra logs debug-inventory to stderr
    assert "[prefill-0] \n--> Groups: prefill, router, prod" in out
    assert "[decode-1]  \n--> Groups: decode, prod" in out
    assert '"pdfleet_rank": 1' in out and '"ssh_hostname": "10.10.0.14"' in out


def git(repo: Path, *args: str) -> None:
    result = run("git", "-c", "user.email=t@t", "-c", "user.name=t", *args, cwd=repo)
    assert result.returncode == 0, result.stderr


def test_diff_against_a_git_revision(tmp_path):
    repo = tmp_path / "repo"
    for part in ("pdfleet", "templates", "inventories"):
        shutil.copytree(ROOT / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    env = {**os.environ, "PYTHONPATH": str(repo)}
    pdfleet = [sys.executable, "-m", "pdfleet.cli"]

    unchanged = run(*pdfleet, "diff", "inventories/prod.py", "--against", "HEAD", cwd=repo, env=env)
    assert (unchanged.returncode, unchanged.stdout, unchanged.stderr) == (0, "", "")

    yaml_path = repo / "inventories/prod.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("traffic_class: 98", "traffic_class: 106"))
    changed = run(*pdfleet, "diff", "inventories/prod.py", "--against", "HEAD", cwd=repo, env=env)
    assert changed.returncode == 1
    files = [line[6:] for line in changed.stdout.splitlines() if line.startswith("+++ b/")]
    assert files == [
        f"{h}/etc/pdfleet/{i}.env"
        for h, i in [
            ("decode-0", "decode"),
            ("decode-1", "decode"),
            ("prefill-0", "prefill-0"),
            ("prefill-1", "prefill-1"),
        ]
    ]
    removed = [line for line in changed.stdout.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line for line in changed.stdout.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert sorted(set(removed)) == ["-MC_IB_TC=98", "-NCCL_IB_TC=98", "-NVSHMEM_IB_TRAFFIC_CLASS=98"]
    assert sorted(set(added)) == ["+MC_IB_TC=106", "+NCCL_IB_TC=106", "+NVSHMEM_IB_TRAFFIC_CLASS=106"]
    assert changed.stderr == "# 4 file(s) differ on 4 host(s): decode-0, decode-1, prefill-0, prefill-1\n"

    bad_rev = run(*pdfleet, "diff", "inventories/prod.py", "--against", "no-such-rev", cwd=repo, env=env)
    assert bad_rev.returncode == 2 and "git archive" in bad_rev.stderr


def test_sandbox_ssh_refuses_a_host_that_is_not_running(tmp_path):
    """Without its bridge a sandbox address would be routed off this machine: no connection is even tried."""
    from pdfleet.synthetic import inventory_document, write_inventory

    text = json.dumps(inventory_document(prefill=[1], decode=[1])).replace("prefill-0", "idle-0")
    inventory = write_inventory(tmp_path, json.loads(text)).with_suffix(".yaml")
    result = run(str(BIN / "pdfleet"), "sandbox", "ssh", "--inventory", str(inventory), "idle-0", "true")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "pdfleet sandbox: host 'idle-0' is not running (pdfleet sandbox up)\n"
