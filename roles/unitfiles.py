"""Unit files from the render: each checked by `systemd-analyze verify` before it replaces the installed one, and
the long-running services pdfleet owns (the boot-time tuning, the share, the router) kept enabled, running and
restarted after a change of their unit or of a file they read.

Used by every role that installs a unit, so no unit reaches /etc/systemd/system unverified.
"""

from __future__ import annotations

import hashlib
from io import StringIO

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import Sha1File
from pyinfra.operations import files, systemd

from pdfleet.serving import UNIT_DIR
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


def rendered_unit(unit: str, name: str) -> OperationMeta:
    """The unit `pdfleet.render` made for this host, verified and installed (verified_unit).

    + unit: the unit's name under /etc/systemd/system
    + name: the operation's name
    """
    path = f"{UNIT_DIR}/{unit}"
    return verified_unit(name=name, path=path, content=common.rendered(path).content)


def service_current(unit: str, what: str, reads: tuple[OperationMeta, ...] = ()) -> OperationMeta:
    """A service of pdfleet's own, from its rendered unit: verified and installed, units reloaded after a change,
    enabled and running, restarted when the unit or a file it reads changed.

    + unit: the unit's name under /etc/systemd/system
    + what: what the service is, for operation names ("share", "boot-time tuning")
    + reads: the operations that put the files the service reads (a restart follows their change)
    """
    installed = rendered_unit(unit, name=f"{what} unit verified and installed")
    systemd.daemon_reload(name=f"reload units for the {what}", _if=installed.did_change)
    systemd.service(name=f"{what} enabled and running", service=unit, enabled=True, running=True)
    systemd.service(
        name=f"{what} restarted after a change", service=unit, restarted=True, _if=common.changed(installed, *reads)
    )
    return installed
