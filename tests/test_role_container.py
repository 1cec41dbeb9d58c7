"""roles.container (runtime.kind: container) on pyinfra's @fake connector: a fresh host gets Docker's repository, the
pinned engine (list and pin file as `pdfleet render` shows them), the NVIDIA runtime in daemon.json and the image;
a present image is left alone; a changed daemon.json restarts dockerd, an unchanged one does not; too little space
in docker's data root stops before any pull."""

from __future__ import annotations

import json
import re

import pytest
from pyinfra.api import OperationError
from pyinfra.connectors.fake import FakeConnector

from pdfleet.inventory import load
from pdfleet.render import render
from pdfleet.serving import plan
from pdfleet.synthetic import inventory_document, write_inventory
from roles.container import LOG_OPTS, NVIDIA_RUNTIME, daemon_config, pull_command
from roles.runtime import runtime
from tests.fakehosts import converge

IMAGE = "lmsysorg/sglang@sha256:" + "ab" * 32
NODE = "decode-0"  # serves (decode instance), not the router's node
ROUTER_NODE = "prefill-0"
GB = 1000**3
TOOLKIT = {
    "dpkg -l": [
        "ii  nvidia-container-toolkit       1.18.0-1  amd64  NVIDIA Container toolkit",
        "ii  nvidia-container-toolkit-base  1.18.0-1  amd64  NVIDIA Container Toolkit Base",
    ]
}
DOCKER_RUNNING = {
    re.compile(r"systemctl show --all .*SubState docker\.service"): ["Id=docker.service", "SubState=running"],
    re.compile(r"systemctl show --all .*UnitFileState docker\.service"): ["Id=docker.service", "UnitFileState=enabled"],
}
CONFIGURED = json.dumps(daemon_config({}), indent=4, sort_keys=True)


def inventory(tmp_path, **runtime_knobs):
    doc = inventory_document(prefill=[1], decode=[1])
    doc["runtime"] = {"kind": "container", "image": IMAGE, **runtime_knobs}
    return write_inventory(tmp_path, doc).with_suffix(".yaml")


def free_space(free_gb: float, path: str = "/var/lib/docker") -> dict:
    return {"docker info --format '{{.DockerRootDir}}'": [path, str(int(free_gb * GB))]}


def image_present() -> dict:
    return {"docker image inspect --format '{{.Id}}'": "sha256:" + "cd" * 32}


@pytest.fixture
def uploads(monkeypatch):
    """What the fake connector was asked to upload: {remote path: text}."""
    seen: dict[str, str] = {}

    def put_file(self, filename_or_io, remote_filename, *args, **kwargs):
        data = filename_or_io.getvalue()  # the role uploads text it built (StringIO), never a local file
        seen[remote_filename] = data.decode() if isinstance(data, bytes) else data
        return True

    monkeypatch.setattr(FakeConnector, "put_file", put_file)
    return seen


@pytest.fixture
def sent(monkeypatch):
    """Every command any fake host was sent, also when the deploy raised before converge() returned."""
    commands: list[str] = []
    original = FakeConnector.run_shell_command

    def run_shell_command(self, command, *args, **kwargs):
        commands.append(command if isinstance(command, str) else command.get_masked_value())
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(FakeConnector, "run_shell_command", run_shell_command)
    return commands


