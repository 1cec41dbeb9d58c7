"""`pdfleet blue-green INVENTORY --version V`: the orchestration. The decisions are pdfleet.bluegreenplan's (pure);
every step that touches a host is a deploy run with pyinfra (pd.py, switch.py, retire.py, serve.py); this module runs
them in order, prints each step as it runs, and records its progress beside the inventory so that running the
same command again after an interruption continues where it stopped.

Beside NAME.yaml while it runs: `.NAME.bluegreen.json` (the decided move and the steps done) and the staged next
inventory `.NAME.next.yaml` with its pyinfra wrapper `.NAME.next.py` (rendered under NAME.yaml's name, so the new set
runs exactly the files the inventory renders once rewritten: the final converge restarts nothing). All three are
removed when the move is done.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from pdfleet.bluegreenplan import STEPS, BlueGreen, plan_blue_green
from pdfleet.cluster import Cluster
from pdfleet.inventory import display_path, yaml_for
from pdfleet.replace import _fail, _write_atomically, print_steps, run_deploy, say
from pdfleet.replaceplan import Refused

STAGED_WRAPPER = '''"""pdfleet blue-green: the staged next inventory of {name} (removed when the move is done)."""

from pdfleet.inventory import pyinfra_groups

_groups = pyinfra_groups(__file__, rendered_as={rendered_as!r})

prefill = _groups["prefill"]
decode = _groups["decode"]
router = _groups["router"]
spare = _groups["spare"]
'''


class Paths:
    def __init__(self, inventory: str):
        self.yaml = yaml_for(inventory).resolve()
        self.py = self.yaml.with_suffix(".py")
        self.progress = self.yaml.with_name(f".{self.yaml.stem}.bluegreen.json")
        self.staged_yaml = self.yaml.with_name(f".{self.yaml.stem}.next.yaml")
        self.staged_py = self.staged_yaml.with_suffix(".py")


def _record(paths: Paths, cluster: Cluster, version: str) -> tuple[BlueGreen, dict]:
    if paths.progress.exists():
        record = json.loads(paths.progress.read_text())
        if record["new_version"] != version:
            _fail(
                f"{display_path(paths.progress)}: a move to SGLang {record['new_version']} is not finished; run "
                f"`pdfleet blue-green {display_path(paths.py)} --version {record['new_version']}` to finish it first "
                "(or remove that file and the staged .next files if it was abandoned); nothing was changed"
            )
        move = BlueGreen(**{**record["plan"], "moves": tuple(tuple(m) for m in record["plan"]["moves"])},
                         old_text=record["old_text"], new_text=record["new_text"])  # fmt: skip
        say("validate", f"continuing: done before: {', '.join(record['done']) or 'nothing'}")
        return move, record
    try:
        move = plan_blue_green(cluster, paths.yaml, version)
    except Refused as refusal:
        _fail(str(refusal))
    plan = {k: getattr(move, k) for k in ("old_version", "new_version", "moves", "instances", "router_url")}
    record = {"new_version": version, "plan": plan, "old_text": move.old_text, "new_text": move.new_text, "done": []}
    return move, record


def _save(paths: Paths, record: dict) -> None:
    tmp = paths.progress.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(paths.progress)


def limits(nodes: list[str]) -> list[str]:
    """pyinfra's --limit, once per node (one comma-separated value names no host: pyinfra then runs on none)."""
    return [arg for node in nodes for arg in ("--limit", node)]


def _run(paths_py: Path, deploy: str, *args: str, step: str, by_hand: str) -> str:
    result = run_deploy(paths_py, deploy, *args, stream=True)
    if "No host matches found" in result.stdout:  # pyinfra only warns, and runs on the hosts it found
        _fail(f"{step}: pyinfra found no host for a --limit of {' '.join(args)} in {display_path(paths_py)}; "
              "run the same command again once the inventory names them", 1)  # fmt: skip
    if result.returncode != 0:
        _fail(f"{step} failed (pyinfra exit {result.returncode}); fix what it says and run the same command again "
              f"(it continues here); by hand: {by_hand}", 1)  # fmt: skip
    return result.stdout


