"""The serving runtime, kind venv: uv (in its own venv), then the pinned wheel sets installed with it: SGLang and
its companions (mooncake-transfer-engine ...) on serving nodes, the smg router on the router node. The package
index is the inventory's (`runtime.index_url`: a mirror for air-gapped sites) or PyPI. An installed set is
compared with the pins and left alone when it matches.

Each serving set has its own venv under `runtime.venvs`, named by its version and the digest of its pins
(`pdfleet.runtimeplan.serving_set_name`): a new version installs beside the serving one, so it can be installed
before an upgrade's window without touching what the running engines read, and a rollback finds the old one still
there. The sets beyond `runtime.keep` are deleted, never the inventory's nor one an instance was started with."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, deploy, operation
from pyinfra.operations import apt

from pdfleet.runtimeplan import (
    IN_USE_DIR,
    SET_NAME,
    UV_VENV,
    UV_VERSION,
    normalize,
    requirements,
    router_wheels,
    serving_set_name,
    serving_venv,
    serving_wheels,
    sets_to_remove,
)
from roles import common
from roles.container import container_runtime, image_pulled


class VenvPackages(FactBase):
    """The distributions installed in a venv, {normalized name: version}; None when the venv does not exist.

    Read from the names of the `*.dist-info` directories (`name-version.dist-info`, what importlib.metadata finds
    too) by the shell alone: starting the venv's Python to ask costs a tenth of a second per venv and converge.
    """

    def command(self, venv: str) -> StringCommand:
        python = f"{venv}/bin/python3"
        listing = f'for d in {venv}/lib/python3*/site-packages/*.dist-info; do echo "${{d##*/}}"; done'
        return StringCommand("test -x", python, "&&", "{", "echo venv;", listing, "; }", "|| true")

    def process(self, output: list[str]) -> dict | None:
        if not output or output[0].strip() != "venv":
            return None
        found = {}
        for line in output[1:]:
            stem = line.strip().removesuffix(".dist-info")
            name, _, version = stem.rpartition("-")
            if name and version and "*" not in stem:
                found[normalize(name)] = version
        return found


class ServingSets(FactBase):
    """The serving wheel sets under a directory and the sets this node's instances were last started with:
    {"present": {name: install time}, "in_use": [name, ...]}."""

    def command(self, venvs: str) -> StringCommand:
        listing = f'for d in {venvs}/sglang-*/pyvenv.cfg; do [ -e "$d" ] && stat -c "set %Y %n" "$d"; done'
        in_use = f'for f in {IN_USE_DIR}/*; do [ -f "$f" ] && echo "use $(cat "$f")"; done'
        return StringCommand("{", listing, ";", in_use, "; }", "2>/dev/null", "|| true")

    @staticmethod
    def default() -> dict:
        return {"present": {}, "in_use": []}

    def process(self, output: list[str]) -> dict:
        present, in_use = {}, []
        for line in output:
            kind, _, rest = line.strip().partition(" ")
            if kind == "set":
                mtime, _, path = rest.partition(" ")
                name = path.rstrip("/").split("/")[-2]
                if SET_NAME.match(name):
                    present[name] = float(mtime)
            elif kind == "use" and rest:
                in_use.append(rest)
        return {"present": present, "in_use": in_use}


@operation()
def old_sets_removed(venvs: str, current: str, keep: int):
    """
    The serving wheel sets beyond `keep` deleted: the inventory's set and those an instance was started with stay.

    + venvs: the directory holding one venv per set (`runtime.venvs`)
    + current: the set the inventory names
    + keep: how many sets stay (`runtime.keep`)
    """
    found = host.get_fact(ServingSets, venvs=venvs)
    doomed = sets_to_remove(found["present"], current, set(found["in_use"]), keep)
    if not doomed:
        host.noop(f"{len(found['present'])} serving wheel set(s) kept (runtime.keep {keep})")
        return
    yield StringCommand("rm", "-rf", *(f"{venvs.rstrip('/')}/{name}" for name in doomed))


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
    """The serving wheel set (or image) on serving nodes, the router's wheel set on the router's node."""
    _install(router_too=True)


@deploy("Runtime ahead of a window")
def serving_runtime():
    """Only what serving nodes will run: the new set installs beside the serving one, the router is not touched
    (deploys/prepare.py, before an upgrade's window)."""
    _install(router_too=False)


def _install(router_too: bool) -> None:
    cluster = common.cluster()
    node = common.node_name()
    serves = cluster.placement(node) is not None
    routes = router_too and cluster.router.node == node
    if cluster.runtime.kind == "container":
        if serves and router_too:
            container_runtime()  # the engine and the pinned image replace the serving wheel set
        elif serves:  # ahead of a window: the image only (an engine change restarts dockerd, and its containers)
            runtime = cluster.runtime
            image_pulled(
                name=f"image {runtime.image.split('@')[0]} pulled by digest",
                image=runtime.image,
                size_gb=runtime.image_size_gb,
                retries=runtime.pull_retries,
            )
        serves = False  # the router (smg) still comes from its pinned wheel set, below
    if not (serves or routes):
        return
    apt.packages(name="Python venv support", packages=["python3-venv"], no_recommends=True)
    uv_installed(name=f"uv {UV_VERSION}")
    if serves:
        wheels = serving_wheels(cluster)
        wheel_set(
            name="serving wheel set", venv=serving_venv(cluster), wheels=wheels, label=" ".join(requirements(wheels))
        )
        old_sets_removed(
            name="older serving wheel sets removed",
            venvs=cluster.runtime.venvs,
            current=serving_set_name(cluster),
            keep=cluster.runtime.keep,
        )
    if routes:
        wheels = router_wheels(cluster)
        wheel_set(
            name="router wheel set", venv=cluster.router.venv, wheels=wheels, label=" ".join(requirements(wheels))
        )
