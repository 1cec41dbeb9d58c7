"""The serving units: each node's env file, DeepGEMM cache key, precompile unit and serving unit (and, on every
rank of a multi-node instance, the peer watch), each unit checked with `systemd-analyze verify` before it
replaces the installed one, and enabled: a rebooted or replaced node precompiles, then serves, by itself.

Starting and restarting them is roles/restarts.py: one instance at a time, drained first while it serves.
"""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import files, systemd

from pdfleet import apikeys as keyfiles
from pdfleet.render import key_file
from pdfleet.serving import PEER_WATCH
from roles import apikeys, common
from roles.unitfiles import rendered_unit

PEER_WATCH_SOURCE = common.ONHOST / "peer_watch.py"


@deploy("Units")
def units():
    serving = common.serving_plan()
    spec = serving.server(common.node_name())
    if spec is None:
        return
    common.put_rendered(spec.env_file, name="serving environment")
    common.put_rendered(key_file(spec.instance), name="DeepGEMM cache key")
    # read by SGLang at start (`--config`): a changed key applies at the instance's next restart; with keys off,
    # files left by a run with keys are removed
    apikeys.put(keyfiles.engine_files(apikeys.keys()))  # keys() is None when keys are off
    installed = [
        rendered_unit(name, name=f"{what} unit verified and installed")
        for what, name in (("precompile", spec.precompile_unit), ("serving", spec.unit))
    ]
    if spec.nnodes > 1:
        files.directory(name="peer watch directory", path=PEER_WATCH.rsplit("/", 1)[0], mode="0755")
        files.put(name="peer watch installed", src=str(PEER_WATCH_SOURCE), dest=PEER_WATCH, mode="0755")
        watch = rendered_unit(spec.peer_watch_unit, name="peer watch unit verified and installed")
        installed.append(watch)
    systemd.daemon_reload(name="reload units", _if=common.changed(*installed))
    # Enabled only: starting is roles/restarts.py's decision (after the weights, the cache and its copy).
    systemd.service(name="serving unit enabled", service=spec.unit, running=None, enabled=True)
    if spec.nnodes > 1:
        # Wanted by the serving unit: it starts and stops with it.
        systemd.service(name="peer watch enabled", service=spec.peer_watch_unit, running=None, enabled=True)
        systemd.service(
            name="peer watch restarted after a change",
            service=spec.peer_watch_unit,
            running=None,
            restarted=True,
            _if=watch.did_change,
        )
