"""Blue/green, the pure part: what `pdfleet blue-green INVENTORY --version V` will do, decided offline.

The inventory must hold a spare node (a node in no instance) for every node that serves: the new version comes up
on the spares as a complete second set of the same instances, the router serves both sets side by side (a prefill
pairs only with a decode of its own version: pdfleet.serving gives each worker its version as smg's pairing
protocol), then the old set is drained and its nodes become the spares. Nothing fails on the way, and going back
is the same command with the old version, onto nodes that still hold its runtime and DeepGEMM cache.

`plan_blue_green` either refuses, before anything is touched, with a message that says what to do, or returns a
`BlueGreen`: which spare takes which node's place, and the inventory's new text, edited line by line (the instances'
node names and `sglang.version`), so that its comments and order stay as the person wrote them. The remote steps
are deploys (pd.py on the spares, switch.py on the router's node, retire.py on the old set, serve.py); the CLI
(pdfleet.bluegreen) runs them in the order of `STEPS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pdfleet import dialects, netaddr
from pdfleet.cluster import Cluster
from pdfleet.replaceplan import Refused, _replace_on_line, _validated, inventory_diff
from pdfleet.yamlsource import SourceList, load_yaml

# What the command does, in order; each step is printed as it runs and is safe to run again.
STEPS = (
    ("validate", "the inventory, the version and the spares; every refusal comes here, before any change"),
    ("confirm", "type the cluster's name (or --yes)"),
    ("stage", "the next inventory written beside this one (the instances on the spares, the new version)"),
    ("bring up", "deploys/pd.py on the spares from the staged inventory: the new set starts (the router's membership, "
     "if its node is among them, keeps the serving set)"),
    ("switch", "deploys/switch.py on the router's node: both sets routed (never a mixed pair), then the old one "
     "drained"),
    ("retire", "the old set's SGLang units stopped and removed: its nodes are the spares now"),
    ("inventory", "the staged inventory becomes the inventory (the diff is shown before anything runs)"),
    ("converge", "deploys/serve.py on every node: the router's membership holds the new set only"),
)  # fmt: skip


@dataclass(frozen=True)
class BlueGreen:
    old_version: str
    new_version: str
    moves: tuple[tuple[str, str], ...]  # (node of the serving set, the spare that takes its place)
    instances: tuple[str, ...]
    old_text: str
    new_text: str
    router_url: str

    @property
    def inventory_diff(self) -> str:
        return inventory_diff(self.old_text, self.new_text)

    @property
    def incoming_nodes(self) -> list[str]:
        return [new for _, new in self.moves]

    @property
    def outgoing_nodes(self) -> list[str]:
        return [old for old, _ in self.moves]


def _same_hardware(cluster: Cluster, old: str, new: str) -> str | None:
    """Why spare `new` cannot stand in for `old` (GPUs, GPU model, HCAs), or None."""
    a, b = cluster.node(old), cluster.node(new)
    for field, left, right in (("gpus", a.gpus, b.gpus), ("gpu_model", a.gpu_model, b.gpu_model),
                               ("hcas", list(a.hcas), list(b.hcas))):  # fmt: skip
        if left != right:
            return f"{new}'s {field} is {right}, {old}'s is {left}"
    return None


def plan_blue_green(cluster: Cluster, path: Path, version: str) -> BlueGreen:
    """Decide the move of every instance onto the spares, on SGLang `version`, in the inventory at `path`.

    Raises Refused, with what to do, when: the version is the one serving or one pdfleet does not know; the
    inventory has fewer spares than serving nodes; a spare's hardware differs from the node it stands in for.
    The new text is validated as an inventory before it is returned.
    """
    source = cluster.source
    if version not in dialects.DIALECTS:
        raise Refused(
            f"--version: found {version!r}, expected one of {', '.join(dialects.DIALECTS)} (the versions pdfleet "
            "knows the flags of); nothing was changed"
        )
    if version == cluster.sglang_version:
        raise Refused(
            f"--version: {source} already serves SGLang {version}; blue/green moves the cluster to another version. "
            "For other changes, converge (deploys/pd.py); nothing was changed"
        )
    serving = [m.node for i in cluster.instances for m in i.members]
    spares = [n.name for n in cluster.nodes if cluster.placement(n.name) is None]
    if len(spares) < len(serving):
        raise Refused(
            f"{source}: blue/green needs a spare node (in no instance) for each of the {len(serving)} serving nodes "
            f"({', '.join(serving)}); it has {len(spares)} ({', '.join(spares) or 'none'}). Add spares under nodes:, "
            f"or cut over in a window: set sglang.version to {version} and run deploys/pd.py with --data "
            "pdfleet_allow_outage=all (docs/runbooks/upgrade.md); nothing was changed"
        )
    moves = list(zip(serving, spares, strict=False))
    for old, new in moves:
        why = _same_hardware(cluster, old, new)
        if why:
            raise Refused(f"spare {new} cannot take {old}'s place: {why}; nothing was changed")

    text = path.read_text()
    doc = load_yaml(path, source)
    lines = text.splitlines(keepends=True)
    taken = dict(moves)
    for item in doc["instances"]:
        members: SourceList = item["nodes"]
        for index, member in enumerate(members):
            node = member if isinstance(member, str) else member.get("node")
            _replace_on_line(lines, members.lines[index], node, taken[node], f"instance {item['name']}'s node")
    sglang = doc["sglang"]
    _replace_version(lines, sglang.lines["version"], str(sglang["version"]), version)
    new_text = "".join(lines)
    after = _validated(new_text, path, source)
    router = after.node(after.router.node)
    return BlueGreen(
        old_version=cluster.sglang_version,
        new_version=version,
        moves=tuple(moves),
        instances=tuple(i.name for i in cluster.instances),
        old_text=text,
        new_text=new_text,
        router_url=netaddr.url(router.address, after.router.port),
    )


def _replace_version(lines: list[str], line_no: int, old: str, new: str) -> None:
    text = lines[line_no - 1]
    body, hash_, comment = text.partition(" #")
    pattern = re.compile(rf"(:\s*['\"]?){re.escape(old)}(['\"]?\s*)$")
    if not pattern.search(body.rstrip("\n")):
        raise Refused(f"line {line_no}: cannot rewrite sglang.version automatically; edit the inventory by hand")
    ending = "\n" if body.endswith("\n") else ""
    lines[line_no - 1] = pattern.sub(lambda m: m.group(1) + new + m.group(2), body.rstrip("\n")) + hash_ + comment
    if ending and not lines[line_no - 1].endswith("\n"):
        lines[line_no - 1] += ending


def already_switched(cluster: Cluster, version: str) -> bool:
    """Whether an earlier run already wrote the inventory: it serves `version` (a re-run converges only)."""
    return cluster.sglang_version == version