def test_fresh_host_gets_repository_engine_runtime_config_and_image(tmp_path, uploads):
    run = converge(runtime, {NODE: {**TOOLKIT, **free_space(500)}}, inventory_yaml=inventory(tmp_path))[NODE]
    for name in (
        "Docker repository signing key",
        "Docker repository",
        "pin the Docker engine",
        "docker engine installed and held",
        "docker engine running",
        "docker knows the NVIDIA runtime",
        "image lmsysorg/sglang pulled by digest",
    ):
        assert run.changes(name) is True, name
    assert run.ran("curl") or run.ran("wget")  # the key, from download.docker.com/linux/ubuntu/gpg
    assert run.ran("apt-get update -q")
    [install] = [c for c in run.commands if "apt-get install" in c]
    assert install.endswith("docker-ce docker-ce-cli containerd.io")
    assert run.ran("apt-mark hold docker-ce docker-ce-cli containerd.io")
    assert (
        "deb [arch=amd64 signed-by=/etc/apt/keyrings/pdfleet-docker.asc] "
        in uploads["/etc/apt/sources.list.d/pdfleet-docker.list"]
    )
    assert (
        "https://download.docker.com/linux/ubuntu noble stable"
        in uploads["/etc/apt/sources.list.d/pdfleet-docker.list"]
    )
    pref = uploads["/etc/apt/preferences.d/pdfleet-docker.pref"]
    assert "Package: docker-ce\nPin: version 5:28.5.1-*\nPin-Priority: 1001\n" in pref
    assert "Package: containerd.io\nPin: version 1.7.28-*\n" in pref
    rendered = render(plan(load(tmp_path / "synthetic.py")))[NODE]  # uploaded exactly as rendered
    for path in ("/etc/apt/sources.list.d/pdfleet-docker.list", "/etc/apt/preferences.d/pdfleet-docker.pref"):
        assert uploads[path] == rendered[path].content
    assert json.loads(uploads["/etc/docker/daemon.json"]) == {
        "runtimes": {"nvidia": NVIDIA_RUNTIME},
        "log-opts": LOG_OPTS,
    }
    assert run.ran(f"docker pull {IMAGE}")


def test_absent_image_checks_free_space_then_pulls_with_retries(tmp_path):
    answers = {**TOOLKIT, **DOCKER_RUNNING, **file_answers(CONFIGURED), **free_space(120)}
    run = converge(runtime, {NODE: answers}, inventory_yaml=inventory(tmp_path, pull_retries=2))[NODE]
    docker = [c for c in run.commands if "docker " in c and not c.startswith("systemctl")]
    inspect = next(i for i, c in enumerate(docker) if "docker image inspect" in c)
    info = next(i for i, c in enumerate(docker) if "docker info --format '{{.DockerRootDir}}'" in c)
    [pull] = [c for c in docker if "docker pull" in c]
    assert inspect < info < docker.index(pull)
    assert pull == pull_command(IMAGE, 2)
    assert pull.startswith(f"for wait in 30 60 0; do docker pull {IMAGE} && exit 0; [ $wait -gt 0 ] || exit 1;")
    assert changed(run, "image lmsysorg/sglang pulled by digest") is True


def test_present_image_is_left_alone(tmp_path):
    answers = {**TOOLKIT, **DOCKER_RUNNING, **file_answers(CONFIGURED), **image_present(), **free_space(1)}
    run = converge(runtime, {NODE: answers}, inventory_yaml=inventory(tmp_path))[NODE]
    assert run.changes("image lmsysorg/sglang pulled by digest") is False
    assert not run.ran("docker pull") and not run.ran("docker info")  # no space check either: nothing to pull
    assert run.changes("docker knows the NVIDIA runtime") is False
    assert not run.ran("systemctl restart docker.service")


def test_changed_daemon_config_restarts_docker_and_keeps_site_settings(tmp_path, uploads):
    site = json.dumps({"data-root": "/raid/docker", "log-driver": "local"})
    answers = {**TOOLKIT, **DOCKER_RUNNING, **file_answers(site), **image_present()}
    run = converge(runtime, {NODE: answers}, inventory_yaml=inventory(tmp_path))[NODE]
    assert changed(run, "docker knows the NVIDIA runtime") is True
    assert run.ran("systemctl restart docker.service")
    written = json.loads(uploads["/etc/docker/daemon.json"])
    # The site's data root and log driver kept (no log-opts forced on another driver), the runtime added.
    assert written == {"data-root": "/raid/docker", "log-driver": "local", "runtimes": {"nvidia": NVIDIA_RUNTIME}}


