"""What the venv runtime installs: the pinned wheel sets of the serving venv and the router venv. Pure."""

from __future__ import annotations

import re

from pdfleet.cluster import Cluster

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
