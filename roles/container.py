"""The serving runtime, kind container: the Docker engine pinned and held, dockerd knowing the NVIDIA runtime, and
the SGLang image pulled by digest on serving nodes. The serving units then run `docker run ... IMAGE python3 -m
sglang.launch_server` (pdfleet.serving builds that argv).

- Engine: docker-ce, docker-ce-cli and containerd.io at `runtime.docker_version` / `runtime.containerd_version`,
  from Docker's apt repository (`runtime.docker_source: docker-repo`, key + list, or `runtime.docker_mirror`) or
  from the OS archive's sources as they are (`os-archive`: a site mirror that serves them), pinned by an apt
  preferences file and held as one set (roles/packages.py); docker.service enabled and running. The source list
  and the pin file are `pdfleet.render`'s (templates/host/docker-*.j2, on serving nodes), uploaded as rendered;
  package lists are refreshed only when the key or the list changed.
- NVIDIA runtime: the NVIDIA Container Toolkit comes with the host layer's driver set (roles/nvidia.py pins it when
  runtime.kind is container); here it is only checked. /etc/docker/daemon.json gets what `nvidia-ctk runtime
  configure --runtime=docker` writes (runtimes.nvidia), merged into the site's own settings (data-root, mirrors,
  ... are kept), plus size-capped json-file logs unless the site chose its logging. It is the one file of this
  role not taken from `pdfleet.render`: its text depends on the host's own file, so it is computed here, on the
  host's current content, and `pdfleet render` / `pdfleet diff` do not show it. dockerd restarts only when that
  file changed. A restart stops running containers: the serving units start them again (Restart=always).
  live-restore stays off on purpose: a unit's `docker run` is attached, and a container that outlived its CLI
  would block the unit's restart under the same --name.
- Image: pulled only when `docker image inspect` does not find it. Before the pull, the free space of dockerd's
  data root (`docker info --format '{{.DockerRootDir}}'`) must exceed `runtime.image_size_gb` plus a margin, or the
  deploy stops naming node, path, free and needed, and pulls nothing. A failed pull is retried
  `runtime.pull_retries` times with doubling waits (a 40 GB pull over a flaky registry link).
"""

from __future__ import annotations

import json
import shlex
from io import StringIO

from pyinfra import host, state
from pyinfra.api import FactBase, OperationError, deploy, operation
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import files, systemd

from pdfleet.runtimeplan import docker_mirror, docker_pins
from roles import common, packages

DOCKER_KEY = "/etc/apt/keyrings/pdfleet-docker.asc"  # templates/host/docker-repo.list.j2 names it
DOCKER_SOURCES = "/etc/apt/sources.list.d/pdfleet-docker.list"  # rendered
DOCKER_PIN_FILE = "/etc/apt/preferences.d/pdfleet-docker.pref"  # rendered
DAEMON_JSON = "/etc/docker/daemon.json"  # merged with the host's own: computed here, not rendered
# What `nvidia-ctk runtime configure --runtime=docker` adds (NVIDIA Container Toolkit 1.18, pkg/config/engine/docker).
NVIDIA_RUNTIME = {"args": [], "path": "nvidia-container-runtime"}
# dockerd's json-file logs grow without bound; SGLang logs batch statistics all day (journald has the same lines).
LOG_OPTS = {"max-file": "3", "max-size": "100m"}
# Free space needed beyond the image itself: a layer's compressed download sits beside its extracted copy.
PULL_MARGIN_GB = 10
# Seconds before the first retry of a failed pull; each further retry waits twice as long.
PULL_BACKOFF_S = 30
GB = 1000**3  # as docker reports image sizes


class DockerImage(FactBase):
    """The local image ID of an image reference (`docker image inspect`), or None when absent or no docker."""

    def requires_command(self, image: str) -> str:
        return "docker"

    def command(self, image: str) -> str:
        return f"docker image inspect --format '{{{{.Id}}}}' {shlex.quote(image)} 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        return "".join(output).strip() or None


class DockerDataRoot(FactBase):
    """dockerd's data root and the bytes free there: {"path": ..., "free": ...}; None when dockerd does not answer.
    A data root not created yet is measured at its nearest existing parent."""

    def requires_command(self) -> str:
        return "docker"

    def command(self) -> str:
        return (
            "root=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null) && [ -n \"$root\" ] && "
            '{ dir=$root; while [ ! -d "$dir" ]; do dir=$(dirname "$dir"); done; '
            'echo "$root"; df -B1 --output=avail "$dir" | tail -n 1; } || true'
        )

    def process(self, output: list[str]) -> dict | None:
        lines = [line.strip() for line in output if line.strip()]
        if len(lines) != 2 or not lines[1].isdigit():
            return None
        return {"path": lines[0], "free": int(lines[1])}


class DockerDaemonConfig(FactBase):
    """The text of dockerd's configuration file; None when it is absent or empty."""

    def command(self, path: str) -> str:
        return f"cat {shlex.quote(path)} 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        return "\n".join(output).strip() or None


