"""Node replacement, the pure part: what `pdfleet replace-node INVENTORY OLD NEW` will do, decided offline.

`plan_replacement` reads the inventory (its text and its model) and either refuses, before anything is touched,
with a message that says what to do, or returns a `Replacement`: the instance OLD served and NEW takes over, the
duties that move off OLD (the router, the weights seed), whether the endpoint loses a role meanwhile, and the
inventory's new text, edited line by line so that its comments and order stay as the person wrote them.

Two kinds of replacement:
- a spare: NEW is a node of the inventory in no instance. NEW takes OLD's place in its instance, OLD's entry
  leaves `nodes:` (a node is never in two places; a repaired OLD comes back as a spare, by hand);
- a re-image: NEW is OLD (same name and address, a wiped disk, a new SSH host key). The inventory does not change;
  the pinned host key does, after a guard (pdfleet.knownhosts).

The remote steps (drain, retire, converge) are deploys/drain.py, deploys/retire.py and deploys/pd.py; the CLI
runs them in the order of `STEPS`.
"""

from __future__ import annotations

import difflib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pdfleet import netaddr
from pdfleet.cluster import Cluster, load_cluster
from pdfleet.errors import InventoryError
from pdfleet.yamlsource import SourceList, load_yaml

# What the command does, in order; each step is printed as it runs and is safe to run again.
STEPS = (
    ("validate", "the inventory, OLD and NEW; every refusal comes here, before any change"),
    ("confirm", "type OLD's name (or --yes)"),
    ("drain", "OLD's instance out of the router, its requests finished (skipped when OLD does not answer)"),
    ("retire", "OLD's serving units stopped, disabled, their files moved away: a node that comes back never rejoins"),
    ("inventory", "NEW in OLD's place (the diff is shown before writing)"),
    ("host key", "a re-imaged node's new SSH host key pinned, after a guard"),
    ("converge", "deploys/pd.py: NEW from bare (host layer, runtime, weights and DeepGEMM cache from peers), "
     "the instance started, the health gate through the router"),
    ("undrain", "the instance back in the router, ready (when the drain step drained it)"),
)  # fmt: skip


def inventory_diff(old_text: str, new_text: str) -> str:
    """The inventory's rewrite as a unified diff, shown before anything is written."""
    return "".join(
        difflib.unified_diff(
            old_text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile="inventory (now)",
            tofile="inventory (after)",
        )
    )


class Refused(Exception):
    """The replacement cannot go ahead; the message says why and what to do. Nothing was changed."""


@dataclass(frozen=True)
class Move:
    """A duty of OLD's that moves to another node."""

    duty: str  # "router" or "weights seed"
    old: str
    new: str


@dataclass(frozen=True)
class Replacement:
    old: str
    new: str
    reimage: bool
    instance: str | None  # OLD's instance (None when OLD held duties only)
    role: str | None
    rank: int | None
    nnodes: int  # nodes of OLD's instance (every rank restarts when it has several)
    last_of_role: bool  # the endpoint has no other instance of this role while OLD's restarts
    moves: tuple[Move, ...]
    old_text: str
    new_text: str
    router_url: str  # where the router answers once the replacement is done

    @property
    def inventory_diff(self) -> str:
        return inventory_diff(self.old_text, self.new_text)

    @property
    def outage_switch(self) -> str | None:
        """The instance to name in pdfleet_allow_outage, when the replacement stops a role's last instance."""
        return self.instance if self.last_of_role else None


def _token(name: str) -> re.Pattern:
    """`name` as a whole YAML scalar: not part of a longer node name (prefill-1 is not in prefill-10)."""
    return re.compile(rf"(?<![A-Za-z0-9_.-]){re.escape(name)}(?![A-Za-z0-9_.-])")


def _replace_on_line(lines: list[str], line_no: int, old: str, new: str, what: str) -> None:
    """Replace the one occurrence of the scalar `old` on 1-based line `line_no` (comments left alone)."""
    text = lines[line_no - 1]
    body, hash_, comment = text.partition(" #")
    found = _token(old).findall(body)
    if len(found) != 1:
        raise Refused(
            f"line {line_no}: cannot rewrite {what} automatically (found {len(found)} mentions of {old!r} on "
            f"the line, expected 1); edit the inventory by hand (see docs/runbooks/replace-node.md)"
        )
    lines[line_no - 1] = _token(old).sub(new, body, count=1) + hash_ + comment


def _item_span(items: SourceList, index: int, lines: list[str]) -> tuple[int, int]:
    """The 0-based line range [start, end) of a block-style list item, with the comment lines just above it,
    up to the next item (or the end of the list's indented block)."""
    start = items.lines[index] - 1
    indent = len(lines[start]) - len(lines[start].lstrip())
    while start > 0 and lines[start - 1].strip().startswith("#"):
        start -= 1
    if index + 1 < len(items):
        end = items.lines[index + 1] - 1
        while end > start and lines[end - 1].strip().startswith("#"):
            end -= 1  # comments above the next item belong to it
        return start, end
    end = items.lines[index]
    while end < len(lines):
        stripped = lines[end].strip()
        deeper = len(lines[end]) - len(lines[end].lstrip()) > indent
        if stripped and not stripped.startswith("#") and not deeper:
            break
        if not stripped or stripped.startswith("#"):
            break  # a blank or comment line at the list's level ends the item
        end += 1
    return start, end


