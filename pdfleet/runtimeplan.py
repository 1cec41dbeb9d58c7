"""What the runtime installs: the pinned wheel sets of the serving venv and the router venv, and for kind container
the Docker engine's pins and repository. Pure."""

from __future__ import annotations

import hashlib
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


# A serving venv's directory name under `runtime.venvs`: the SGLang version, then a digest of the whole pinned set.
SET_NAME = re.compile(r"^sglang-[0-9A-Za-z.+!_-]+-[0-9a-f]{12}$")
# Per instance on its nodes: the venv its unit was last (re)started with, never pruned while it may run.
IN_USE_DIR = "/var/lib/pdfleet/runtime"


def serving_set_name(cluster: Cluster) -> str:
    """`sglang-<version>-<digest>`: one directory per pinned set, so a new set installs beside the serving one and
    going back finds the old one still there."""
    wheels = serving_wheels(cluster)
    digest = hashlib.sha256("\n".join(requirements(wheels)).encode()).hexdigest()[:12]
    return f"sglang-{cluster.sglang_version}-{digest}"


def serving_venv(cluster: Cluster) -> str:
    """The venv the inventory's serving units run from."""
    return f"{cluster.runtime.venvs.rstrip('/')}/{serving_set_name(cluster)}"


def sets_to_remove(present: dict[str, float], current: str, in_use: set[str], keep: int) -> list[str]:
    """The wheel sets to delete: all but `keep`, never the current one nor one an instance may still run.

    + present: {set name: when it was installed (epoch seconds)} under `runtime.venvs`
    + current: the set the inventory names
    + in_use: the sets the instances of the node were last started with
    + keep: how many sets stay, the current one included (the newest others fill the rest)
    """
    kept = {current} | (in_use & present.keys())
    for name in sorted(present, key=lambda n: present[n], reverse=True):
        if len(kept) >= keep:
            break
        kept.add(name)
    return sorted(name for name in present if name not in kept)


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