def test_unchanged_daemon_config_leaves_docker_running(tmp_path):
    answers = {**TOOLKIT, **DOCKER_RUNNING, **file_answers(CONFIGURED), **image_present()}
    run = converge(runtime, {NODE: answers}, inventory_yaml=inventory(tmp_path))[NODE]
    assert changed(run, "docker knows the NVIDIA runtime") is False
    assert not run.ran("systemctl restart docker.service") and not run.ran("systemctl start docker.service")


def test_too_little_space_stops_with_node_path_free_and_needed_and_pulls_nothing(tmp_path, sent):
    answers = {**TOOLKIT, **DOCKER_RUNNING, **file_answers(CONFIGURED), **free_space(45.5, "/raid/docker")}
    with pytest.raises(OperationError) as error:
        converge(runtime, {NODE: answers}, inventory_yaml=inventory(tmp_path))
    assert str(error.value) == (
        f"node 'decode-0': not enough free space to pull {IMAGE}: /raid/docker (docker's data root) has 45.5 GB "
        "free, needs 50 GB (runtime.image_size_gb 40 + 10 GB margin); nothing was pulled"
    )
    assert any("docker info" in c for c in sent)
    assert not any("docker pull" in c for c in sent)


def test_image_size_knob_sets_the_space_needed(tmp_path):
    answers = {**TOOLKIT, **DOCKER_RUNNING, **file_answers(CONFIGURED), **free_space(45.5)}
    run = converge(runtime, {NODE: answers}, inventory_yaml=inventory(tmp_path, image_size_gb=30))[NODE]
    assert run.ran(f"docker pull {IMAGE}")


def test_missing_toolkit_is_left_to_the_host_layer_when_planning_and_fails_when_the_deploy_runs(tmp_path):
    answers = {**DOCKER_RUNNING, **file_answers(CONFIGURED), **image_present()}
    run = converge(runtime, {NODE: answers}, inventory_yaml=inventory(tmp_path), dry=True)[NODE]
    assert run.changes("NVIDIA container toolkit present") is False  # an earlier role of the run may install it
    with pytest.raises(OperationError) as error:
        converge(runtime, {NODE: answers}, inventory_yaml=inventory(tmp_path))
    assert str(error.value).startswith(
        "node 'decode-0': nvidia-container-toolkit and nvidia-container-toolkit-base not installed: the host layer"
    )


def test_os_archive_source_adds_no_repository_and_the_router_keeps_its_wheel_set(tmp_path):
    answers = {**TOOLKIT, **free_space(500)}
    inventory_yaml = inventory(tmp_path, docker_source="os-archive")
    runs = converge(runtime, {NODE: answers, ROUTER_NODE: answers}, inventory_yaml=inventory_yaml)
    serving = runs[NODE]
    assert not any("Docker repository" in name for name in serving.will_change)
    assert not serving.ran("apt-get update") and serving.ran("apt-get install")
    assert not serving.ran("uv pip install") and not serving.ran("uv venv")  # the image replaces the wheel set
    router = runs[ROUTER_NODE]  # serves prefill-0 and runs the router: the image and smg's wheel set
    assert router.ran(f"docker pull {IMAGE}") and router.ran("smg==")


def test_daemon_config_merge_is_idempotent():
    once = daemon_config({"registry-mirrors": ["https://mirror.example"]})
    assert daemon_config(once) == once
    assert once["log-opts"] == LOG_OPTS and once["runtimes"] == {"nvidia": NVIDIA_RUNTIME}
    # A site's own runtimes and log options stay.
    site = {"runtimes": {"kata": {"path": "/usr/bin/kata-runtime"}}, "log-opts": {"max-size": "1g"}}
    assert daemon_config(site) == {
        "runtimes": {"kata": {"path": "/usr/bin/kata-runtime"}, "nvidia": NVIDIA_RUNTIME},
        "log-opts": {"max-size": "1g"},
    }


def changed(run, name_end: str) -> bool:
    """Whether the (one) operation whose name ends with `name_end` changed the host when run."""
    [value] = [value for name, value in run.changed.items() if name.endswith(name_end)]
    return value


def file_answers(content: str, path: str = "/etc/docker/daemon.json") -> dict:
    return {f"cat {path}": content.splitlines()}
