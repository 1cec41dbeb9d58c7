"""The on-host weights stager (pdfleet/onhost/weights.py), run as the nodes run it: a subprocess with a config file,
against the stand-in hub in-process on 127.0.0.1 and, for peer copies, a real `rsync --daemon` on 127.0.0.1.

What each test proves is read from the outside: the bytes on disk against the hub's checkpoint, the stamp, the
hub's request log (what was fetched, by whom, with which headers), the exit code and the last stderr line.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pdfleet.sandbox.hub import Hub, checkpoint, start_in_thread
from tests.rsyncd import free_port
from tests.rsyncd import rsync_daemon as rsync_daemon_serving

STAGER = Path(__file__).resolve().parents[1] / "pdfleet" / "onhost" / "weights.py"
REPO = "deepseek-ai/DeepSeek-V3.2"
REV = "a7e62ac04ecb2c0a54d736dc46601c5606cf10a6"
REV2 = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "hf_StagerTestToken0123456789abcdefXYZ"
SHARD_BYTES = 256 * 1024
STAMP_KEYS = {"repo", "revision", "files", "sha256", "checksums"}


@pytest.fixture
def hub(tmp_path):
    token_file = tmp_path / "hub-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    server = start_in_thread(
        Hub(
            token=TOKEN,
            log_path=tmp_path / "requests.jsonl",
            knobs_path=tmp_path / "knobs.json",
            shard_bytes=SHARD_BYTES,
            page_size=5,  # the manifest comes in several pages
            revision_shards={REV2: 6},  # the new revision is sharded differently: old shards become stale
        )
    )
    server.token_file = token_file
    yield server
    server.shutdown()
    server.server_close()


def config(hub, tmp_path: Path, name: str = "model", **overrides) -> dict:
    values = {
        "node": "prefill-0",
        "repo": REPO,
        "revision": REV,
        "path": str(tmp_path / name),
        "endpoint": hub.url if hub else None,
        "token_file": str(hub.token_file) if hub else None,
        "peers": [],
        "checksums": False,
        "workers": 4,
        "free_margin_bytes": 0,
    }
    values.update(overrides)
    return values


def run(cfg: dict, tmp_path: Path, command: str = "stage") -> subprocess.CompletedProcess:
    cfg_file = tmp_path / f"config-{cfg['node']}.json"
    cfg_file.write_text(json.dumps(cfg))
    return subprocess.run(
        [sys.executable, str(STAGER), command, str(cfg_file)],
        capture_output=True,
        text=True,
        timeout=120,
        env=stager_env(tmp_path),
    )


def stager_env(tmp_path: Path) -> dict:
    """No proxies (loopback only); TMPDIR in the test's directory, where the stager keeps its lock files."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    return {**env, "TMPDIR": str(tmp_path)}


def requests(hub, since: int = 0) -> list[dict]:
    if not hub.hub.log_path.exists():
        return []
    return [json.loads(line) for line in hub.hub.log_path.read_text().splitlines()][since:]


def fetched_files(log: list[dict]) -> list[str]:
    """Files whose content came over the wire: a regular file's resolve 200/206, an LFS file's CDN 200/206."""
    return sorted(r["file"] for r in log if r["kind"] in ("resolve", "cdn") and r["status"] in (200, 206))


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def model_files(path: Path) -> dict[str, bytes]:
    return {rel: data for rel, data in tree(path).items() if not rel.startswith(".pdfleet/")}


