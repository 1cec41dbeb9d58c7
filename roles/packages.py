"""A set of packages that moves as one: installed together at one pinned version, then held.

The NVIDIA driver, fabric manager and NSCQ must be exactly the same version or the fabric manager refuses to
start (GPU Operator #544, gpu-driver-container #735: an unheld fabric manager drifted ahead of its driver). So
they are never installed or upgraded one by one: `held_set` compares what is installed and held with what the
apt pin (rendered into /etc/apt/preferences.d/) asks for, and only when something differs it unholds the set,
installs it in one apt transaction (the pin picks the versions, downgrades included) and holds it again.
"""

from __future__ import annotations

from fnmatch import fnmatch

from pyinfra import host
from pyinfra.api import FactBase, operation
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import files, server

from pdfleet.hostplan import Pin
from roles import common


class HeldPackages(FactBase):
    """Packages on hold (`apt-mark showhold`)."""

    @staticmethod
    def default() -> set:
        return set()

    def requires_command(self) -> str:
        return "apt-mark"

    def command(self) -> str:
        return "apt-mark showhold"

    def process(self, output: list[str]) -> set:
        return {line.strip() for line in output if line.strip()}


def _differences(pins: list[Pin], installed: dict, held: set) -> list[str]:
    problems = []
    for pin in pins:
        versions = installed.get(pin.name, [])
        if not versions:
            problems.append(f"{pin.name} missing")
        elif not any(fnmatch(v, pin.version) for v in versions):
            problems.append(f"{pin.name} {','.join(versions)} (want {pin.version})")
        elif pin.name not in held:
            problems.append(f"{pin.name} not held")
    return problems


@operation()
def held_set(pins: list[Pin], label: str):
    """
    Install a package set at its pinned versions, in one transaction, and hold it.

    + pins: the set, each package with its apt pin pattern (the preferences file must already pin the same)
    + label: what the set is called in messages ("NVIDIA 580.159.04 set")
    """
    installed = host.get_fact(DebPackages)
    held = host.get_fact(HeldPackages)
    differences = _differences(pins, installed, held)
    if not differences:
        host.noop(f"{label} is installed and held")
        return
    names = " ".join(pin.name for pin in pins)
    if all(problem.endswith(" not held") for problem in differences):
        yield f"apt-mark hold {names}"
        return
    on_hold = [pin.name for pin in pins if pin.name in held]
    if on_hold:
        yield f"apt-mark unhold {' '.join(on_hold)}"
    yield (
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends --allow-downgrades "
        f"-o Dpkg::Options::=--force-confold {names}"
    )
    yield f"apt-mark hold {names}"


def vendor_repository(label: str, key_url: str, key_path: str, sources_path: str) -> None:
    """A vendor's apt repository: its signing key and its rendered sources list; the package lists are refreshed
    only when either changed.

    + label: the repository's name in operation names (CUDA, DOCA, Docker)
    + key_url / key_path: where the signing key comes from and where the sources list expects it
    + sources_path: the rendered sources list
    """
    key = files.download(name=f"{label} repository signing key", src=key_url, dest=key_path)
    sources = common.put_rendered(sources_path, name=f"{label} repository")
    server.shell(
        name="refresh package lists",
        commands=["apt-get update -q"],
        _if=common.changed(key, sources),
    )
