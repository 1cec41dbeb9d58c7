"""roles.container on one sandbox host (runtime.kind: container, the engine from the image's offline repository):
too little space in docker's data root stops the deploy before any pull, naming node, path, free and needed; with
room, the image is pulled by digest and dockerd runs with the NVIDIA runtime; a third run changes nothing. The
host is left without docker and toolkit afterwards (other modules expect a fresh host)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pdfleet.sandbox.paths import RELATIVE_PATHS
from tests.sandbox.conftest import ROOT, on_host, pyinfra

HOST = "decode-1"  # serves (decode rank 1), not the router's node
IMAGE = "lmsysorg/sglang@sha256:" + "c0" * 32
DEPLOY = "tests/sandbox/deploys/container.py"
PACKAGES = (
    "docker-ce docker-ce-cli containerd.io nvidia-container-toolkit nvidia-container-toolkit-base "
    "libnvidia-container-tools libnvidia-container1"
)


@pytest.fixture(scope="module")
def host(sandbox):
    yield HOST
    on_host(
        HOST,
        "apt-mark unhold docker-ce docker-ce-cli containerd.io >/dev/null; "
        "systemctl stop docker.service docker.socket containerd.service; "
        f"DEBIAN_FRONTEND=noninteractive apt-get purge -y -q {PACKAGES} >/dev/null; "
        "rm -rf /etc/docker /var/lib/docker-standin /etc/apt/preferences.d/pdfleet-docker.pref",
        check=False,
        timeout=120,
    )


def inventory(tmp_path: Path, image_size_gb: int) -> str:
    doc = yaml.safe_load((ROOT / "inventories/sandbox.yaml").read_text())
    for section, key in RELATIVE_PATHS:
        doc[section][key] = str((ROOT / "inventories" / doc[section][key]).resolve())
    doc["runtime"].update(kind="container", image=IMAGE, docker_source="os-archive", image_size_gb=image_size_gb)
    folder = tmp_path / f"size-{image_size_gb}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sandbox.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (folder / "sandbox.py").write_text((ROOT / "inventories/sandbox.py").read_text())
    return str(folder / "sandbox.py")


def converge(tmp_path: Path, image_size_gb: int):
    return pyinfra("-y", "--json", "--limit", HOST, inventory(tmp_path, image_size_gb), DEPLOY, timeout=300)


def changed(result) -> list[str]:
    return [op["name"] for op in json.loads(result.stdout)["results"]["operations"] if op["success"]]


def test_space_check_then_pull_then_nothing_to_change(host, tmp_path):
    short = converge(tmp_path, image_size_gb=100_000)
    assert short.returncode != 0
    assert f"node '{HOST}': not enough free space to pull {IMAGE}: /var/lib/docker (docker's data root) has" in (
        short.stderr
    ), short.stderr[-3000:]
    assert "needs 100010 GB (runtime.image_size_gb 100000 + 10 GB margin); nothing was pulled" in short.stderr
    assert on_host(HOST, "docker images -q").stdout == ""  # nothing pulled
    runtimes = json.loads(on_host(HOST, "docker info --format '{{json .Runtimes}}'").stdout)
    assert runtimes["nvidia"]["path"] == "nvidia-container-runtime"  # dockerd restarted with its new daemon.json

    roomy = converge(tmp_path, image_size_gb=1)
    assert roomy.returncode == 0, roomy.stderr[-3000:]
    assert changed(roomy) == ["Runtime | Container runtime | image lmsysorg/sglang pulled by digest"]
    assert on_host(HOST, f"docker image inspect --format '{{{{.RepoDigests}}}}' {IMAGE}").stdout.strip() == (
        f"[{IMAGE}]"
    )
    assert "docker-ce" in on_host(HOST, "apt-mark showhold").stdout.split()

    again = converge(tmp_path, image_size_gb=1)
    assert again.returncode == 0, again.stderr[-3000:]
    assert changed(again) == [], again.stderr[-3000:]