def _router_target(cluster: Cluster, old: str, new: str) -> str:
    """Where the router goes when OLD held it: a surviving node that already serves, of OLD's role first (so the
    router does not wait for NEW's bring-up from bare), else the first surviving node of the inventory."""
    placement = cluster.placement(old)
    role = placement[0].role if placement else None
    survivors = [n.name for n in cluster.nodes if n.name not in (old, new)]
    same_role = [n for n in survivors if (p := cluster.placement(n)) and p[0].role == role]
    serving = [n for n in survivors if cluster.placement(n)]
    for candidates in (same_role, serving, survivors):
        if candidates:
            return candidates[0]
    return new


def plan_replacement(cluster: Cluster, path: Path, old: str, new: str, allow_outage: bool) -> Replacement:
    """Decide the replacement of node OLD by node NEW (NEW == OLD: a re-image) in the inventory at `path`.

    Raises Refused, with what to do, when: OLD is unknown; NEW is unknown or already serves an instance; OLD
    serves nothing and holds no duty; the replacement stops the last instance of a role and `allow_outage` is not
    given. The new text is validated as an inventory before it is returned.
    """
    source = cluster.source
    names = [n.name for n in cluster.nodes]
    if old not in names:
        raise Refused(f"OLD: found {old!r}, expected a node of {source}: {', '.join(names)}; nothing was changed")
    if new not in names:
        raise Refused(
            f"NEW: found {new!r}, expected a node of {source} (a spare in no instance, or {old!r} itself when it "
            f"was re-imaged); add the spare under nodes: first, with its address; nothing was changed"
        )
    reimage = old == new
    placement = cluster.placement(old)
    if not reimage and cluster.placement(new):
        serving = cluster.placement(new)[0].name
        raise Refused(
            f"NEW: {new} already serves instance {serving}; pick a spare (a node in no instance: "
            f"{', '.join(n for n in names if not cluster.placement(n)) or 'none in ' + source}); nothing was changed"
        )
    holds_router = cluster.router.node == old
    holds_seed = cluster.model.seed == old
    if placement is None and not holds_router and not holds_seed:
        raise Refused(f"OLD: {old} serves no instance and holds no duty; remove it from {source} by hand")
    instance = placement[0] if placement else None
    siblings = [i for i in cluster.instances if instance and i.role == instance.role and i.name != instance.name]
    last_of_role = instance is not None and not siblings
    if last_of_role and not allow_outage:
        raise Refused(
            f"{old} serves {instance.name}, the only {instance.role} instance: the endpoint stops answering until "
            f"the replacement serves. Nothing was changed. Re-run with --allow-outage to accept that outage"
        )

    text = path.read_text()
    doc = load_yaml(path, source)
    lines = text.splitlines(keepends=True)
    moves: list[Move] = []
    removed: tuple[int, int] | None = None
    if not reimage:
        inst_index = next(i for i, item in enumerate(doc["instances"]) if item["name"] == instance.name)
        members: SourceList = doc["instances"][inst_index]["nodes"]
        member_index = next(i for i, m in enumerate(members) if (m if isinstance(m, str) else m.get("node")) == old)
        _replace_on_line(lines, members.lines[member_index], old, new, f"instance {instance.name}'s node")
        node_index = names.index(old)
        removed = _item_span(doc["nodes"], node_index, lines)
    if holds_router:
        target = _router_target(cluster, old, new)
        _replace_on_line(lines, doc["router"].lines["node"], old, target, "router.node")
        moves.append(Move("router", old, target))
    if holds_seed and not reimage:
        survivors = [n for n in names if n != old]
        if "seed" in doc.get("model", {}):
            target = next((n for n in survivors if n != new), new)
            _replace_on_line(lines, doc["model"].lines["seed"], old, target, "model.seed")
        else:
            target = survivors[0]  # the default seed is the first node; OLD's entry leaves the list
        moves.append(Move("weights seed", old, target))
    if removed:
        del lines[removed[0] : removed[1]]
    new_text = "".join(lines)
    after = _validated(new_text, path, source)
    router = after.node(after.router.node)
    return Replacement(
        old=old,
        new=new,
        reimage=reimage,
        instance=instance.name if instance else None,
        role=instance.role if instance else None,
        rank=placement[1] if placement else None,
        nnodes=instance.nnodes if instance else 0,
        last_of_role=last_of_role,
        moves=tuple(moves),
        old_text=text,
        new_text=new_text,
        router_url=netaddr.url(router.address, after.router.port),
    )


def _validated(text: str, path: Path, source: str) -> Cluster:
    """The rewritten inventory, loaded as pdfleet will load it (relative paths resolved beside the original)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=path.parent, prefix=f".{path.stem}-replace-") as tmp:
        tmp.write(text)
        tmp.flush()
        try:
            return load_cluster(tmp.name, source)
        except InventoryError as exc:
            problems = "; ".join(str(p) for p in exc.problems)
            raise Refused(
                f"the rewritten inventory would not be valid ({problems}); edit it by hand "
                "(see docs/runbooks/replace-node.md); nothing was changed"
            ) from None


def already_replaced(cluster: Cluster, old: str, new: str) -> bool:
    """Whether an earlier run already wrote the inventory (OLD gone from it, NEW serving): a re-run continues
    with the converge."""
    names = [n.name for n in cluster.nodes]
    return old != new and old not in names and new in names and cluster.placement(new) is not None
