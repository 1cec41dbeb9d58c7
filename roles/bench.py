"""The benchmark client on the router's node, and the scenario runs of `pdfleet bench` (deploys/bench.py).

`bench_client()`: SGLang's `sglang.bench_serving` from the pinned wheel set of pdfleet/benchclient.py, in a venv of
its own under /opt/pdfleet/bench (never the serving venv nor the router's), synced with uv to exactly that list
(`uv pip sync`: nothing resolved on the node, anything not listed removed); the index is the inventory's
`runtime.index_url`, as for the other wheel sets. Beside it the runner (pdfleet/benchrun.py), which streams the
client's output as lines. A venv that matches the list is left alone.

`scenario_run()`: one scenario, run on the router's node while its output streams back (each line printed as it
comes, marked `@@bench`; pdfleet bench shows them), then its JSONL record and output copied to the directory of
the machine running pyinfra. A scenario that fails is recorded as failed and the next one runs.
"""

from __future__ import annotations

import json
import shlex
import time
from io import StringIO
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import FactBase, FunctionCommand, StringCommand, deploy, operation
from pyinfra.operations import apt, files

from pdfleet import benchrun
from pdfleet.benchclient import HOME, REQUIREMENTS, RUNNER, VENV, WHEELS, normalize, requirements
from pdfleet.benchplan import BenchPlan, redacted, shell_line
from pdfleet.runtimeplan import UV_VENV
from roles import common
from roles.runtime import VenvPackages, uv_installed

RUNNER_SOURCE = Path(benchrun.__file__)
MARK = "Bench | "  # pdfleet bench shows pyinfra's lines holding this, and the runner's (benchrun.MARK)


class BenchInputs(FactBase):
    """What a run needs on the router's node before it starts: the router's /readiness status (`000`: no answer)
    and which of the given files are missing or empty: {"readiness": "200", "missing": [path, ...]}."""

    def command(self, url: str, paths: tuple[str, ...]) -> StringCommand:
        readiness = f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 {shlex.quote(url + '/readiness')} || true"
        checks = "".join(f" [ -s {shlex.quote(p)} ] || echo {shlex.quote('missing ' + p)};" for p in paths)
        return StringCommand(f"{readiness}; echo;{checks} true")

    def process(self, output: list[str]) -> dict:
        lines = [line.strip() for line in output]
        readiness = lines[0] if lines and not lines[0].startswith("missing ") else ""
        return {"readiness": readiness or "000", "missing": [ln[8:] for ln in lines if ln.startswith("missing ")]}


def inputs_problem(plan: BenchPlan, found: dict) -> str | None:
    """Why the run cannot start, from BenchInputs' reading (None: it can), naming what to do."""
    if found["readiness"] != "200":
        answer = "no answer" if found["readiness"] == "000" else f"HTTP {found['readiness']}"
        return (
            f"the router at {plan.router_url} on {plan.node} answers /readiness with {answer}, expected 200 (a ready "
            "prefill and decode): see `pdfleet status`; nothing was run"
        )
    if found["missing"]:
        hints = []
        if plan.dataset_path in found["missing"]:
            hints.append(
                "copy ShareGPT_V3_unfiltered_cleaned_split.json there, give --upload-dataset LOCAL_FILE or "
                "--dataset-path, or leave the scenarios that read it out (--scenarios)"
            )
        if any(p.startswith(plan.tokenizer + "/") for p in found["missing"]):
            hints.append(f"the tokenizer comes with the weights in {plan.tokenizer}: converge deploys/pd.py first")
        if plan.key_file and plan.key_file in found["missing"]:
            hints.append("the API key file comes with the router: converge deploys/pd.py first")
        return f"missing or empty on {plan.node}: {', '.join(found['missing'])}; {'; '.join(hints)}; nothing was run"
    return None


