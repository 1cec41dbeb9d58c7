"""The `pdfleet` command: offline views of an inventory (check, plan, render, diff), and the preflight.

INVENTORY is the file pyinfra takes (inventories/prod.py) or its YAML (inventories/prod.yaml). Exit status:
0 success, 1 differences found (diff) or a check failed (preflight), 2 invalid inventory or usage error. An
invalid inventory prints one line per problem and never a traceback.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import click

from pdfleet import __version__, drysummary, netaddr
from pdfleet.cluster import Cluster
from pdfleet.errors import InventoryError
from pdfleet.inventory import display_path, load, yaml_for
from pdfleet.options import option_lines
from pdfleet.render import RenderedFile, render, write_tree
from pdfleet.serving import ServingPlan, plan

RENDER_MARKER = ".pdfleet-render"


def _fail(message: str, lines: list[str] | None = None) -> None:
    click.echo(f"pdfleet: {message}", err=True)
    for line in lines or []:
        click.echo(f"  {line}", err=True)
    sys.exit(2)


def _load(inventory: str, sglang_version: str | None = None) -> Cluster:
    try:
        cluster = load(inventory)
        if sglang_version:
            cluster = cluster.with_sglang_version(sglang_version)
    except InventoryError as exc:
        _fail(
            f"{display_path(yaml_for(inventory))} is not a valid inventory; nothing was contacted:",
            [str(p) for p in exc.problems],
        )
    return cluster


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _short_hcas(hcas: tuple[str, ...]) -> str:
    return f"{len(hcas)}: {','.join(hcas)}" if hcas else "-"


inventory_argument = click.argument("inventory", type=click.Path(dir_okay=False))
version_option = click.option(
    "--sglang-version", default=None, metavar="V", help="Plan for this SGLang version instead of the inventory's."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pdfleet")
def main() -> None:
    """Provision and verify SGLang prefill/decode clusters with pyinfra."""


@main.command()
@inventory_argument
@version_option
def check(inventory: str, sglang_version: str | None) -> None:
    """Validate INVENTORY and print its nodes, instances, parallelism and ports."""
    cluster = _load(inventory, sglang_version)
    gpus = sum(n.gpus for n in cluster.nodes)
    click.echo(
        f"{display_path(yaml_for(inventory))}: cluster {cluster.name} is valid: {len(cluster.nodes)} nodes, "
        f"{gpus} GPUs, SGLang {cluster.sglang_version}, {cluster.model.repo}@{cluster.model.revision[:12]}, "
        f"runtime {cluster.runtime.kind}"
    )
    click.echo()
    rows = [["NODE", "ADDRESS", "GPUS", "ROLE", "INSTANCE", "RANK", "HCAS"]]
    for node in cluster.nodes:
        placement = cluster.placement(node.name)
        rows.append(
            [
                node.name,
                node.address,
                f"{node.gpus}x{node.gpu_model}",
                placement[0].role if placement else "spare",
                placement[0].name if placement else "-",
                str(placement[1]) if placement else "-",
                _short_hcas(node.hcas),
            ]
        )
    click.echo(_table(rows))
    click.echo()
    rows = [["INSTANCE", "ROLE", "NODES", "GPUS", "TP", "DP-ATTN", "EP", "HTTP", "BOOTSTRAP", "DIST-INIT"]]
    for inst in cluster.instances:
        head = cluster.node(inst.head)
        rows.append(
            [
                inst.name,
                inst.role,
                ",".join(m.node for m in inst.members),
                str(sum(cluster.node(m.node).gpus for m in inst.members)),
                str(inst.tp),
                str(inst.dp),
                str(inst.ep),
                str(inst.ports.http),
                str(inst.ports.bootstrap) if inst.role == "prefill" else "-",
                netaddr.host_port(head.address, inst.ports.dist_init) if inst.nnodes > 1 else "-",
            ]
        )
    click.echo(_table(rows))
    click.echo()
    router = cluster.router
    host = cluster.node(router.node)
    click.echo(
        f"router: smg {router.version} on {router.node}, {netaddr.url(host.address, router.port)} "
        f"(metrics :{router.prometheus_port}), prefill policy {router.prefill_policy}, "
        f"decode policy {router.decode_policy}"
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def plan_document(serving: ServingPlan, files: dict[str, dict[str, RenderedFile]]) -> dict:
    """The plan as one JSON-able object: what each host runs and holds."""
    return {
        "cluster": serving.cluster.name,
        "sglang_version": serving.sglang_version,
        "nodes": [
            {
                "host": spec.host,
                "address": spec.address,
                "role": spec.role,
                "instance": spec.instance,
                "rank": spec.rank,
                "nnodes": spec.nnodes,
                "unit": spec.unit,
                "argv": list(spec.argv),
                "server_args": list(spec.server_args),
                "env": spec.env,
                "precompile_argv": list(spec.precompile_argv),
                "files": [
                    {"path": path, "mode": f.mode, "sha256": _sha256(f.content)} for path, f in files[spec.host].items()
                ],
            }
            for spec in serving.servers
        ],
        "router": {
            "host": serving.router.host,
            "argv": list(serving.router.argv),
            "url": serving.router.url,
        },
    }


@main.command("plan")
@inventory_argument
@version_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for machines and CI).")
def plan_command(inventory: str, sglang_version: str | None, as_json: bool) -> None:
    """Print what every node will run: command, environment, DeepGEMM precompile, files."""
    cluster = _load(inventory, sglang_version)
    serving = plan(cluster)
    files = render(serving)
    if as_json:
        click.echo(json.dumps(plan_document(serving, files), indent=2))
        return
    click.echo(f"cluster {cluster.name}: SGLang {serving.sglang_version}, {len(serving.servers)} serving nodes")
    for spec in serving.servers:
        click.echo()
        click.echo(
            f"== {spec.host} ({spec.address}): {spec.role} instance {spec.instance}, "
            f"rank {spec.rank} of {spec.nnodes}, unit {spec.unit}"
        )
        click.echo("command:")
        click.echo("  " + _wrap(spec.argv))
        click.echo("environment:")
        for name, value in spec.env.items():
            click.echo(f"  {name}={value}")
        click.echo(f"DeepGEMM precompile ({spec.precompile_unit}):")
        click.echo("  " + _wrap(spec.precompile_argv))
        click.echo("files: " + ", ".join(files[spec.host]))
    click.echo()
    click.echo(f"== router on {serving.router.host}: {serving.router.url}")
    click.echo("  " + _wrap(serving.router.argv))


def _wrap(argv) -> str:
    """An argv as a shell command a person can read and paste: one option per line."""
    return " \\\n    ".join(" ".join(shlex.quote(a) for a in line) for line in option_lines(argv))


@main.command("render")
@inventory_argument
@version_option
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory to write <host>/<absolute path> into (replaced if it holds an earlier render).",
)
def render_command(inventory: str, sglang_version: str | None, out_dir: str) -> None:
    """Write every file each host must hold under OUT/<host>/<absolute path>."""
    cluster = _load(inventory, sglang_version)
    files = render(plan(cluster))
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not (out / RENDER_MARKER).exists():
            _fail(
                f"{out_dir} exists and is not an earlier pdfleet render; refusing to replace it "
                "(choose an empty or new directory)"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / RENDER_MARKER).write_text("Written by `pdfleet render`; replaced on every render.\n")
    written = write_tree(files, out)
    click.echo(f"rendered {len(written)} files for {len(files)} hosts of cluster {cluster.name} into {out_dir}")


def _git(repo: Path, *args: str, binary: bool = False):
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    if result.returncode != 0:
        _fail(f"git {' '.join(args)} failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout if binary else result.stdout.decode()


def _render_at_revision(inventory: Path, rev: str, workdir: Path) -> Path:
    """Render the inventory as it was at git revision REV, with the code and templates of that revision."""
    repo = Path(_git(inventory.parent, "rev-parse", "--show-toplevel").strip())
    relative = inventory.resolve().relative_to(repo)
    src = workdir / "src"
    src.mkdir()
    archive = _git(repo, "archive", "--format=tar", rev, binary=True)
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(src, filter="data")
    if not (src / relative).exists():
        _fail(f"{relative} does not exist at revision {rev}")
    out = workdir / "out"
    env = {**os.environ, "PYTHONPATH": str(src)}
    result = subprocess.run(
        [sys.executable, "-m", "pdfleet.cli", "render", str(relative), "--out", str(out)],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        _fail(f"rendering {relative} at revision {rev} failed:", result.stderr.strip().splitlines())
    return out


def _read_tree(root: Path) -> dict[str, str]:
    tree = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != RENDER_MARKER:
            tree[str(path.relative_to(root))] = path.read_text()
    return tree


@main.command("diff")
@inventory_argument
@click.option("--against", "rev", required=True, metavar="REV", help="git revision to compare with (e.g. origin/main).")
def diff_command(inventory: str, rev: str) -> None:
    """Show what would change on each host between git revision REV and the working tree, offline.

    Prints a unified diff per changed file; exit 0 with no output when nothing changes, 1 when something does.
    """
    path = yaml_for(inventory)
    cluster = _load(inventory)
    with tempfile.TemporaryDirectory(prefix="pdfleet-diff-") as tmp:
        old_root = _render_at_revision(path, rev, Path(tmp))
        old = _read_tree(old_root)
        new_root = Path(tmp) / "new"
        write_tree(render(plan(cluster)), new_root)
        new = _read_tree(new_root)
    changed = 0
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        changed += 1
        lines = difflib.unified_diff(
            (before or "").splitlines(keepends=True),
            (after or "").splitlines(keepends=True),
            fromfile=f"a/{name}" if before is not None else "/dev/null",
            tofile=f"b/{name}" if after is not None else "/dev/null",
        )
        click.echo("".join(lines), nl=False)
    if changed:
        hosts = sorted({name.split("/", 1)[0] for name in set(old) | set(new) if old.get(name) != new.get(name)})
        click.echo(f"# {changed} file(s) differ on {len(hosts)} host(s): {', '.join(hosts)}", err=True)
        sys.exit(1)


@main.command("dry-summary")
@click.argument("plan_file", type=click.File("r"), metavar="PLAN.json")
def dry_summary_command(plan_file) -> None:
    """Summarise `pyinfra --dry --json INVENTORY DEPLOY` per host, as Markdown (for a CI job summary).

    Exit 0 when no host would change, 1 when one would.
    """
    text = plan_file.read()
    try:
        summary = drysummary.summarise(text)
    except (ValueError, KeyError, TypeError) as error:
        _fail(f"{plan_file.name}: not the JSON of `pyinfra --dry --json`: {error}")
    click.echo(drysummary.markdown(summary), nl=False)
    if any(entry["change"] for entry in summary.values()):
        sys.exit(1)


REPO = Path(__file__).resolve().parent.parent  # the checkout: deploys/, roles/ and inventories/ live there


def _preflight_target(inventory: str, local_node: str | None) -> tuple[str, list[str]]:
    """What pyinfra is pointed at: the inventory's NAME.py, or @local with the node named through --data."""
    yaml_path = yaml_for(inventory).resolve()
    if local_node:
        return "@local", ["--data", f"pdfleet_inventory={yaml_path}", "--data", f"pdfleet_node={local_node}"]
    inventory_py = yaml_path.with_suffix(".py")
    if not inventory_py.exists():
        _fail(f"{display_path(inventory_py)}: no pyinfra inventory beside {display_path(yaml_path)}")
    return str(inventory_py), []