def snapshot(path: Path) -> dict[str, tuple[int, int, str]]:
    return {
        str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def last_error(result: subprocess.CompletedProcess) -> str:
    return result.stderr.strip().splitlines()[-1]


def test_fresh_stage_then_nothing_to_fetch(hub, tmp_path):
    cfg = config(hub, tmp_path)
    result = run(cfg, tmp_path)
    assert result.returncode == 0, result.stderr
    path = Path(cfg["path"])
    expected = checkpoint(REPO, REV, shard_bytes=SHARD_BYTES)
    assert model_files(path) == expected
    assert sorted(tree(path)) == sorted([*expected, ".pdfleet/verified.json", ".pdfleet/files.json"])  # no strays

    stamp = json.loads((path / ".pdfleet/verified.json").read_text())
    assert set(stamp) == STAMP_KEYS
    assert (stamp["repo"], stamp["revision"], stamp["checksums"]) == (REPO, REV, False)
    assert stamp["files"] == {rel: len(data) for rel, data in expected.items()}
    assert stamp["sha256"] == {
        rel: hashlib.sha256(data).hexdigest() for rel, data in expected.items() if rel.endswith(".safetensors")
    }

    log = requests(hub)
    assert fetched_files(log) == sorted(expected)  # each file exactly once
    assert {r["client"] for r in log} == {"127.0.0.1"}
    assert all(r["auth"] for r in log if r["kind"] in ("api", "resolve"))
    assert not any(r["auth"] for r in log if r["kind"] == "cdn")  # the token never follows the redirect
    assert len([r for r in log if r["kind"] == "api"]) == -(-(len(expected) + 1) // 5)  # every manifest page once
    lines = result.stdout.splitlines()
    for rel in expected:
        assert any(line.startswith(f"prefill-0: {rel} ") for line in lines), rel
    assert lines[-1].startswith(f"prefill-0: staged {REPO}@{REV[:12]} at {path}: {len(expected)} files")
    assert f"from {hub.url}" in lines[-1]
    assert TOKEN not in result.stdout + result.stderr

    seen = len(log)
    again = run(cfg, tmp_path)
    assert again.returncode == 0, again.stderr
    assert requests(hub, seen) == []  # nothing fetched, not even the manifest
    assert again.stdout.strip().splitlines()[-1].startswith(f"prefill-0: verified {REPO}@{REV[:12]}")
    checked = run(cfg, tmp_path, "verify")
    assert checked.returncode == 0 and "verified" in checked.stdout


def test_resume_after_a_cut_and_retry_after_a_5xx(hub, tmp_path):
    shard = "model-00002-of-00008.safetensors"
    hub.hub.knobs_path.write_text(
        json.dumps(
            {
                "truncate_after_bytes": 100_000,
                "truncate_count": 1,
                "error_status": 503,
                "error_count": 1,
                "match": shard,
            }
        )
    )
    cfg = config(hub, tmp_path, checksums=True)
    result = run(cfg, tmp_path)
    assert result.returncode == 0, result.stderr
    assert model_files(Path(cfg["path"])) == checkpoint(REPO, REV, shard_bytes=SHARD_BYTES)
    mine = [
        (r["kind"], r["status"], r["range"], r["bytes"], r["truncated"]) for r in requests(hub) if r["file"] == shard
    ]
    assert mine[0][:2] == ("resolve", 503)  # the first attempt failed, and was retried
    assert [t for t in mine if t[0] == "cdn"] == [
        ("cdn", 200, None, 100_000, True),  # cut after 100 kB ...
        ("cdn", 206, "bytes=100000-", SHARD_BYTES - 100_000, False),  # ... resumed there, not restarted
    ]
    assert "retry" in result.stdout


def test_wrong_token_fails_without_printing_it(hub, tmp_path):
    wrong = "hf_WrongTokenDoNotPrintMe987654321"
    bad_token = tmp_path / "wrong-token"
    bad_token.write_text(wrong + "\n")
    cfg = config(hub, tmp_path, token_file=str(bad_token))
    result = run(cfg, tmp_path)
    assert result.returncode == 7
    line = last_error(result)
    assert line.startswith("pdfleet-weights: prefill-0: ") and "401" in line and str(bad_token) in line
    assert wrong not in result.stdout + result.stderr and TOKEN not in result.stdout + result.stderr
    assert not Path(cfg["path"]).exists()


def test_disk_check_failure_touches_nothing(hub, tmp_path):
    cfg = config(hub, tmp_path)
    fresh = run({**cfg, "free_margin_bytes": 10**18}, tmp_path)
    assert fresh.returncode == 5
    line = last_error(fresh)
    assert "prefill-0" in line and cfg["path"] in line and "free" in line and "needed" in line
    assert not Path(cfg["path"]).exists()

    assert run(cfg, tmp_path).returncode == 0
    before = snapshot(Path(cfg["path"]))
    seen = len(requests(hub))
    other = run({**cfg, "revision": REV2, "free_margin_bytes": 10**18}, tmp_path)
    assert other.returncode == 5, other.stderr
    assert snapshot(Path(cfg["path"])) == before  # the old stamp included: it still vouches for REV
    assert fetched_files(requests(hub, seen)) == ["model.safetensors.index.json"]  # the index check only


def test_checksums_catch_a_corrupted_shard(hub, tmp_path):
    cfg = config(hub, tmp_path)
    assert run(cfg, tmp_path).returncode == 0
    shard = Path(cfg["path"]) / "model-00005-of-00008.safetensors"
    stat = shard.stat()
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF  # same size, same mtime: only a checksum can tell
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    assert run(cfg, tmp_path, "verify").returncode == 0  # sizes only: cannot see it
    strict = {**cfg, "checksums": True}
    caught = run(strict, tmp_path, "verify")
    assert caught.returncode == 4
    line = last_error(caught)
    assert shard.name in line and hashlib.sha256(bytes(data)).hexdigest() in line

    seen = len(requests(hub))
    repaired = run(strict, tmp_path)
    assert repaired.returncode == 0, repaired.stderr
    assert fetched_files(requests(hub, seen)) == [shard.name]  # that shard only, the rest hashed and kept
    assert model_files(Path(cfg["path"])) == checkpoint(REPO, REV, shard_bytes=SHARD_BYTES)
    assert json.loads((Path(cfg["path"]) / ".pdfleet/verified.json").read_text())["checksums"] is True
    assert run(strict, tmp_path, "verify").returncode == 0


def test_revision_change_fetches_what_changed_and_removes_stale_files(hub, tmp_path):
    cfg = config(hub, tmp_path)
    assert run(cfg, tmp_path).returncode == 0
    old = checkpoint(REPO, REV, shard_bytes=SHARD_BYTES)
    new = checkpoint(REPO, REV2, shards=6, shard_bytes=SHARD_BYTES)
    seen = len(requests(hub))
    result = run({**cfg, "revision": REV2}, tmp_path)
    assert result.returncode == 0, result.stderr
    path = Path(cfg["path"])
    assert model_files(path) == new
    changed = sorted(rel for rel, data in new.items() if old.get(rel) != data)
    assert "config.json" not in changed and "tokenizer.json" not in changed and "README.md" in changed
    assert fetched_files(requests(hub, seen)) == changed
    for rel in set(old) - set(new):
        assert f"removed {rel}" in result.stdout
    stamp = json.loads((path / ".pdfleet/verified.json").read_text())
    assert stamp["revision"] == REV2 and set(stamp["files"]) == set(new)
    assert sorted(tree(path)) == sorted([*new, ".pdfleet/verified.json", ".pdfleet/files.json"])


@pytest.fixture
def rsync_daemon(tmp_path):
    """A real rsync daemon on 127.0.0.1 serving tmp_path/seed as module `weights`, read only."""
    seed = tmp_path / "seed"
    with rsync_daemon_serving(tmp_path, {"weights": seed}) as port:
        yield seed, port


def test_copy_from_a_peer_without_the_hub(hub, tmp_path, rsync_daemon):
    seed, port = rsync_daemon
    assert run(config(hub, tmp_path, name="seed"), tmp_path).returncode == 0
    seen = len(requests(hub))
    closed = free_port()
    peers = [
        {"name": "decode-9", "address": "127.0.0.1", "port": closed},
        {"name": "prefill-0", "address": "127.0.0.1", "port": port},
    ]
    cfg = config(None, tmp_path, name="copy", node="prefill-1", peers=peers, checksums=True)
    result = run(cfg, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "peer decode-9 skipped: not answering" in result.stdout
    copy = Path(cfg["path"])
    assert model_files(copy) == model_files(seed) == checkpoint(REPO, REV, shard_bytes=SHARD_BYTES)
    assert sorted(tree(copy)) == sorted([*model_files(seed), ".pdfleet/verified.json", ".pdfleet/files.json"])
    ours = json.loads((copy / ".pdfleet/verified.json").read_text())
    theirs = json.loads((seed / ".pdfleet/verified.json").read_text())
    assert set(ours) == STAMP_KEYS and ours == {**theirs, "checksums": True}
    assert requests(hub, seen) == []  # not one request to the hub
    assert "from peer prefill-0 (127.0.0.1)" in result.stdout.splitlines()[-1]
    assert run(cfg, tmp_path, "verify").returncode == 0

    # A node that wants another revision: the peer has the wrong one, there is no hub for it.
    other = run({**cfg, "node": "decode-0", "path": str(tmp_path / "other"), "revision": REV2}, tmp_path)
    assert other.returncode == 6
    line = last_error(other)
    assert line.startswith(f"pdfleet-weights: decode-0: no peer has {REPO}@{REV2[:12]} verified")
    assert f"prefill-0: has {REPO}@{REV[:12]}" in line and "decode-9: not answering" in line
    assert not (tmp_path / "other").exists()


def test_no_source_and_bad_configs(tmp_path):
    cfg = config(None, tmp_path, node="decode-1")
    result = run(cfg, tmp_path)
    assert result.returncode == 6
    assert last_error(result) == (
        f"pdfleet-weights: decode-1: no peer has {REPO}@{REV[:12]} verified (and no hub for this node):"
        " found no peers configured"
    )
    assert run(cfg, tmp_path, "verify").returncode == 3  # not staged
    bad = run({**cfg, "revision": "main"}, tmp_path)
    assert bad.returncode == 2 and "'revision'" in last_error(bad) and "40-hex" in last_error(bad)
    missing = dict(cfg)
    del missing["workers"]
    assert run(missing, tmp_path).returncode == 2


def test_one_stager_per_directory(hub, tmp_path):
    hub.hub.knobs_path.write_text(json.dumps({"rate_bytes_per_s": 1_000_000}))  # a run takes about a second
    cfg = config(hub, tmp_path)
    cfg_file = tmp_path / "config-first.json"
    cfg_file.write_text(json.dumps(cfg))
    first = subprocess.Popen(
        [sys.executable, str(STAGER), "stage", str(cfg_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=stager_env(tmp_path),
    )
    try:
        assert "staging" in first.stdout.readline()  # it holds the lock from before this line
        second = run({**cfg, "node": "prefill-0-again"}, tmp_path)
        assert second.returncode == 9
        assert last_error(second).startswith("pdfleet-weights: prefill-0-again: another pdfleet-weights is staging")
        assert f"pid {first.pid}" in last_error(second)
    finally:
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert model_files(Path(cfg["path"])) == checkpoint(REPO, REV, shard_bytes=SHARD_BYTES)
