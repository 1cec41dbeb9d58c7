"""The stand-in vendor packages on a sandbox host, under its real systemd: installed from the offline repository
by their real names and versions, their tools printing the captured outputs of a real 8xH200 node, their daemons
running as services, the container engine running the stand-in SGLang image."""

from __future__ import annotations

import pytest

from tests.sandbox.conftest import ROOT, on_host

FIXTURES = ROOT / "tests/fixtures/h200-8gpu-node"
HOST = "prefill-1"
DRIVER_SET = [
    "nvidia-driver-580-server-open=580.159.04-0ubuntu1",
    "nvidia-utils-580-server=580.159.04-0ubuntu1",
    "nvidia-compute-utils-580-server=580.159.04-0ubuntu1",
    "nvidia-kernel-common-580-server=580.159.04-0ubuntu1",
    "libnvidia-compute-580-server=580.159.04-0ubuntu1",
    "nvidia-fabricmanager-580=580.159.04-1",
    "libnvidia-nscq-580=580.159.04-1",
]
OTHERS = ["datacenter-gpu-manager-4-cuda13", "nvidia-container-toolkit", "docker-ce", "gdrcopy", "doca-ofed"]
DIGEST = "sha256:" + "5e" * 32


def test_vendor_standins_install_by_real_name_and_answer_like_an_h200_node(sandbox):
    on_host(HOST, f"apt-get install -y -q {' '.join(DRIVER_SET + OTHERS)} >/dev/null", timeout=300)
    versions = on_host(
        HOST, "dpkg-query -W -f='${Package}=${Version}\\n' " + " ".join(p.split("=")[0] for p in DRIVER_SET)
    ).stdout
    assert sorted(versions.split()) == sorted(DRIVER_SET)

    xml = on_host(HOST, "nvidia-smi -q -x").stdout
    assert xml == (FIXTURES / "nvidia-smi-q.xml").read_text()
    assert on_host(HOST, "nvidia-smi topo -m").stdout == (FIXTURES / "nvidia-smi-topo-m.txt").read_text()
    assert on_host(HOST, "nvidia-smi --bogus-option", check=False).returncode != 0

    devices = on_host(HOST, "ibv_devinfo -l").stdout
    assert [line.strip() for line in devices.splitlines()[1:] if line.strip()] == [f"mlx5_{i}" for i in range(8)]
    assert "PORT_ACTIVE" in on_host(HOST, "ibv_devinfo -d mlx5_3").stdout

    for unit in ("nvidia-fabricmanager", "nvidia-dcgm", "docker", "containerd"):
        on_host(HOST, f"systemctl start {unit}")
        assert on_host(HOST, f"systemctl is-active {unit}").stdout == "active\n", unit
    assert "Fabric Manager version is : 580.159.04" in on_host(HOST, "nv-fabricmanager --version").stdout
    assert on_host(HOST, "dcgmi discovery -l").stdout.count("NVIDIA H200") == 8


def test_the_standin_container_engine_runs_the_standin_sglang_image(sandbox):
    on_host(HOST, "apt-get install -y -q docker-ce >/dev/null; systemctl start docker", timeout=300)
    assert on_host(HOST, f"docker run --rm lmsysorg/sglang@{DIGEST} true", check=False).returncode != 0  # not pulled
    on_host(HOST, f"docker pull lmsysorg/sglang@{DIGEST}")
    assert DIGEST in on_host(HOST, "docker images --digests").stdout
    out = on_host(
        HOST,
        f"docker run --rm --network=host lmsysorg/sglang@{DIGEST} "
        "python3 -c 'import sglang; print(sglang.__version__)'",
    ).stdout
    assert out.strip() == "0.5.23"
    rejected = on_host(
        HOST,
        f"docker run --rm lmsysorg/sglang@{DIGEST} python3 -m sglang.launch_server "
        "--model-path /tmp --cuda-graph-bs 1 2",
        check=False,
    )
    assert rejected.returncode == 2 and "ambiguous option: --cuda-graph-bs" in rejected.stderr


def test_fixture_copy_is_the_shared_capture():
    """The stand-ins serve tests/fixtures, which must stay identical to the captures in shared/."""
    shared = ROOT.parent / "shared/fixtures/h200-8gpu-node"
    if not shared.exists():
        pytest.skip("no shared/ beside this checkout")
    for path in shared.iterdir():
        assert (FIXTURES / path.name).read_bytes() == path.read_bytes(), path.name
