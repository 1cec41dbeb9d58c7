"""The serving runtime, kind venv: uv (in its own venv), then the pinned wheel sets installed with it: SGLang and
its companions (mooncake-transfer-engine ...) on serving nodes, the smg router on the router node. The package
index is the inventory's (`runtime.index_url`: a mirror for air-gapped sites) or PyPI. An installed set is
compared with the pins and left alone when it matches."""

from __future__ import annotations

import json

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand, deploy, operation
from pyinfra.operations import apt

from pdfleet.runtimeplan import UV_VENV, UV_VERSION, normalize, requirements, router_wheels, serving_wheels
from roles import common
from roles.container import container_runtime

# Lists each installed distribution of a venv as JSON {name: version}; prints nothing without the venv.
_LIST = (
    "import importlib.metadata as m, json; "
    "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
)


class VenvPackages(FactBase):
    """The distributions installed in a venv, {normalized name: version}; None when the venv does not exist."""

    def command(self, venv: str) -> StringCommand:
        python = f"{venv}/bin/python3"
        return StringCommand("test -x", python, "&&", python, "-c", QuoteString(_LIST), "|| true")

    def process(self, output: list[str]) -> dict | None:
        text = "".join(output).strip()
        if not text:
            return None
        return {normalize(name): version for name, version in json.loads(text).items()}


def _index_args() -> list[str]:
    index = common.cluster().runtime.index_url
    return ["--index-url", index] if index else []


@operation()
def wheel_set(venv: str, wheels: dict[str, str], label: str):
    """
    A venv holding exactly these pinned wheels (dependencies as the resolver picks them).

    + venv: where the venv lives
    + wheels: {normalized name: exact version}
    + label: what the set is called in messages
    """
    installed = host.get_fact(VenvPackages, venv=venv)
    if installed is not None and all(installed.get(name) == version for name, version in wheels.items()):
        host.noop(f"{label} installed")
        return
    uv = f"{UV_VENV}/bin/uv"
    if installed is None:
        yield StringCommand(uv, "venv", "--quiet", "--python", "/usr/bin/python3", venv)
    yield StringCommand(
        uv, "pip", "install", "--quiet", "--python", f"{venv}/bin/python3", *_index_args(), *requirements(wheels)
    )


@operation()
def uv_installed():
    """uv at the version pdfleet pins, in its own venv."""
    installed = host.get_fact(VenvPackages, venv=UV_VENV)
    if installed is not None and installed.get("uv") == UV_VERSION:
        host.noop(f"uv {UV_VERSION} installed")
        return
    if installed is None:
        yield StringCommand("python3", "-m", "venv", UV_VENV)
    yield StringCommand(f"{UV_VENV}/bin/pip", "install", "--quiet", *_index_args(), f"uv=={UV_VERSION}")


@deploy("Runtime")
def runtime():
    cluster = common.cluster()
    node = common.node_name()
    serves = cluster.placement(node) is not None
    routes = cluster.router.node == node
    if cluster.runtime.kind == "container":
        if serves:
            container_runtime()  # the engine and the pinned image replace the serving wheel set
        serves = False  # the router (smg) still comes from its pinned wheel set, below
    if not (serves or routes):
        return
    apt.packages(name="Python venv support", packages=["python3-venv"], no_recommends=True)
    uv_installed(name=f"uv {UV_VERSION}")
    if serves:
        wheels = serving_wheels(cluster)
        wheel_set(
            name="serving wheel set", venv=cluster.runtime.venv, wheels=wheels, label=" ".join(requirements(wheels))
        )
    if routes:
        wheels = router_wheels(cluster)
        wheel_set(
            name="router wheel set", venv=cluster.router.venv, wheels=wheels, label=" ".join(requirements(wheels))
        )
