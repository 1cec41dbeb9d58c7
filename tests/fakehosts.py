"""Run a role against pyinfra's @fake connector: real pyinfra (facts, operations, _if), scripted host answers.

`converge(role, responses)` returns, per node, which operations would change and the commands that ran.
A host's answers (`fake_responses`) map a substring of a command to its output; unmatched commands succeed
silently, which to pyinfra's file facts means "the file does not exist".
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pyinfra
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.operations import run_ops
from pyinfra.api.state import StateStage
from pyinfra.context import ctx_config, ctx_host, ctx_state

from pdfleet.cluster import load_cluster
from pdfleet.inventory import host_data
from roles.layers import apply

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class HostRun:
    will_change: dict[str, bool] = field(default_factory=dict)  # operation name -> planned change
    commands: list[str] = field(default_factory=list)  # every command the host was sent, facts included
    changed: dict[str, bool] = field(default_factory=dict)  # operation name -> changed when run (not dry)

    def ran(self, fragment: str) -> bool:
        return any(fragment in command for command in self.commands)

    def changes(self, name_end: str) -> bool:
        """Whether the (one) operation whose name ends with `name_end` plans a change."""
        [value] = [changed for name, changed in self.will_change.items() if name.endswith(name_end)]
        return value


def _stat(path: str, mode: str, size: int) -> dict:
    line = f"user=root group=root mode={mode} atime=0 mtime=0 ctime=0 size={size} '{path}'"
    return {re.compile(r"stat -c .* " + re.escape(path) + r" 2> /dev/null"): line}


def file_present(path: str, content: str, mode: str = "-rw-r--r--") -> dict:
    """Answers that make pyinfra see `path` holding exactly `content` (and its directory)."""
    sha1 = hashlib.sha1(content.encode()).hexdigest()
    return {
        **_stat(path, mode, len(content.encode())),
        **_stat(str(PurePosixPath(path).parent), "drwxr-xr-x", 4096),
        f"sha1sum {path}": f"{sha1}  {path}",
    }


def recorded(name: str) -> dict:
    """Answers recorded from a sandbox host (tests/tools/record_host_answers.py), each matching its exact command."""
    answers = json.loads((ROOT / "tests/fixtures/converged-host" / f"{name}.json").read_text())
    return {re.compile("^" + re.escape(command) + "$"): answer for command, answer in answers.items()}


def _prepare(state: State, roles: tuple) -> None:
    """Generate the operations host by host as the pyinfra CLI does, so that operations are matched across hosts
    by where they are called (API mode matches them by count, which misaligns hosts running different roles)."""
    state.set_stage(StateStage.Prepare)
    pyinfra.is_cli = True
    try:
        for host in state.inventory.get_active_hosts():
            with ctx_config.use(state.config.copy()), ctx_host.use(host):
                apply(roles)
    finally:
        pyinfra.is_cli = False
    state.set_stage(StateStage.Execute)


def prepared(
    role,
    responses: dict[str, dict],
    inventory_yaml: Path = ROOT / "inventories/prod.yaml",
    extra_data: dict | None = None,
) -> State:
    """The state after generating the operations of `role` (one role or a tuple, in order) on @fake hosts,
    before any runs: what pyinfra's CLI holds when it orders operations. `extra_data`: more host data for every
    host, as `--data` gives it."""
    cluster = load_cluster(inventory_yaml)
    hosts = []
    for node_name, answers in responses.items():
        data = {
            **host_data(cluster, node_name, inventory_yaml),
            "fake_delay": 0,
            "fake_delay_jitter": 0,
            "fake_responses": answers,
            **(extra_data or {}),
        }
        hosts.append((f"@fake/{node_name}", data))
    state = State(Inventory((hosts, {})), Config())
    with ctx_state.use(state):
        connect_all(state)
        _prepare(state, role if isinstance(role, tuple) else (role,))
    return state


def converge(
    role,
    responses: dict[str, dict],
    inventory_yaml: Path = ROOT / "inventories/prod.yaml",
    dry: bool = False,
    extra_data: dict | None = None,
) -> dict[str, HostRun]:
    state = prepared(role, responses, inventory_yaml, extra_data)
    with ctx_state.use(state):
        runs = {}
        for host in state.inventory:
            run = HostRun()
            for op_hash in state.get_op_order():
                meta = state.ops[host].get(op_hash)
                if meta is not None:
                    run.will_change[state.op_meta[op_hash].names.copy().pop()] = meta.operation_meta.will_change
            runs[host.data.pdfleet_node] = run
        if not dry:
            run_ops(state)
        for host in state.inventory:
            run = runs[host.data.pdfleet_node]
            run.commands = list(host.connector.executed_commands)
            if not dry:
                for op_hash in state.get_op_order():
                    meta = state.ops[host].get(op_hash)
                    if meta is not None:
                        run.changed[state.op_meta[op_hash].names.copy().pop()] = meta.operation_meta.did_change()
    return runs
