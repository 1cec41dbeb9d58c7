"""`pdfleet replace-node INVENTORY OLD NEW`: the orchestration. The decisions are pdfleet.replaceplan's (pure);
every step that touches a host is a deploy run with pyinfra (drain.py, retire.py, pd.py); this module runs them
in order, prints each step as it runs, and records its progress beside the inventory so that running the same
command again after an interruption continues where it stopped.

Progress file: `.NAME.replace.json` beside NAME.yaml, written after the confirmation, removed when the replacement
is done. It holds the decided replacement and the steps done.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import click

from pdfleet import knownhosts
from pdfleet.cluster import Cluster, load_cluster
from pdfleet.inventory import display_path, yaml_for
from pdfleet.replaceplan import STEPS, Move, Refused, Replacement, already_replaced, plan_replacement

REPO = Path(__file__).resolve().parent.parent
# Seconds an SSH connection may take before a node counts as not answering.
CONNECT_TIMEOUT = 5


def progress_path(inventory: str) -> Path:
    path = yaml_for(inventory)
    return path.with_name(f".{path.stem}.replace.json")


# Seconds the command waits, after the converge, for the replaced instance to be ready in the router.
ROUTER_READY_TIMEOUT = 120


def say(step: str, text: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {step} | {text}", err=True)


class Replace:
    """One run of the command: the inventory, the nodes, the switches, and what it learnt so far."""

    def __init__(self, inventory: str, cluster: Cluster, old: str, new: str, yes: bool, dry: bool, outage: bool):
        self.inventory = inventory
        self.yaml = yaml_for(inventory)
        self.cluster = cluster
        self.old, self.new = old, new
        self.yes, self.dry, self.allow_outage = yes, dry, outage
        self.progress = progress_path(inventory)
        self.timings: dict[str, float] = {}
        # OLD's answer to this run's validation: the retire trusts it rather than wait out a dead node's SSH
        # timeout twice; a run continued later asks again.
        self.old_probe: tuple[bool, str] | None = None

    # -- the nodes, as ssh sees them ---------------------------------------------------------------------------

    def _ssh_options(self) -> list[str]:
        ssh = self.cluster.ssh
        options = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}", "-p", str(ssh.port)]
        base = self.yaml.resolve().parent
        if ssh.key:
            options += ["-i", str((base / Path(ssh.key).expanduser()).resolve())]
        if ssh.known_hosts:
            known = (base / Path(ssh.known_hosts).expanduser()).resolve()
            options += ["-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes"]
        return options

    def answers(self, node: str) -> tuple[bool, str]:
        """Whether the node takes an SSH login with the inventory's key and pinned host key; else why not."""
        address = self.cluster.node(node).address
        run = subprocess.run(
            ["ssh", *self._ssh_options(), f"{self.cluster.ssh.user}@{address}", "true"],
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=CONNECT_TIMEOUT * 4,
        )
        reason = (run.stderr.strip().splitlines() or [f"ssh exited {run.returncode}"])[-1]
        return run.returncode == 0, reason

    def scan_host_key(self, node: str) -> tuple[str, str] | None:
        address = self.cluster.node(node).address
        run = subprocess.run(
            ["ssh-keyscan", "-T", str(CONNECT_TIMEOUT), "-p", str(self.cluster.ssh.port), "-t", "ed25519", address],
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        return knownhosts.scanned(run.stdout)

    # -- the deploys --------------------------------------------------------------------------------------------

    def pyinfra(self, deploy: str, *args: str, stream: bool = False) -> subprocess.CompletedProcess:
        return run_deploy(self.yaml.resolve().with_suffix(".py"), deploy, *args, stream=stream)

    def router_status(self, instance: str, router: str | None = None) -> str:
        """The router's status of INSTANCE (ready, not_ready, failed, draining, absent), read on the router's node
        (ROUTER, else the inventory's as the run began) by deploys/status.py; "unknown" when it does not answer."""
        router = router or self.cluster.router.node
        with tempfile.TemporaryDirectory(prefix="pdfleet-replace-") as out:
            self.pyinfra("status.py", "--limit", router, "--data", f"pdfleet_status_out={out}")
            report = Path(out) / f"{router}.json"
            if not report.exists():
                return "unknown"
            view = (json.loads(report.read_text()).get("router") or {}).get("view") or {}
        for worker in view.get("workers", []):
            if worker.get("instance") == instance:
                return (worker.get("router") or {}).get("status", "absent")
        return "absent"

    def by_hand(self, deploy: str, *args: str) -> str:
        inventory_py = display_path(self.yaml.with_suffix(".py"))
        return " ".join(["pyinfra", inventory_py, f"deploys/{deploy}", *(shlex.quote(a) for a in args)])


def print_steps(steps: tuple[tuple[str, str], ...], done: list[str]) -> None:
    """--dry: every step, done before or to run, and that nothing was changed."""
    for step, what in steps:
        mark = "done" if step in done or step == "validate" else "would run"
        click.echo(f"  {step:<10} {mark:<10} {what}")
    say("dry", "nothing was changed")


def run_deploy(inventory_py: Path, deploy: str, *args: str, stream: bool = False) -> subprocess.CompletedProcess:
    """pyinfra INVENTORY deploys/DEPLOY ARGS from this checkout; `stream`: a long converge, its progress shown as it
    comes (and kept for a summary)."""
    command = [sys.executable, "-m", "pyinfra", "-y", str(inventory_py), str(REPO / "deploys" / deploy), *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if stream:
        with subprocess.Popen(
            command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1,
        ) as process:  # fmt: skip
            lines = []
            for line in process.stdout:
                sys.stderr.write(line)
                lines.append(line)
        return subprocess.CompletedProcess(command, process.returncode, "".join(lines), "")
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"pdfleet: {message}", err=True)
    sys.exit(code)


def _load_progress(run: Replace) -> dict | None:
    if not run.progress.exists():
        return None
    record = json.loads(run.progress.read_text())
    if (record["old"], record["new"]) != (run.old, run.new):
        _fail(
            f"{display_path(run.progress)}: the replacement of {record['old']} by {record['new']} is not finished; "
            f"run `pdfleet replace-node {run.inventory} {record['old']} {record['new']}` to finish it first "
            "(or remove that file if it was abandoned); nothing was changed"
        )
    return record


def _save_progress(run: Replace, record: dict) -> None:
    tmp = run.progress.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(run.progress)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, path.stat().st_mode & 0o7777)
    tmp.replace(path)