@main.command("preflight")
@inventory_argument
@click.option("--limit", "limits", multiple=True, metavar="NODE", help="Check only this node (repeatable).")
@click.option(
    "--local",
    "local_node",
    metavar="NODE",
    help="Check this machine (pyinfra @local) against NODE's entry in INVENTORY, without SSH.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for machines and CI).")
def preflight_command(inventory: str, limits: tuple[str, ...], local_node: str | None, as_json: bool) -> None:
    """Check that each node can serve: GPUs, NVLink, fabric, DeepEP, RDMA, host, NCCL all-reduce.

    Runs deploys/verify.py with pyinfra (read-only) and prints a table per node, or JSON. Exit status 0 when no
    check fails, 1 when one does (or a node could not be read), 2 for a bad inventory or option.
    """
    from pdfleet import preflight  # the checks; imported here so the offline commands stay light

    cluster = _load(inventory)
    source = display_path(yaml_for(inventory))
    known = [node.name for node in cluster.nodes]
    for option, name in [("--limit", n) for n in limits] + [("--local", local_node)]:
        if name is not None and name not in known:
            _fail(f"{option}: found {name!r}, expected a node of {source}: {', '.join(known)}")
    if local_node and limits:
        _fail("--limit and --local: found both, expected one (--local checks this machine only)")
    deploy = REPO / "deploys" / "verify.py"
    if not deploy.exists():
        _fail(f"{deploy}: not found; run pdfleet preflight from a pdfleet checkout")
    target, data = _preflight_target(inventory, local_node)
    wanted = [local_node] if local_node else list(limits) or known
    with tempfile.TemporaryDirectory(prefix="pdfleet-preflight-") as out:
        command = [sys.executable, "-m", "pyinfra", target, str(deploy), "-y", "--data", f"pdfleet_verify_out={out}"]
        command += data + [arg for name in limits for arg in ("--limit", name)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
        reports = []
        for name in wanted:
            path = Path(out) / f"{name}.json"
            if path.exists():
                reports.append(preflight.NodeReport.from_dict(json.loads(path.read_text())))
                continue
            lines = [line.strip() for line in (run.stderr + run.stdout).splitlines() if line.strip()]
            errors = [line for line in lines if "Error:" in line or "error:" in line]
            if not errors:
                errors = [f"pyinfra exited {run.returncode} and wrote no report for {name}"]
            reports.append(
                preflight.NodeReport(
                    name,
                    "@local" if local_node else name,
                    (
                        preflight.Result(
                            "connect",
                            preflight.FAIL,
                            errors[-1][:200],
                            "pyinfra reads the node",
                            f"run by hand for the whole output: pyinfra {target} deploys/verify.py",
                        ),
                    ),
                )
            )
    click.echo(preflight.to_json(reports) if as_json else preflight.to_table(reports))
    sys.exit(1 if preflight.failed(reports) else 0)


def _pyinfra(inventory: str, deploy: str, *args: str) -> subprocess.CompletedProcess:
    """Run one of the checkout's deploys with the pyinfra beside this Python, from the checkout."""
    yaml_path = yaml_for(inventory).resolve()
    inventory_py = yaml_path.with_suffix(".py")
    if not inventory_py.exists():
        _fail(f"{display_path(inventory_py)}: no pyinfra inventory beside {display_path(yaml_path)}")
    path = REPO / "deploys" / deploy
    if not path.exists():
        _fail(f"{path}: not found; run pdfleet from a pdfleet checkout")
    command = [sys.executable, "-m", "pyinfra", "-y", str(inventory_py), str(path), *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )


def _instance_of(cluster: Cluster, inventory: str, name: str):
    for instance in cluster.instances:
        if instance.name == name:
            return instance
    known = ", ".join(i.name for i in cluster.instances)
    _fail(f"instance: found {name!r}, expected an instance of {display_path(yaml_for(inventory))}: {known}")


def _membership(inventory: str, action: str, instance: str, reason: str, timeout: int | None) -> None:
    cluster = _load(inventory)
    _instance_of(cluster, inventory, instance)
    data = ["--data", f"pdfleet_drain={instance}", "--data", f"pdfleet_drain_action={action}"]
    if reason:
        data += ["--data", f"pdfleet_drain_reason={reason}"]
    if timeout is not None:
        data += ["--data", f"pdfleet_drain_timeout={timeout}"]
    click.echo(f"{action} {instance} on the router's node {cluster.router.node} ...", err=True)
    run = _pyinfra(inventory, "drain.py", "--limit", cluster.router.node, *data)
    lines = (run.stderr + run.stdout).splitlines()
    for line in lines:
        if "Drain | " in line:
            click.echo(line.split("Drain | ", 1)[1])
    if run.returncode != 0:
        errors = [line.strip() for line in lines if "rror" in line and "Drain | " not in line]
        click.echo(f"pdfleet: {action} {instance} failed: {errors[-1] if errors else 'see pyinfra'}", err=True)
        click.echo(f"  by hand: pyinfra {display_path(yaml_for(inventory).with_suffix('.py'))} deploys/drain.py "
                   f"--limit {cluster.router.node} {' '.join(data)}", err=True)  # fmt: skip
        sys.exit(1)


@main.command("drain")
@inventory_argument
@click.argument("instance")
@click.option("--reason", default="", help="Why (kept with the drain; pdfleet status shows it).")
@click.option("--timeout", type=int, help="Seconds to wait for its requests (default: router.drain_timeout_secs).")
@click.option("--allow-outage", is_flag=True, help="Drain it although it is the last instance of its role.")
def drain_command(inventory: str, instance: str, reason: str, timeout: int | None, allow_outage: bool) -> None:
    """Take INSTANCE out of the router and wait until its requests in flight are done.

    The router stops sending it requests at once; the command returns when the engine's own queues are empty
    (exit 0), or says how many requests are left when the bound is hit (exit 1; it stays out of the router). The
    drain survives converges until `pdfleet undrain`. Draining the last instance of a role is refused without
    --allow-outage.
    """
    cluster = _load(inventory)
    target = _instance_of(cluster, inventory, instance)
    siblings = [i.name for i in cluster.instances if i.role == target.role and i.name != instance]
    if not siblings and not allow_outage:
        _fail(
            f"{instance} is the only {target.role} instance of {display_path(yaml_for(inventory))}: draining it stops "
            "the endpoint; nothing was changed. Pass --allow-outage to drain it anyway"
        )
    _membership(inventory, "drain", instance, reason, timeout)


@main.command("undrain")
@inventory_argument
@click.argument("instance")
@click.option("--timeout", type=int, help="Seconds to wait until the router reports it ready (default: start time).")
def undrain_command(inventory: str, instance: str, timeout: int | None) -> None:
    """Put INSTANCE back into the router and wait until the router reports it ready."""
    _membership(inventory, "undrain", instance, "", timeout)


@main.command("status")
@inventory_argument
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for machines and CI).")
def status_command(inventory: str, as_json: bool) -> None:
    """Per instance and rank: unit state, restarts, since when, health, drain, the router's view, pending inputs.

    Read-only (deploys/status.py reads facts). Exit status 0 when everything serves as the inventory says, 1 when
    something needs a look (a rank not running, an instance unhealthy or out of the router without a drain, a node
    that does not answer), 2 for a bad inventory.
    """
    from pdfleet import status

    cluster = _load(inventory)
    serving = plan(cluster)
    with tempfile.TemporaryDirectory(prefix="pdfleet-status-") as out:
        run = _pyinfra(inventory, "status.py", "--data", f"pdfleet_status_out={out}")
        reports = {p.stem: json.loads(p.read_text()) for p in Path(out).glob("*.json")}
    missing = [n.name for n in cluster.nodes if n.name not in reports]
    if as_json:
        click.echo(json.dumps({**status.document(serving, reports), "unreachable": missing}, indent=2))
    else:
        click.echo(status.table(serving, reports), nl=False)
        for name in missing:
            errors = [line.strip() for line in run.stderr.splitlines() if name in line and "rror" in line]
            click.echo(f"{name}: no answer{': ' + errors[-1] if errors else ''}")
    sys.exit(1 if missing or status.attention(serving, reports) else 0)


