"""`pdfleet bench INVENTORY`: the orchestration. The plan is pdfleet.benchplan's (pure); what touches the router's
node is deploys/bench.py, run with pyinfra while its output streams here; this module shows the progress (which
scenario of how many, how long the whole run and the scenario have taken, the client's own lines), then reads the
records back, prints the comparison with the published figures and writes the run's directory:

    OUT/plan.json        what ran: every scenario's bench_serving command line, the options
    OUT/raw/NAME.jsonl   bench_serving's record of each scenario (secrets of the server's info redacted)
    OUT/raw/NAME.log     the client's output; NAME.status.json its exit status and duration
    OUT/results.json     every figure measured and published, the ratios, the notes, what differed
    OUT/table.txt        the table printed at the end
    OUT/chart.png        total and output token throughput beside the published ones (needs matplotlib)

Exit status: 0 every scenario completed all its requests, 1 one did not (or the run stopped), 2 refused before any
contact (a bad inventory or option).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import click

from pdfleet import benchplan
from pdfleet.benchclient import CLIENT_VERSION, WHEELS
from pdfleet.benchplan import BenchPlan, Options, Outcome
from pdfleet.cluster import Cluster
from pdfleet.inventory import display_path, yaml_for
from pdfleet.serving import ServingPlan

REPO = Path(__file__).resolve().parent.parent
MARK = "Bench | "
CLIENT_MARK = "@@bench "
EXIT_MARK = "@@bench-exit "
_STEP = re.compile(r"^\[(\d+)/(\d+)\] (\S+): (started|finished|failed|exit status)")
_OPERATION = re.compile(r"^--> Starting operation: (.*?)\s*$")
_SCENARIO_OPERATION = re.compile(r"^bench \S+ \(\d+/\d+\)$")  # deploys/bench.py's scenario steps: marked already
_PYINFRA_ERROR = re.compile(r"pyinfra error(?: in \S+ line \d+)?: (.*)")
# The client's lines not worth a person's screen (raw/NAME.log keeps them): transformers' note that no torch is
# installed (none is needed), its whole argument namespace (twice; plan.json has the command line), and the
# file-descriptor limit it could not raise (it runs with the node's).
_QUIET = re.compile(r"^(None of PyTorch, TensorFlow|benchmark_args=Namespace\(|Namespace\(|Fail to set RLIMIT_NOFILE)")


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60:02d}:{int(seconds) % 60:02d}"


class Progress:
    """Turns pyinfra's streamed output into the lines a person watches: pdfleet's markers and the client's lines,
    each stamped with the run's elapsed time and, within a scenario, the scenario (i/n) and its own time."""

    WIDTH = 200  # the client's lines beyond this are cut on screen (raw/NAME.log keeps them whole)

    def __init__(self, echo=click.echo, clock=time.monotonic):
        self.echo = echo
        self.clock = clock
        self.started = clock()
        self.scenario: tuple[int, int, str, float] | None = None  # index, total, name, started
        self.errors: list[str] = []
        self.tail: list[str] = []

    def stamp(self) -> str:
        now = self.clock()
        if self.scenario is None:
            return f"[{_clock(now - self.started)}]"
        index, total, name, began = self.scenario
        return f"[{_clock(now - self.started)}] [{index}/{total} {name} {_clock(now - began)}]"

    def line(self, raw: str) -> None:
        line = raw.rstrip("\n")
        self.tail = (self.tail + [line])[-40:]
        if MARK in line:
            text = line.split(MARK, 1)[1]
            step = _STEP.match(text)
            if step and step.group(4) == "started":
                self.scenario = (int(step.group(1)), int(step.group(2)), step.group(3), self.clock())
                self.echo(f"{self.stamp()} {text.split(': ', 1)[1]}")
            elif step:
                self.echo(f"{self.stamp()} {text.split(': ', 1)[1]}")
                self.scenario = None
            else:
                self.echo(f"{self.stamp()} {text}")
            return
        if CLIENT_MARK in line:
            text = line.split(CLIENT_MARK, 1)[1]
            if _QUIET.match(text):
                return
            if len(text) > self.WIDTH:  # bench_serving prints its whole argument namespace, twice
                text = text[: self.WIDTH - 3] + "..."
            self.echo(f"{self.stamp()}   {text}")
            return
        operation = _OPERATION.match(line)
        if operation and not _SCENARIO_OPERATION.match(operation.group(1)):
            self.echo(f"{self.stamp()} {operation.group(1)}")  # the client's installation, the dataset's upload
            return
        error = _PYINFRA_ERROR.search(line)
        if error:
            self.errors.append(error.group(1).strip())
        elif "Error:" in line or "error:" in line:
            self.errors.append(line.strip())


def _fail(message: str) -> None:
    click.echo(f"pdfleet: {message}", err=True)
    sys.exit(2)


def describe(bench: BenchPlan) -> list[str]:
    """--dry: every scenario and the command the router's node would run, and what it needs there."""
    lines = [
        f"cluster {bench.cluster}: {len(bench.runs)} scenario(s) on {bench.node}, against {bench.router_url}",
        f"client: sglang.bench_serving {CLIENT_VERSION} and {len(WHEELS) - 1} pinned wheels in "
        f"{bench.python.rsplit('/bin/', 1)[0]} (installed or synced first)",
        f"needs on {bench.node}: the router ready, the tokenizer in {bench.tokenizer}"
        + (f", the ShareGPT file {bench.dataset_path}" if bench.dataset_path else ""),
        f"environment: {' '.join(f'{k}={v}' for k, v in bench.env.items())}",
    ]
    for index, run in enumerate(bench.runs, 1):
        lines += ["", f"[{index}/{len(bench.runs)}] {run.name}: {run.label}, {run.prompts} prompts at once"]
        lines.append("  " + benchplan.shell_line(run.argv))
    return lines