def _describe(replacement: Replacement) -> list[str]:
    lines = []
    what = "re-imaged in place" if replacement.reimage else f"replaced by the spare {replacement.new}"
    if replacement.instance:
        ranks = f", rank {replacement.rank} of {replacement.nnodes}" if replacement.nnodes > 1 else ""
        lines.append(f"{replacement.old} ({replacement.role} instance {replacement.instance}{ranks}) is {what}")
        if replacement.nnodes > 1:
            lines.append(f"every rank of {replacement.instance} restarts together with the new membership")
        if replacement.last_of_role:
            lines.append(
                f"OUTAGE: {replacement.instance} is the only {replacement.role} instance; the endpoint does not "
                "answer until it serves again (--allow-outage given)"
            )
    else:
        lines.append(f"{replacement.old} (no instance) is {what}")
    for move in replacement.moves:
        lines.append(f"{move.duty} moves from {move.old} to {move.new}")
    lines.append(f"the router will answer at {replacement.router_url}")
    return lines


def _confirm(run: Replace) -> None:
    if run.yes:
        say("confirm", "--yes given")
        return
    if not sys.stdin.isatty():
        _fail("no terminal to confirm on and no --yes: nothing was changed (scripts pass --yes)")
    typed = click.prompt(
        f"Type the name of the node to replace ({run.old}) to go ahead", default="", show_default=False
    )
    if typed.strip() != run.old:
        _fail(f"confirmation: found {typed.strip()!r}, expected {run.old!r}; nothing was changed")