@main.command("replace-node")
@inventory_argument
@click.argument("old")
@click.argument("new")
@click.option("--yes", is_flag=True, help="Do not ask to type OLD's name (for scripts).")
@click.option("--dry", is_flag=True, help="Print every step and the inventory diff; change nothing.")
@click.option("--allow-outage", is_flag=True, help="Go ahead although OLD serves the last instance of its role.")
def replace_node_command(inventory: str, old: str, new: str, yes: bool, dry: bool, allow_outage: bool) -> None:
    """Replace node OLD by NEW: a spare of INVENTORY (in no instance), or OLD itself after a re-image.

    Steps, each printed and each safe to run again: validate, confirm (type OLD's name; --yes), drain OLD's
    instance if OLD answers, retire OLD (its units stopped, disabled, removed: it never rejoins), the inventory
    rewritten with NEW in OLD's place (diff shown; comments kept), a re-imaged node's new host key pinned after a
    guard, deploys/pd.py (NEW from bare, weights and DeepGEMM cache from peers, the health gate), undrain. An
    interrupted run continues when the same command runs again (docs/runbooks/replace-node.md). Exit 0 done,
    1 a step failed (run again to continue), 2 refused before any change.
    """
    from pdfleet.replace import replace_node

    replace_node(inventory, _load(inventory), old, new, yes, dry, allow_outage)


