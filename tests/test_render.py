"""The offline render: golden files for prod, determinism, no secrets, every unit passes systemd-analyze verify."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pdfleet.inventory import load
from pdfleet.render import exec_lines, render, systemd_quote, write_tree
from pdfleet.serving import plan
from pdfleet.synthetic import inventory_document, write_inventory
from tests.systemd_verify import verify_units

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests/golden/prod"
PDFLEET = [os.fspath(Path(os.sys.executable).parent / "pdfleet")]


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_prod_render_matches_golden_files(tmp_path):
    write_tree(render(plan(load(ROOT / "inventories/prod.py"))), tmp_path)
    if os.environ.get("PDFLEET_UPDATE_GOLDEN"):
        import shutil

        shutil.rmtree(GOLDEN, ignore_errors=True)
        shutil.copytree(tmp_path, GOLDEN)
    rendered, golden = tree(tmp_path), tree(GOLDEN)
    assert sorted(rendered) == sorted(golden), "files added or missing: PDFLEET_UPDATE_GOLDEN=1 to accept"
    for name in golden:
        assert rendered[name] == golden[name], f"{name} differs from its golden file: PDFLEET_UPDATE_GOLDEN=1 to accept"
    # serving files (with the decode's two peer watches and the router's membership and agent) + per node the host
    # layer's 15, the share's 3 and monitoring's 4 (pins, node exporter, DCGM counters and drop-in) + on the
    # monitoring node Prometheus (configuration, arguments, rules, 5 target files) and Grafana (settings, 2
    # provisioning files, 3 dashboards, its repository)
    assert len(golden) == 21 + 4 * (15 + 3 + 4 + 3) + 8 + 7


def test_render_command_is_byte_identical_across_runs_and_holds_no_secrets(tmp_path):
    env = {**os.environ, "HF_TOKEN": "hf_NeverInARenderedFile123"}
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        result = subprocess.run(
            [*PDFLEET, "render", "inventories/prod.py", "--out", str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"rendered 136 files for 4 hosts of cluster prod into {out}\n"
    assert tree(first) == tree(second)
    assert not any(b"hf_NeverInARenderedFile123" in data for data in tree(first).values())


def test_render_refuses_to_replace_a_directory_it_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = subprocess.run(
        [*PDFLEET, "render", "inventories/prod.py", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "is not an earlier pdfleet render; refusing to replace it" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


def units_by_host(files) -> dict[str, dict[str, str]]:
    return {
        host: {Path(path).name: f.content for path, f in paths.items() if path.endswith(".service")}
        for host, paths in files.items()
    }


@pytest.mark.parametrize("runtime", ["venv", "container"])
def test_every_rendered_unit_passes_systemd_analyze_verify(tmp_path, runtime):
    doc = inventory_document(prefill=[1, 2], decode=[2, 1])
    if runtime == "container":
        doc["runtime"] = {"kind": "container", "image": "lmsysorg/sglang@sha256:" + "ab" * 32}
    files = render(plan(load(write_inventory(tmp_path / "inv", doc))))
    checked = 0
    for host, units in units_by_host(files).items():
        status, output = verify_units(units, tmp_path / "root" / host)
        assert (status, output) == (0, ""), f"{host}: {output}"
        checked += len(units)
    # serving, precompile, host tuning, share and firewall units on each of the 6 nodes, the peer watch of each rank
    # of the two multi-node instances (prefill [1, 2], decode [2, 1]: 4 ranks), the router and its membership agent
    assert checked == 6 * 5 + 4 + 2


def test_verify_catches_a_broken_unit(tmp_path):
    files = render(plan(load(ROOT / "inventories/prod.py")))
    units = units_by_host(files)["prefill-1"]
    units["sglang-prefill-1.service"] = units["sglang-prefill-1.service"].replace("Restart=always", "Restart=sometimes")
    status, output = verify_units(units, tmp_path)
    assert "Failed to parse service restart specifier" in output


def test_systemd_quoting_keeps_specifiers_and_variables_literal():
    assert systemd_quote("--dist-init-addr") == "--dist-init-addr"
    assert systemd_quote("50%") == "50%%"
    assert systemd_quote("$HOME") == '"$$HOME"'
    assert systemd_quote('{"0": "mlx5_0"}') == '"{\\"0\\": \\"mlx5_0\\"}"'
    assert exec_lines(["/bin/x", "-m", "mod", "--a", "1", "2", "--b"]) == "/bin/x -m mod \\\n    --a 1 2 \\\n    --b"


DOCKER_LIST = "/etc/apt/sources.list.d/pdfleet-docker.list"
DOCKER_PIN = "/etc/apt/preferences.d/pdfleet-docker.pref"


@pytest.mark.parametrize("source", ["docker-repo", "os-archive"])
def test_container_runtime_renders_dockers_apt_files_on_serving_nodes_only(tmp_path, source):
    doc = inventory_document(prefill=[1], decode=[2])
    doc["nodes"].append({"name": "spare-0", "address": "10.30.0.1"})  # serves nothing; runs the router
    doc["router"] = {"node": "spare-0"}
    doc["runtime"] = {
        "kind": "container",
        "image": "lmsysorg/sglang@sha256:" + "ab" * 32,
        "docker_version": "27.3.1",
        "containerd_version": "1.7.22",
        "docker_source": source,
        "docker_mirror": "https://mirror.example.internal/docker/ubuntu/",
    }
    files = render(plan(load(write_inventory(tmp_path, doc))))
    serving = ["decode-0-0", "decode-0-1", "prefill-0"]
    assert sorted(h for h, paths in files.items() if DOCKER_PIN in paths) == serving
    assert files["prefill-0"][DOCKER_PIN].content == (
        "# Managed by pdfleet from synthetic.yaml (cluster synthetic).\n"
        "# The Docker engine moves only with pdfleet: pinned at priority 1001 (also for downgrades), and held.\n"
        "Package: docker-ce\nPin: version 5:27.3.1-*\nPin-Priority: 1001\n\n"
        "Package: docker-ce-cli\nPin: version 5:27.3.1-*\nPin-Priority: 1001\n\n"
        "Package: containerd.io\nPin: version 1.7.22-*\nPin-Priority: 1001\n"
    )
    if source == "os-archive":  # the host's own sources serve the engine: no repository of ours
        assert not any(DOCKER_LIST in paths for paths in files.values())
        return
    assert sorted(h for h, paths in files.items() if DOCKER_LIST in paths) == serving
    assert files["decode-0-1"][DOCKER_LIST].content == (
        "# Managed by pdfleet from synthetic.yaml (cluster synthetic).\n"
        "# Docker's apt repository (or its mirror): docker-ce, docker-ce-cli, containerd.io.\n"
        "deb [arch=amd64 signed-by=/etc/apt/keyrings/pdfleet-docker.asc] "
        "https://mirror.example.internal/docker/ubuntu noble stable\n"
    )
    assert all(files[h][DOCKER_LIST].mode == files[h][DOCKER_PIN].mode == "0644" for h in serving)


def test_venv_runtime_renders_no_docker_files():
    files = render(plan(load(ROOT / "inventories/prod.py")))
    assert not any(path in paths for paths in files.values() for path in (DOCKER_LIST, DOCKER_PIN))