def replace_node(inventory: str, cluster: Cluster, old: str, new: str, yes: bool, dry: bool, allow_outage: bool):
    run = Replace(inventory, cluster, old, new, yes, dry, allow_outage)
    started = time.monotonic()
    record = _load_progress(run)
    say("validate", f"{display_path(run.yaml)}: replace {old} by {new}")
    if record is None and already_replaced(cluster, old, new):
        placement = cluster.placement(new)
        say("validate", f"nothing to do: {old} is no longer in the inventory and {new} serves {placement[0].name}")
        return
    if record is None:
        try:
            replacement = plan_replacement(cluster, run.yaml, old, new, allow_outage)
        except Refused as refusal:
            _fail(str(refusal))
        ok, why = (True, "") if replacement.reimage else run.answers(new)
        if not ok:
            _fail(f"NEW: {new} ({cluster.node(new).address}) does not answer over SSH ({why}); bring it up, check "
                  "its address and key, then run the same command again; nothing was changed")  # fmt: skip
        old_answers, old_why = run.old_probe = run.answers(old)
        record = {
            "old": old,
            "new": new,
            "replacement": {k: v for k, v in asdict(replacement).items() if k not in ("old_text", "new_text")},
            "new_text": replacement.new_text,
            "old_answered": old_answers,
            "done": [],
        }
        for line in _describe(replacement):
            say("validate", line)
        say("validate", f"{old} {'answers' if old_answers else 'does not answer (' + old_why + ')'}")
        if replacement.last_of_role and not dry:
            record["outage"] = _outage_start(run, replacement)
        diff = replacement.inventory_diff
        click.echo(diff if diff else "(the inventory does not change)\n", nl=False)
    else:
        replacement = Replacement(
            **{**record["replacement"], "moves": tuple(Move(**m) for m in record["replacement"]["moves"])},
            old_text="",
            new_text=record["new_text"],
        )
        say("validate", f"continuing: done before: {', '.join(record['done']) or 'nothing'}")
    if dry:
        print_steps(STEPS, record["done"])
        return
    if not record["done"]:
        _confirm(run)
        _save_progress(run, record)

    def step(name: str, action) -> None:
        if name in record["done"]:
            say(name, "done in an earlier run")
            return
        began = time.monotonic()
        action()
        run.timings[name] = round(time.monotonic() - began, 1)
        record["done"].append(name)
        record.setdefault("timings", {})[name] = run.timings[name]
        _save_progress(run, record)

    step("drain", lambda: _drain(run, replacement, record))
    step("retire", lambda: _retire(run, replacement, record))
    step("inventory", lambda: _rewrite(run, replacement))
    step("host key", lambda: _pin_host_key(run, replacement))
    step("converge", lambda: _converge(run, replacement, record))
    step("undrain", lambda: _undrain(run, replacement, record))
    run.progress.unlink(missing_ok=True)
    total = round(time.monotonic() - started, 1)
    spent = ", ".join(f"{k} {v} s" for k, v in run.timings.items())
    say("done", f"{new} serves in {old}'s place in {total} s ({spent}); the endpoint: {replacement.router_url}")
    if record.get("outage"):
        say("done", _outage_report(replacement, record["outage"]))


def _drain(run: Replace, replacement: Replacement, record: dict) -> None:
    if not replacement.instance:
        say("drain", f"{run.old} serves no instance: nothing to drain")
        return
    if replacement.last_of_role:
        say("drain", f"{replacement.instance} is the only {replacement.role} instance: not drained (outage accepted)")
        return
    if not record["old_answered"] or replacement.reimage:
        say("drain", f"{run.old} does not answer: not drained (its requests in flight were lost with it)")
        return
    router = run.cluster.router.node
    if router == run.old:
        say("drain", "the router ran on the node being replaced: nothing to drain through")
        return
    reason = f"replace-node {run.old} by {run.new}"
    data = ["--limit", router, "--data", f"pdfleet_drain={replacement.instance}", "--data",
            "pdfleet_drain_action=drain", "--data", f"pdfleet_drain_reason={reason}"]  # fmt: skip
    say("drain", f"{replacement.instance} out of the router on {router}, its requests finishing ...")
    result = run.pyinfra("drain.py", *data)
    for line in (result.stderr + result.stdout).splitlines():
        if "Drain | " in line:
            say("drain", line.split("Drain | ", 1)[1])
    if result.returncode != 0:
        say("drain", "not every request finished in time; the retire's stop lets the engine finish what it can")
    record["drained"] = True