@main.command("blue-green")
@inventory_argument
@click.option("--version", "version", required=True, metavar="VERSION", help="The SGLang version to move to.")
@click.option("--yes", is_flag=True, help="Do not ask to type the cluster's name (for scripts).")
@click.option("--dry", is_flag=True, help="Print every step and the inventory diff; change nothing.")
def blue_green_command(inventory: str, version: str, yes: bool, dry: bool) -> None:
    """Move every instance of INVENTORY to SGLang VERSION on its spare nodes, without an outage.

    Needs a spare (a node in no instance, same GPUs and HCAs) for every serving node. Steps, each printed and each
    safe to run again: validate, confirm (type the cluster's name; --yes), stage the next inventory, bring the new
    set up on the spares (deploys/pd.py), switch (the router routes to both sets, never a prefill and a decode of
    different versions, then drains the old set), retire the old set's SGLang units (its nodes are the spares
    now, holding the old version's runtime and kernels), the inventory rewritten (diff shown; comments kept), a
    converge. Back: the same command with the old version (docs/runbooks/upgrade.md). Exit 0 done, 1 a step failed
    (run again to continue), 2 refused before any change.
    """
    from pdfleet.bluegreen import blue_green

    blue_green(inventory, _load(inventory), version, yes, dry)


@main.command("bench")
@inventory_argument
@click.option(
    "--scenarios",
    default=None,
    metavar="NAMES",
    help="Comma-separated: sharegpt, medium, long, very-long, generation-heavy (default: these five), short; all.",
)
@click.option(
    "--num-prompts-scale",
    "prompts_scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Send this fraction of each scenario's prompts (at least 1): a smoke run; its ratios are not comparable.",
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Run directory (default bench-results/...).")
@click.option(
    "--dataset-path",
    default=None,
    metavar="PATH",
    help="The ShareGPT file on the router's node (default /var/lib/pdfleet/bench/"
    "ShareGPT_V3_unfiltered_cleaned_split.json).",
)
@click.option(
    "--upload-dataset",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="Copy this local ShareGPT file to --dataset-path first (skipped when it is there already).",
)
@click.option(
    "--random-prompts",
    type=click.Choice(["ids", "sharegpt"]),
    default="ids",
    show_default=True,
    help="Random scenarios' prompts: token-id sequences as vLLM's random dataset, or ShareGPT text (SGLang's own).",
)
@click.option("--dry", is_flag=True, help="Print every scenario's command line; contact nothing.")
def bench_command(
    inventory: str,
    scenarios: str | None,
    prompts_scale: float,
    out_dir: str | None,
    dataset_path: str | None,
    upload_dataset: str | None,
    random_prompts: str,
    dry: bool,
) -> None:
    """Measure the endpoint through the router with the scenarios of GPUStack's DeepSeek-V3.2 8xH200 table.

    Installs SGLang's sglang.bench_serving (pinned) on the router's node, runs each scenario there against the
    router's local URL (all prompts at once), shows its progress, then prints each scenario's total and output token
    throughput, TTFT, TPOT and ITL (p50, p99) beside the published figures, with the ratio and what differed in
    the setup, and writes results.json, the raw records and chart.png (docs/bench.md). Exit 0 when every scenario
    completed all its requests, 1 otherwise, 2 refused before any contact.
    """
    from pdfleet import benchplan
    from pdfleet.bench import run_bench

    cluster = _load(inventory)
    try:
        opts = benchplan.options(scenarios, prompts_scale, dataset_path, random_prompts)
    except benchplan.BenchError as error:
        _fail(str(error))
    run_bench(inventory, cluster, plan(cluster), opts, out_dir, upload_dataset, dry)


@main.command("trust-host")
@inventory_argument
@click.argument("nodes", nargs=-1, required=True, metavar="NODE...")
@click.option(
    "--fingerprint",
    "fingerprints",
    multiple=True,
    metavar="SHA256:...",
    help="The fingerprint read on the node's console (one per NODE, in order): pin only if the scan matches it.",
)
@click.option("--yes", is_flag=True, help="Pin what the scan shows without asking (trust the network path).")
def trust_host_command(inventory: str, nodes: tuple[str, ...], fingerprints: tuple[str, ...], yes: bool) -> None:
    """Pin the SSH host key of each NODE in ssh.known_hosts, after checking it.

    Scans the node's key (ssh-keyscan, ed25519), shows its fingerprint, and pins it when it matches --fingerprint
    (read on the node's console: `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), or when the person confirms.
    A node already pinned to another key is refused: a re-imaged node goes through `pdfleet replace-node`.
    Exit 0 when every node is pinned, 1 when one could not be, 2 for bad input.
    """
    from pdfleet import knownhosts
    from pdfleet.inventory import known_hosts_path

    cluster = _load(inventory)
    names = {n.name for n in cluster.nodes}
    unknown = [n for n in nodes if n not in names]
    if unknown:
        _fail(
            f"{display_path(yaml_for(inventory))}: found node {unknown[0]!r}, "
            f"expected one of {', '.join(sorted(names))}"
        )
    if fingerprints and len(fingerprints) != len(nodes):
        _fail(f"found {len(fingerprints)} --fingerprint for {len(nodes)} nodes, expected one per node, in order")
    path = known_hosts_path(cluster, yaml_for(inventory))
    port = cluster.ssh.port
    failed = False
    for i, name in enumerate(nodes):
        node = cluster.node(name)
        text = path.read_text() if path.exists() else ""
        scan = subprocess.run(
            ["ssh-keyscan", "-T", "5", "-p", str(port), "-t", "ed25519", node.address],
            capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        scanned = knownhosts.scanned(scan.stdout)
        if scanned is None:
            click.echo(f"{name} ({node.address}:{port}): no host key shown (ssh-keyscan); is sshd up and reachable?")
            failed = True
            continue
        shown = knownhosts.fingerprint(scanned[1])
        pinned = knownhosts.entries(text, node.address, node.name, port)
        if scanned in pinned:
            click.echo(f"{name} ({node.address}): {shown} is already pinned")
            continue
        if pinned or knownhosts.is_pinned(text, node.address, port):
            was = ", ".join(knownhosts.fingerprint(k) for _, k in pinned) or "a hashed entry"
            click.echo(f"{name} ({node.address}): shows {shown}, but {display_path(path)} pins {was}: refused. A "
                       f"re-imaged node: pdfleet replace-node {inventory} {name}")  # fmt: skip
            failed = True
            continue
        if fingerprints:
            if fingerprints[i].strip() != shown:
                click.echo(f"{name} ({node.address}): shows {shown}, expected {fingerprints[i].strip()} "
                           "(--fingerprint): NOT pinned; someone may be in the path, or it was misread")  # fmt: skip
                failed = True
                continue
        elif not yes:
            click.echo(f"{name} ({node.address}) shows {scanned[0]} {shown}")
            click.echo("  compare it with the node's console: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub")
            if not click.confirm(f"  pin it for {name}?", default=False):
                click.echo(f"{name}: not pinned")
                failed = True
                continue
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        updated = knownhosts.replaced(text, node.address, node.name, port, *scanned)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(updated)
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o600)
        tmp.replace(path)
        click.echo(f"{name} ({node.address}): pinned {scanned[0]} {shown} in {display_path(path)}")
    sys.exit(1 if failed else 0)


from pdfleet.sandbox.cli import sandbox  # noqa: E402  (the subcommand group, beside the offline views)

main.add_command(sandbox)

if __name__ == "__main__":
    main()
