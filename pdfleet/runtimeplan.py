"""What the runtime installs: the pinned wheel sets of the serving venv and the router venv, and for kind container
the Docker engine's pins and repository. Pure."""

from __future__ import annotations

import re

from pdfleet.cluster import Cluster
from pdfleet.hostconfig import DISTRIBUTIONS
from pdfleet.hostplan import Pin

# uv installs the wheel sets (one resolver run, fast reinstalls); itself installed with pip into its own venv.
UV_VERSION = "0.13.9"
UV_VENV = "/opt/pdfleet/uv"


def normalize(name: str) -> str:
    """PEP 503 project name normalization, how installed distributions are compared."""
    return re.sub(r"[-_.]+", "-", name).lower()


def serving_wheels(cluster: Cluster) -> dict[str, str]:
    """The serving venv's pinned set: SGLang at the inventory's version and the extra wheels beside it."""
    return {normalize("sglang"): cluster.sglang_version, **{normalize(n): v for n, v in cluster.runtime.wheels.items()}}


def router_wheels(cluster: Cluster) -> dict[str, str]:
    return {"smg": cluster.router.version}


def requirements(wheels: dict[str, str]) -> list[str]:
    return [f"{name}=={version}" for name, version in sorted(wheels.items())]


# Docker's apt repository, one per distribution (os-release ID); its signing key is `gpg` at the same place.
DOCKER_REPOSITORY = "https://download.docker.com/linux/{os_id}"
DOCKER_CODENAMES = {"ubuntu24.04": "noble", "ubuntu22.04": "jammy", "debian12": "bookworm"}


def docker_pins(cluster: Cluster) -> list[Pin]:
    """The engine set, pinned at exact upstream versions (any packaging revision, any distribution suffix)."""
    runtime = cluster.runtime
    return [
        Pin("docker-ce", f"5:{runtime.docker_version}-*"),
        Pin("docker-ce-cli", f"5:{runtime.docker_version}-*"),
        Pin("containerd.io", f"{runtime.containerd_version}-*"),
    ]


def docker_mirror(cluster: Cluster) -> str:
    """Docker's repository for the cluster's distribution, or the site's mirror of it (no trailing slash)."""
    os_id = DISTRIBUTIONS[cluster.host.distribution][2]
    return (cluster.runtime.docker_mirror or DOCKER_REPOSITORY.format(os_id=os_id)).rstrip("/")


def docker_codename(cluster: Cluster) -> str:
    return DOCKER_CODENAMES[cluster.host.distribution]