def _retire(run: Replace, replacement: Replacement, record: dict) -> None:
    if replacement.reimage:
        say("retire", f"{run.old} was re-imaged: nothing of the cluster is left on it")
        return
    answers, why = run.old_probe or run.answers(run.old)
    if not answers:
        address = run.cluster.node(run.old).address
        say("retire", f"WARNING {run.old} does not answer ({why}): its units could not be disabled. Before it comes "
            f"back on the network, wipe it, or when it answers run: pyinfra {address} deploys/retire.py "
            f"(with your SSH user and key; docs/runbooks/replace-node.md)")  # fmt: skip
        return
    result = run.pyinfra(
        "retire.py", "--limit", run.old, "--data", f"pdfleet_retire_note=replaced by {run.new} (pdfleet replace-node)"
    )
    if result.returncode != 0:
        errors = [line.strip() for line in (result.stderr + result.stdout).splitlines() if "rror" in line]
        by_hand = run.by_hand("retire.py", "--limit", run.old)
        _fail(f"retire {run.old} failed: {errors[-1] if errors else 'see pyinfra'}; the inventory was not changed. "
              f"Fix it and run the same command again; by hand: {by_hand}", 1)  # fmt: skip
    say("retire", f"{run.old}: serving units stopped, disabled and removed (a return will not rejoin the cluster)")


def _rewrite(run: Replace, replacement: Replacement) -> None:
    if replacement.reimage and not replacement.moves:
        say("inventory", "unchanged (a re-image keeps the node's name and address)")
        return
    current = run.yaml.read_text()
    if current == replacement.new_text:
        say("inventory", "already written")
        return
    if replacement.old_text and current != replacement.old_text:
        _fail(f"{display_path(run.yaml)} changed since this replacement was decided; nothing was written. Put it "
              f"back, or remove {display_path(run.progress)} and start again", 1)  # fmt: skip
    _write_atomically(run.yaml, replacement.new_text)
    say("inventory", f"{display_path(run.yaml)} written: {run.new} in {run.old}'s place")


def _pin_host_key(run: Replace, replacement: Replacement) -> None:
    if not replacement.reimage:
        say("host key", f"{run.new} keeps its pinned key")
        return
    ssh = run.cluster.ssh
    path = (run.yaml.resolve().parent / Path(ssh.known_hosts).expanduser()).resolve()
    node = run.cluster.node(run.old)
    text = path.read_text() if path.exists() else ""
    pinned = knownhosts.entries(text, node.address, node.name, ssh.port)
    scanned = run.scan_host_key(run.old)
    if scanned is None:
        _fail(f"host key: {run.old} ({node.address}) did not show its host key (ssh-keyscan); bring it up and run "
              "the same command again", 1)  # fmt: skip
    if scanned in pinned:
        say("host key", f"{run.old}'s pinned key is the one it shows: unchanged")
        return
    was = ", ".join(knownhosts.fingerprint(k) for _, k in pinned) or "none"
    say("host key", f"{run.old} ({node.address}) shows a new host key: {knownhosts.fingerprint(scanned[1])} "
        f"({scanned[0]}); pinned now: {was}")  # fmt: skip
    if not run.yes:
        say("host key", "compare it with the node's console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)")
        typed = click.prompt(f"Type {run.old} again to pin the new key", default="", show_default=False)
        if typed.strip() != run.old:
            _fail(f"host key: found {typed.strip()!r}, expected {run.old!r}; the key was not pinned. Run the same "
                  "command again to continue", 1)  # fmt: skip
    _write_atomically(path, knownhosts.replaced(text, node.address, node.name, ssh.port, *scanned))
    say("host key", f"pinned in {display_path(path)}")