def outcomes(bench: BenchPlan, out: Path) -> list[Outcome]:
    """Each scenario's outcome from what deploys/bench.py left in OUT/raw (nothing there: not run)."""
    found = []
    for run in bench.runs:
        raw = out / "raw"
        status_file = raw / f"{run.name}.status.json"
        status = json.loads(status_file.read_text()) if status_file.exists() else {}
        jsonl = raw / f"{run.name}.jsonl"
        found.append(
            benchplan.outcome(
                run,
                jsonl.read_text() if jsonl.exists() else None,
                status.get("exit_status"),
                status.get("seconds"),
                status.get("error", ""),
            )
        )
    return found


def report(cluster: Cluster, serving: ServingPlan, bench: BenchPlan, out: Path, found: list[Outcome]) -> str:
    """The table, results.json, table.txt and the chart in OUT; returns the table."""
    differences = benchplan.setup_differences(cluster, serving, bench)
    text = benchplan.table(found, differences, bench.gpus)
    (out / "table.txt").write_text(text)
    document = benchplan.document(bench, found, differences)
    (out / "results.json").write_text(json.dumps(document, indent=1) + "\n")
    title = f"pdfleet bench, cluster {bench.cluster}, run {bench.run_id}, vs GPUStack's DeepSeek-V3.2 8xH200 table"
    try:
        benchplan.chart(found, out / "chart.png", title)
    except benchplan.ChartUnavailable as missing:
        text += f"\n{missing}\n"
    return text


def run_bench(
    inventory: str,
    cluster: Cluster,
    serving: ServingPlan,
    opts: Options,
    out_dir: str | None,
    upload: str | None,
    dry: bool,
) -> None:
    run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    bench = benchplan.plan(cluster, serving, opts, run_id)
    if upload and not bench.dataset_path:
        _fail("--upload-dataset: no chosen scenario reads the ShareGPT file (sharegpt, or --random-prompts sharegpt)")
    if upload and not Path(upload).is_file():
        _fail(f"--upload-dataset: found {upload!r}, expected a local file (ShareGPT JSON)")
    if dry:
        click.echo("\n".join(describe(bench)))
        click.echo("\n(--dry: nothing was contacted)")
        return
    out = Path(out_dir or f"bench-results/{cluster.name}-{run_id}")
    if out.exists() and any(out.iterdir()):
        _fail(f"--out: {out} exists and is not empty; choose a new directory (each run keeps its own)")
    out.mkdir(parents=True, exist_ok=True)
    plan_file = out / "plan.json"
    plan_file.write_text(bench.to_json())
    inventory_py = yaml_for(inventory).resolve().with_suffix(".py")
    if not inventory_py.exists():
        _fail(f"{display_path(inventory_py)}: no pyinfra inventory beside {display_path(yaml_for(inventory))}")
    data = ["--data", f"pdfleet_bench_plan={plan_file.resolve()}"]
    if upload:
        data += ["--data", f"pdfleet_bench_upload={Path(upload).resolve()}"]
    command = [sys.executable, "-m", "pyinfra", "-y", str(inventory_py), str(REPO / "deploys" / "bench.py"),
               "--limit", bench.node, *data]  # fmt: skip
    progress = Progress()
    click.echo(
        f"pdfleet bench: cluster {cluster.name}, {len(bench.runs)} scenario(s) from {bench.node} against the router "
        f"{bench.router_url}{'' if opts.prompts_scale == 1 else f', prompts scaled by {opts.prompts_scale}'}; "
        f"results in {out}"
    )
    click.echo(f"{progress.stamp()} checking the router and inputs, installing the client on {bench.node} if needed")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",  # pyinfra's lines reach this screen as they are printed
    }
    with subprocess.Popen(
        command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, bufsize=1, errors="replace",
    ) as process:  # fmt: skip
        for line in process.stdout:
            progress.line(line)
    found = outcomes(bench, out)
    ran = [o for o in found if o.status != "not run"]
    if process.returncode != 0 and not ran:
        reason = progress.errors[-1] if progress.errors else f"pyinfra exited {process.returncode}"
        click.echo(f"pdfleet: bench stopped before any scenario ran: {reason}", err=True)
        click.echo(f"  by hand: {benchplan.shell_line(['pyinfra', *command[3:]])}", err=True)
        (out / "pyinfra.log").write_text("\n".join(progress.tail) + "\n")
        sys.exit(1)
    click.echo()
    click.echo(report(cluster, serving, bench, out, found), nl=False)
    written = ["results.json", "table.txt", *(["chart.png"] if (out / "chart.png").exists() else []), "raw/"]
    click.echo(f"\nwritten in {out}: {', '.join(written)} (raw/: bench_serving's records and output)")
    if process.returncode != 0:
        reason = progress.errors[-1] if progress.errors else f"pyinfra exited {process.returncode}"
        click.echo(f"pdfleet: the run stopped early: {reason}", err=True)
    if process.returncode != 0 or any(o.status != "done" for o in found):
        sys.exit(1)
