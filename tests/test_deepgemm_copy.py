"""The DeepGEMM cache copy (roles/deepgemm.copy_script), run by a real shell against a real rsync daemon: a source
still compiling is waited for, a current one is copied and stamped, a silent one (a dead node) makes a single-node
instance compile its own and a multi-node instance fail at once, a refusing share fails with rsync's message."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from roles.deepgemm import copy_script
from tests.rsyncd import free_port, rsync_daemon

KEY = "sglang 0.5.23 | venv | a7e62ac04ecb | tp8 dp8 | sm90\n"


@pytest.fixture
def node(tmp_path):
    """This node's key file, an empty cache, scratch space and a `logger` that records instead of writing this
    machine's journal."""
    root = tmp_path / "node"
    (root / "etc").mkdir(parents=True)
    key_path = root / "etc/prefill-1.deepgemm-key"
    key_path.write_text(KEY)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "logger").write_text(f'#!/bin/sh\necho "$@" >> {root}/journal\n')
    (bin_dir / "logger").chmod(0o755)
    return root, key_path


def source_cache(tmp_path, key: str | None) -> Path:
    """The source's cache for this key: a directory named as this node's (`cache`) under the share's root, beside
    the cache of another key that must not be copied."""
    (tmp_path / "source-root/other-key").mkdir(parents=True)
    (tmp_path / "source-root/other-key/pdfleet.key").write_text("another version's key\n")
    cache = tmp_path / "source-root/cache"
    (cache / "cache/kernels").mkdir(parents=True)
    (cache / "cache/kernels/gemm_fp8_0001.cubin").write_bytes(b"\x7fELF kernel" * 100)
    if key is not None:
        (cache / "pdfleet.key").write_text(key)
    return cache


def run_copy(node, port: int, timeout: int = 20, compile_alone: bool = True, silent_seconds: int = 3):
    root, key_path = node
    script = copy_script(
        cache=str(root / "cache"),
        key_path=str(key_path),
        source="prefill-0",
        address="127.0.0.1",
        port=port,
        timeout=timeout,
        compile_alone=compile_alone,
        silent_seconds=silent_seconds,
        scratch=str(root / "run"),
    )
    env = {**os.environ, "PATH": f"{root / 'bin'}:{os.environ['PATH']}"}
    started = time.monotonic()
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    return result, time.monotonic() - started


def test_a_current_source_is_copied_and_the_copy_stamped(tmp_path, node):
    cache = source_cache(tmp_path, KEY)
    with rsync_daemon(tmp_path, {"deep-gemm": cache.parent}) as port:
        result, _ = run_copy(node, port)
    assert result.returncode == 0, result.stderr
    copied = node[0] / "cache"
    assert not (node[0] / "other-key").exists() and sorted(p.name for p in copied.iterdir()) == ["cache", "pdfleet.key"]
    assert (copied / "cache/kernels/gemm_fp8_0001.cubin").read_bytes() == b"\x7fELF kernel" * 100
    assert (copied / "pdfleet.key").read_text() == KEY


def test_a_source_still_compiling_is_waited_for(tmp_path, node):
    cache = source_cache(tmp_path, "an older key\n")
    with rsync_daemon(tmp_path, {"deep-gemm": cache.parent}) as port:
        # The source finishes compiling 4 s in: longer than the silence allowed, but it answers all along.
        finish = threading.Timer(4, lambda: (cache / "pdfleet.key").write_text(KEY))
        finish.start()
        try:
            result, took = run_copy(node, port, silent_seconds=2)
        finally:
            finish.cancel()
    assert result.returncode == 0, result.stderr
    assert took >= 4
    assert (node[0] / "cache/pdfleet.key").read_text() == KEY


def test_a_source_that_never_gets_this_key_fails_after_the_timeout(tmp_path, node):
    cache = source_cache(tmp_path, "another key\n")
    with rsync_daemon(tmp_path, {"deep-gemm": cache.parent}) as port:
        result, took = run_copy(node, port, timeout=3, silent_seconds=1)
    assert result.returncode == 1
    assert "pdfleet: the DeepGEMM cache on prefill-0 was not built for this key within 3 s" in result.stderr
    assert not (node[0] / "cache/pdfleet.key").exists()


def test_a_silent_source_makes_a_single_node_instance_compile_its_own(node):
    closed = free_port()  # nothing listens: the source node is down
    result, took = run_copy(node, closed, timeout=600, compile_alone=True, silent_seconds=3)
    assert result.returncode == 0, result.stderr
    message = (
        f"pdfleet: the DeepGEMM cache's source prefill-0 (127.0.0.1:{closed}) did not answer for 3 s; "
        "this node compiles its own cache when its server starts"
    )
    assert result.stderr.strip() == message
    assert took < 30  # not the 600 s timeout
    # Left unstamped, so the precompile unit compiles; the journal says why.
    assert not (node[0] / "cache/pdfleet.key").exists()
    assert (node[0] / "journal").read_text().strip() == f"-t pdfleet {message}"


def test_a_silent_source_fails_a_multi_node_instance_at_once(node):
    closed = free_port()
    result, took = run_copy(node, closed, timeout=600, compile_alone=False, silent_seconds=2)
    assert result.returncode == 1
    assert (
        f"the DeepGEMM cache's source prefill-0 (127.0.0.1:{closed}) did not answer for 2 s; this instance's nodes "
        "compile together, so bring prefill-0 back first" in result.stderr
    )
    assert took < 30
    assert not (node[0] / "journal").exists()


def test_a_share_without_the_cache_module_fails_with_rsyncs_message(tmp_path, node):
    with rsync_daemon(tmp_path, {"weights": tmp_path}) as port:
        result, took = run_copy(node, port, timeout=600)
    assert result.returncode == 1
    assert f"pdfleet: the DeepGEMM cache's source prefill-0 (127.0.0.1:{port}) refused the copy:" in result.stderr
    assert "Unknown module 'deep-gemm'" in result.stderr
    assert took < 30
