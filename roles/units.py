"""The serving units: each node's env file, DeepGEMM cache key, precompile unit and serving unit, and the router's
unit on its node; every unit checked with `systemd-analyze verify` before it replaces the installed one.

Units are enabled (a rebooted or replaced node precompiles, then serves, by itself) and started without waiting
(`--no-block`: the ranks of a multi-node instance must come up together, and /health can take an hour of weight
loading; the health gate waits for them). A unit restarts only when something it reads changed.
"""

from __future__ import annotations

import hashlib
from io import StringIO

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, deploy, operation
from pyinfra.facts.files import Sha1File
from pyinfra.operations import files, server, systemd

from pdfleet.render import key_file
from pdfleet.serving import ROUTER_UNIT, UNIT_DIR
from roles import common

# Where a unit waits for `systemd-analyze verify` before it is installed (kept: the next run compares with it).
STAGING_DIR = "/var/lib/pdfleet/units"


@operation()
def verified_unit(path: str, content: str):
    """
    Install a unit file only after `systemd-analyze verify` accepted it.

    + path: the unit's path under /etc/systemd/system
    + content: the unit's text
    """
    if host.get_fact(Sha1File, path=path) == hashlib.sha1(content.encode()).hexdigest():
        host.noop(f"{path} is current")
        return
    staged = f"{STAGING_DIR}/{path.rsplit('/', 1)[-1]}"
    yield from files.put._inner(src=StringIO(content), dest=staged, mode="0644", create_remote_dir=True)
    # Verified beside its siblings (the precompile unit a server unit requires is staged first).
    yield StringCommand("systemd-analyze", "verify", staged)
    yield StringCommand("install", "-m", "0644", staged, path)


@operation()
def started(unit: str):
    """
    Start a unit without waiting for it to become active (the health gate waits), unless it is active or in
    transition.

    + unit: the unit's name
    """
    state = host.get_fact(SystemdUnitState, unit=unit)
    # In transition (starting, waiting to restart after a crash, stopping before that): systemd's Restart= owns it.
    if state in ("active", "activating", "reloading", "deactivating"):
        host.noop(f"{unit} is {state}")
        return
    yield StringCommand("systemctl", "start", "--no-block", unit)


class SystemdUnitState(FactBase):
    """`systemctl is-active UNIT`: active, activating, inactive, failed ..."""

    def command(self, unit: str) -> StringCommand:
        return StringCommand("systemctl", "is-active", unit, "|| true")

    def process(self, output: list[str]) -> str:
        return "".join(output).strip()


def _restart_if(*changed):
    return lambda: any(meta.did_change() for meta in changed)


@deploy("Units")
def units():
    serving = common.serving_plan()
    node = common.node_name()
    spec = serving.server(node)
    routes = serving.router.host == node
    if spec is None and not routes:
        return

    changed = []
    if spec is not None:
        env = common.put_rendered(spec.env_file, name=f"{spec.instance} environment")
        key = common.put_rendered(key_file(spec.instance), name=f"{spec.instance} DeepGEMM cache key")
        precompile = verified_unit(
            name=f"{spec.precompile_unit} verified and installed",
            path=f"{UNIT_DIR}/{spec.precompile_unit}",
            content=common.rendered(f"{UNIT_DIR}/{spec.precompile_unit}").content,
        )
        unit = verified_unit(
            name=f"{spec.unit} verified and installed",
            path=f"{UNIT_DIR}/{spec.unit}",
            content=common.rendered(f"{UNIT_DIR}/{spec.unit}").content,
        )
        changed += [precompile, unit]
    if routes:
        router = verified_unit(
            name=f"{ROUTER_UNIT} verified and installed",
            path=f"{UNIT_DIR}/{ROUTER_UNIT}",
            content=common.rendered(f"{UNIT_DIR}/{ROUTER_UNIT}").content,
        )
        changed.append(router)
    systemd.daemon_reload(name="reload units", _if=_restart_if(*changed))

    if spec is not None:
        systemd.service(name=f"{spec.instance} enabled", service=spec.unit, enabled=True)
        start = started(name=f"{spec.instance} started", unit=spec.unit)
        # A change restarts the precompile unit too (a new key means a new cache), then the server after it.
        server.shell(
            name=f"{spec.instance} restarted after a change",
            commands=[f"systemctl restart --no-block {spec.precompile_unit} {spec.unit}"],
            _if=lambda: _restart_if(env, key, precompile, unit)() and not start.did_change(),
        )
    if routes:
        systemd.service(name="router enabled and running", service=ROUTER_UNIT, enabled=True, running=True)
        systemd.service(
            name="router restarted after a change", service=ROUTER_UNIT, restarted=True, _if=router.did_change
        )