def _outage_start(run: Replace, replacement: Replacement) -> dict:
    """Whether the last instance of its role still serves as the replacement begins: if the router has it out
    already, the outage began before this command (the node died) and is timed from now; if not, the converge's
    restart stops it, and the deploy times it from that stop."""
    status = run.router_status(replacement.instance)
    outage = {"router_status": status, "out_since": None if status == "ready" else time.time()}
    if status == "ready":
        say("validate", f"{replacement.instance} still serves: the outage begins when the converge stops it")
    else:
        say("validate", f"OUTAGE: the router has {replacement.instance} {status}: no {replacement.role} instance "
            "serves; the outage began before this command and is timed from now")  # fmt: skip
    return outage


def deploy_outage_figure(output: str) -> str | None:
    """The converge's own outage figure (roles/restarts.py: "Restart | I: OUTAGE of the R role: 8.4 s without
    ..."), the last one printed; None when the converge restarted no last instance."""
    figures = [line.split("OUTAGE of the", 1)[1] for line in output.splitlines() if "OUTAGE of the" in line]
    return figures[-1].split(":", 1)[1].strip() if figures else None


def _outage_report(replacement: Replacement, outage: dict) -> str:
    """The outage's length as this command saw it: from the start (the instance already out) or from the
    converge's stop of it (the deploy's own figure) to the health gate through the router."""
    ended = outage.get("ended")
    if outage.get("out_since") and ended:
        began = time.strftime("%H:%M:%S", time.localtime(outage["out_since"]))
        seconds = ended - outage["out_since"]
        return (
            f"OUTAGE of the {replacement.role} role: {seconds:.1f} s from {began} (when this command found "
            f"{replacement.instance} out of the router; it was out before) to its health gate"
        )
    if outage.get("deploy_figure"):
        return f"OUTAGE of the {replacement.role} role: {outage['deploy_figure']}"
    return f"OUTAGE of the {replacement.role} role: its length is in the converge's 'Restart | ... OUTAGE' line"


def _wait_in_router(run: Replace, replacement: Replacement) -> None:
    """Nothing was drained (OLD did not answer): done means the instance ready in the router all the same, the router
    of the rewritten inventory (it moved when OLD held it, and a new router registers its workers after it starts)."""
    if replacement.instance is None:
        say("undrain", "nothing was drained")
        return
    router = load_cluster(run.yaml).router.node
    deadline = time.monotonic() + ROUTER_READY_TIMEOUT
    while (status := run.router_status(replacement.instance, router)) != "ready":
        if time.monotonic() > deadline:
            why = f"{replacement.instance} is {status} in the router on {router} {ROUTER_READY_TIMEOUT} s after the"
            _fail(f"{why} converge; look at `pdfleet status {run.inventory}`, then run the same command again", 1)
        time.sleep(2)
    say("undrain", f"nothing was drained; {replacement.instance} ready in the router on {router}")


def _converge(run: Replace, replacement: Replacement, record: dict) -> None:
    args = []
    if replacement.outage_switch:
        args += ["--data", f"pdfleet_allow_outage={replacement.outage_switch}"]
    say("converge", f"deploys/pd.py on every node ({run.new} from bare; the others change only where the "
        "replacement reaches them) ...")  # fmt: skip
    result = run.pyinfra("pd.py", *args, stream=True)
    if result.returncode != 0:
        _fail(f"converge failed (pyinfra exit {result.returncode}); fix what it says and run the same command again "
              f"(it continues here); by hand: {run.by_hand('pd.py', *args)}", 1)  # fmt: skip
    say("converge", f"{run.new} serves; the health gate passed through the router")
    outage = record.get("outage")
    if outage is not None:
        outage["ended"] = time.time()
        outage["deploy_figure"] = deploy_outage_figure(result.stdout)


def _undrain(run: Replace, replacement: Replacement, record: dict) -> None:
    if not record.get("drained"):
        _wait_in_router(run, replacement)
        return
    router = run.cluster.router.node  # a drain happened only through a router that stays where it is
    data = ["--data", f"pdfleet_drain={replacement.instance}", "--data", "pdfleet_drain_action=undrain"]
    result = run.pyinfra("drain.py", "--limit", router, *data)
    if result.returncode != 0:
        _fail(f"undrain {replacement.instance} on {router} failed; by hand: pdfleet undrain {run.inventory} "
              f"{replacement.instance}", 1)  # fmt: skip
    say("undrain", f"{replacement.instance} back in the router, ready")