@operation()
def client_synced(venv: str, requirements_file: str, wheels: dict[str, str]):
    """
    A venv holding exactly these wheels, installed without dependencies (the list is complete).

    + venv: where the venv lives
    + requirements_file: the list on the node (`name==version` lines), what `uv pip sync` reads
    + wheels: the same list, {name: version}, compared with the venv's distributions
    """
    installed = host.get_fact(VenvPackages, venv=venv)
    wanted = {normalize(name): version for name, version in wheels.items()}
    if installed == wanted:
        host.noop(f"bench client: {len(wanted)} pinned wheels installed")
        return
    uv = f"{UV_VENV}/bin/uv"
    if installed is None:
        yield StringCommand(uv, "venv", "--quiet", "--python", "/usr/bin/python3", venv)
    index = common.cluster().runtime.index_url
    yield StringCommand(
        uv, "pip", "sync", "--quiet", "--python", f"{venv}/bin/python3",
        *(["--index-url", index] if index else []), requirements_file,
    )  # fmt: skip


@deploy("Bench client")
def bench_client():
    """sglang.bench_serving and its pinned set in their own venv, and the runner, on the router's node."""
    apt.packages(name="Python venv support", packages=["python3-venv"], no_recommends=True)
    uv_installed(name="uv for the bench client")
    files.directory(name=f"{HOME} present", path=HOME, mode="0755")
    files.put(
        name="bench client requirement list",
        src=StringIO("".join(line + "\n" for line in requirements())),
        dest=REQUIREMENTS,
        mode="0644",
    )
    client_synced(
        name=f"bench client: sglang.bench_serving {WHEELS['sglang']} and {len(WHEELS) - 1} pinned wheels",
        venv=VENV,
        requirements_file=REQUIREMENTS,
        wheels=WHEELS,
    )
    files.put(name="bench runner", src=str(RUNNER_SOURCE), dest=RUNNER, mode="0755")


def _scenario(state, host, plan_json: str, index: int, out_dir: str) -> bool:
    plan = BenchPlan.from_json(plan_json)
    run = plan.runs[index]
    where = f"[{index + 1}/{len(plan.runs)}] {run.name}"
    logger.info(f"{host.print_prefix}{MARK}{where}: started: {run.label}, {run.prompts} prompts at once")
    started = time.monotonic()
    ok, output = host.run_shell_command(shell_line(plan.command(run)), print_output=True)
    seconds = round(time.monotonic() - started, 1)
    lines = list(output.stdout_lines)
    status = None
    for line in reversed(lines):
        if line.startswith(benchrun.EXIT_MARK):
            status = int(line[len(benchrun.EXIT_MARK) :].strip() or -1)
            break
    shown = [line[len(benchrun.MARK) :] for line in lines if line.startswith(benchrun.MARK)]
    error = ""
    if status is None:
        error = (output.stderr_lines or lines or ["the runner printed nothing"])[-1][:300]
    elif status != 0:
        error = next((line for line in reversed(shown) if line.strip()), f"exit status {status}")[:300]
    _, record = host.run_shell_command(f"cat {shlex.quote(run.jsonl)} 2>/dev/null || true", print_output=False)
    raw = Path(out_dir) / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    records = [json.dumps(redacted(json.loads(line))) for line in record.stdout_lines if line.strip().startswith("{")]
    (raw / f"{run.name}.jsonl").write_text("".join(r + "\n" for r in records))
    (raw / f"{run.name}.log").write_text("".join(line + "\n" for line in shown))
    (raw / f"{run.name}.status.json").write_text(
        json.dumps({"exit_status": status, "seconds": seconds, "error": error}) + "\n"
    )
    ended = "finished" if status == 0 else f"failed ({error})" if error else f"exit status {status}"
    logger.info(f"{host.print_prefix}{MARK}{where}: {ended} after {seconds} s")
    return True  # the next scenario runs in any case; pdfleet bench reports each one


@operation(is_idempotent=False)
def scenario_run(plan_json: str, index: int, out_dir: str):
    """
    Run one scenario of a `pdfleet bench` plan on the router's node, its output streaming back; its record, output
    and exit status land in OUT_DIR/raw/ on the machine running pyinfra.

    + plan_json: the plan (pdfleet.benchplan.BenchPlan as JSON)
    + index: which of its runs
    + out_dir: the local directory of the run
    """
    yield FunctionCommand(_scenario, (plan_json, index, out_dir), {})