def daemon_config(current: dict) -> dict:
    """The site's daemon.json with what pdfleet needs: the NVIDIA runtime (as `nvidia-ctk runtime configure` adds
    it) and, where the site chose no logging of its own, capped json-file logs."""
    wanted = json.loads(json.dumps(current))
    wanted["runtimes"] = {**(wanted.get("runtimes") or {}), "nvidia": NVIDIA_RUNTIME}
    if wanted.get("log-driver", "json-file") == "json-file" and "log-opts" not in wanted:
        wanted["log-opts"] = LOG_OPTS
    return wanted


def pull_command(image: str, retries: int) -> str:
    """`docker pull` with `retries` retries, waiting PULL_BACKOFF_S, then twice as long each time; fails after the
    last one (docker's own error is on stderr)."""
    waits = " ".join(str(PULL_BACKOFF_S * 2**n) for n in range(retries))
    quoted = shlex.quote(image)
    return (
        f"for wait in {waits} 0; do docker pull {quoted} && exit 0; [ $wait -gt 0 ] || exit 1; "
        f'echo "pdfleet: docker pull {image} failed; retrying in ${{wait}}s" >&2; sleep $wait; done'
    )


@operation()
def toolkit_present():
    """The NVIDIA Container Toolkit installed (by the host layer: roles/nvidia.py); checked when the deploy runs."""
    installed = host.get_fact(DebPackages)
    missing = [name for name in ("nvidia-container-toolkit", "nvidia-container-toolkit-base") if name not in installed]
    if not missing:
        host.noop("NVIDIA container toolkit installed")
    elif state.is_executing:
        raise OperationError(
            f"node '{common.node_name()}': {' and '.join(missing)} not installed: the host layer installs the "
            "NVIDIA Container Toolkit with the driver set when runtime.kind is container (deploys/host.py)"
        )
    else:
        host.noop("NVIDIA container toolkit: not installed yet, checked again when the deploy runs")
    yield from ()


@operation()
def nvidia_runtime_configured(path: str = DAEMON_JSON):
    """
    dockerd's configuration holds the NVIDIA runtime (`nvidia-ctk runtime configure --runtime=docker`), the site's
    other settings kept.

    + path: dockerd's configuration file
    """
    text = host.get_fact(DockerDaemonConfig, path=path)
    try:
        current = json.loads(text) if text else {}
    except ValueError as error:
        raise OperationError(
            f"node '{common.node_name()}': {path} is not valid JSON ({error}); dockerd refuses it too: fix or remove it"
        ) from None
    if not isinstance(current, dict):
        raise OperationError(f"node '{common.node_name()}': {path} is not a JSON object; fix or remove it")
    wanted = daemon_config(current)
    if wanted == current:
        host.noop(f"{path} has the NVIDIA runtime")
        return
    content = json.dumps(wanted, indent=4, sort_keys=True) + "\n"
    yield from files.put._inner(src=StringIO(content), dest=path, mode="0644")


@operation()
def image_pulled(image: str, size_gb: int, retries: int):
    """
    The image present in dockerd's store, pulled by digest when absent, after a free-space check.

    + image: name@sha256:<digest>
    + size_gb: the image's size on disk, GB (what `docker image ls` shows)
    + retries: how often a failed pull is retried, with doubling waits
    """
    if host.get_fact(DockerImage, image=image) is not None:
        host.noop(f"{image} present")
        return
    root = host.get_fact(DockerDataRoot)
    needed = size_gb + PULL_MARGIN_GB
    if root is None:
        if state.is_executing:
            raise OperationError(
                f"node '{common.node_name()}': dockerd does not answer `docker info`: cannot check free space for "
                f"{image}; nothing was pulled"
            )
        # Planning a fresh host: the engine comes with this run; the space is checked before the pull.
    elif root["free"] < needed * GB:
        raise OperationError(
            f"node '{common.node_name()}': not enough free space to pull {image}: {root['path']} (docker's data "
            f"root) has {root['free'] / GB:.1f} GB free, needs {needed} GB (runtime.image_size_gb {size_gb} + "
            f"{PULL_MARGIN_GB} GB margin); nothing was pulled"
        )
    yield pull_command(image, retries)


@deploy("Container runtime")
def container_runtime():
    """Docker engine, NVIDIA runtime and the pinned image on a serving node (runtime.kind: container)."""
    cluster = common.cluster()
    runtime = cluster.runtime

    if runtime.docker_source == "docker-repo":
        packages.vendor_repository("Docker", f"{docker_mirror(cluster)}/gpg", DOCKER_KEY, DOCKER_SOURCES)
    common.put_rendered(DOCKER_PIN_FILE, name="pin the Docker engine")
    packages.held_set(
        name="docker engine installed and held",
        pins=docker_pins(cluster),
        label=f"Docker {runtime.docker_version} engine (containerd {runtime.containerd_version})",
    )
    systemd.service(name="docker engine running", service="docker.service", running=True, enabled=True)
    toolkit_present(name="NVIDIA container toolkit present")
    configured = nvidia_runtime_configured(name="docker knows the NVIDIA runtime")
    systemd.service(
        name="restart docker for its new configuration",
        service="docker.service",
        restarted=True,
        _if=configured.did_change,
    )
    image_pulled(
        name=f"image {runtime.image.split('@')[0]} pulled by digest",
        image=runtime.image,
        size_gb=runtime.image_size_gb,
        retries=runtime.pull_retries,
    )