def blue_green(inventory: str, cluster: Cluster, version: str, yes: bool, dry: bool) -> None:
    paths = Paths(inventory)
    started = time.monotonic()
    say("validate", f"{display_path(paths.yaml)}: SGLang {cluster.sglang_version} -> {version} on the spares")
    if not paths.progress.exists() and cluster.sglang_version == version:
        say("validate", f"nothing to do: {display_path(paths.yaml)} serves SGLang {version}")
        return
    move, record = _record(paths, cluster, version)
    if not record["done"]:
        for old, new in move.moves:
            say("validate", f"{new} takes {old}'s place (SGLang {version}); {old} becomes a spare")
        say("validate", f"the router stays at {move.router_url}; both sets serve during the switch, never paired")
        click.echo(move.inventory_diff, nl=False)
    if dry:
        print_steps(STEPS, record["done"])
        return
    if not record["done"]:
        _confirm(cluster, yes)
        _save(paths, record)
    timings: dict[str, float] = {}

    def step(name: str, action) -> None:
        if name in record["done"]:
            say(name, "done in an earlier run")
            return
        began = time.monotonic()
        action()
        timings[name] = round(time.monotonic() - began, 1)
        record["done"].append(name)
        _save(paths, record)

    router = cluster.router.node
    outgoing = f"pdfleet_outgoing={paths.yaml}"

    def stage() -> None:
        paths.staged_yaml.write_text(move.new_text)
        rendered_as = display_path(paths.yaml)
        paths.staged_py.write_text(STAGED_WRAPPER.format(name=paths.yaml.name, rendered_as=rendered_as))
        say("stage", f"{display_path(paths.staged_yaml)} written (the inventory after the move)")

    def bring_up() -> None:
        nodes = ", ".join(move.incoming_nodes)
        say("bring up", f"deploys/pd.py on {nodes}: SGLang {version}, out of the router ...")
        # The router's node may be one of them (going back onto the set that holds it): its membership then keeps
        # the serving set beside the new one, as the switch does.
        args = [*limits(move.incoming_nodes), "--data", outgoing]
        by_hand = f"pyinfra {display_path(paths.staged_py)} deploys/pd.py {' '.join(args)}"
        _run(paths.staged_py, "pd.py", *args, step="bring up", by_hand=by_hand)
        say("bring up", f"the new set runs on {nodes}")

    def switch() -> None:
        say("switch", f"both sets in the router on {router}, then the SGLang {move.old_version} set drained ...")
        output = _run(paths.staged_py, "switch.py", "--limit", router, "--data", outgoing, step="switch",
                      by_hand=f"pyinfra {display_path(paths.staged_py)} deploys/switch.py --limit {router} "
                      f"--data {outgoing}")  # fmt: skip
        for line in output.splitlines():
            if "Switch | " in line:
                say("switch", line.split("Switch | ", 1)[1].strip())

    def retire() -> None:
        nodes = ", ".join(move.outgoing_nodes)
        note = f"pdfleet_retire_note=blue/green: SGLang {move.old_version} set replaced by {version}; now a spare"
        args = [*limits(move.outgoing_nodes), "--data", "pdfleet_retire_scope=instances"]
        _run(paths.py, "retire.py", *args, "--data", note, step="retire",
             by_hand=f"pyinfra {display_path(paths.py)} deploys/retire.py {' '.join(args)}")  # fmt: skip
        say("retire", f"{nodes}: SGLang units stopped and removed (spares now, SGLang {move.old_version} kept on disk)")

    def rewrite() -> None:
        current = paths.yaml.read_text()
        if current == move.new_text:
            say("inventory", "already written")
            return
        if current != move.old_text:
            _fail(f"{display_path(paths.yaml)} changed since this move was decided; nothing was written. Put it back, "
                  f"or remove {display_path(paths.progress)} and start again", 1)  # fmt: skip
        _write_atomically(paths.yaml, move.new_text)
        say("inventory", f"{display_path(paths.yaml)} written: SGLang {version} on {', '.join(move.incoming_nodes)}")

    def converge() -> None:
        _run(paths.py, "serve.py", step="converge", by_hand=f"pyinfra {display_path(paths.py)} deploys/serve.py")
        say("converge", "the router's membership holds the new set only")

    step("stage", stage)
    step("bring up", bring_up)
    step("switch", switch)
    step("retire", retire)
    step("inventory", rewrite)
    step("converge", converge)
    for leftover in (paths.progress, paths.staged_yaml, paths.staged_py):
        leftover.unlink(missing_ok=True)
    total = round(time.monotonic() - started, 1)
    spent = ", ".join(f"{k} {v} s" for k, v in timings.items())
    say("done", f"SGLang {version} serves on {', '.join(move.incoming_nodes)} in {total} s ({spent}); spares: "
        f"{', '.join(move.outgoing_nodes)}; the endpoint: {move.router_url}")  # fmt: skip


def _confirm(cluster: Cluster, yes: bool) -> None:
    if yes:
        say("confirm", "--yes given")
        return
    if not sys.stdin.isatty():
        _fail("no terminal to confirm on and no --yes: nothing was changed (scripts pass --yes)")
    typed = click.prompt(f"Type the cluster's name ({cluster.name}) to go ahead", default="", show_default=False)
    if typed.strip() != cluster.name:
        _fail(f"confirmation: found {typed.strip()!r}, expected {cluster.name!r}; nothing was changed")
