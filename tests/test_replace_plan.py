"""pdfleet.replaceplan: the replacement decided offline from the prod inventory with a spare; the rewritten
inventory read back through the real loader, and compared line by line with the person's file."""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pdfleet import knownhosts
from pdfleet.cluster import load_cluster
from pdfleet.replaceplan import Refused, already_replaced, plan_replacement

ROOT = Path(__file__).resolve().parent.parent
SPARE = """  # A hot spare: host layer, runtime and weights kept converged, in no instance.
  - name: spare-0
    address: 10.10.0.15
    hcas: [mlx5_0, mlx5_1, mlx5_2, mlx5_5, mlx5_6, mlx5_7, mlx5_8, mlx5_9]
"""


def inventory(tmp_path: Path, edit=lambda text: text) -> Path:
    text = (ROOT / "inventories/prod.yaml").read_text()
    anchor = "    hcas: [mlx5_0, mlx5_1, mlx5_2, mlx5_5, mlx5_6, mlx5_7, mlx5_8, mlx5_9]\n\n# Serving instances."
    assert anchor in text
    text = text.replace(anchor, anchor.replace("\n\n", "\n" + SPARE + "\n", 1))
    path = tmp_path / "prod.yaml"
    path.write_text(edit(text))
    shutil.copy(ROOT / "inventories/prod.py", tmp_path / "prod.py")
    return path


def replace(path: Path, old: str, new: str, allow_outage: bool = False):
    return plan_replacement(load_cluster(path), path, old, new, allow_outage)


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return [d[2:] for d in diff if d.startswith("- ")], [d[2:] for d in diff if d.startswith("+ ")]


def test_a_spare_takes_a_prefills_place_and_only_those_lines_change(tmp_path):
    path = inventory(tmp_path)
    plan = replace(path, "prefill-1", "spare-0")
    removed, added = changed_lines(plan.old_text, plan.new_text)
    assert removed == ["  - name: prefill-1", "    address: 10.10.0.12", "    nodes: [prefill-1]"]
    assert added == ["    nodes: [spare-0]"]
    after = load_cluster(_written(tmp_path, plan.new_text))
    instance, rank = after.placement("spare-0")
    assert (instance.name, rank) == ("prefill-1", 0) and "prefill-1" not in [n.name for n in after.nodes]
    assert (plan.instance, plan.role, plan.last_of_role, plan.moves, plan.reimage) == (
        "prefill-1", "prefill", False, (), False
    )  # fmt: skip
    assert plan.router_url == "http://10.10.0.11:8000"
    assert "+    nodes: [spare-0]" in plan.inventory_diff
    assert "# A hot spare" in plan.new_text  # comments kept, the spare's own included


def _written(tmp_path: Path, text: str) -> Path:
    out = tmp_path / "after" / "prod.yaml"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    return out


def test_the_routers_node_replaced_moves_the_router_and_the_seed_to_a_serving_peer(tmp_path):
    path = inventory(tmp_path)
    plan = replace(path, "prefill-0", "spare-0")
    assert [(m.duty, m.old, m.new) for m in plan.moves] == [
        ("router", "prefill-0", "prefill-1"),  # a node that serves already, of the same role, not the bare spare
        ("weights seed", "prefill-0", "prefill-1"),  # the default seed is the first node: prefill-0's entry goes
    ]
    removed, added = changed_lines(plan.old_text, plan.new_text)
    assert "  node: prefill-1                   # where the PD router (smg) runs" in added
    after = load_cluster(_written(tmp_path, plan.new_text))
    assert (after.router.node, after.model.seed) == ("prefill-1", "prefill-1")
    assert plan.router_url == "http://10.10.0.12:8000"


def test_an_explicit_seed_on_the_old_node_moves_too(tmp_path):
    path = inventory(tmp_path, lambda t: t.replace("  # seed: prefill-0 ", "  seed: decode-1   "))
    plan = replace(path, "decode-1", "spare-0", allow_outage=True)
    assert [(m.duty, m.new) for m in plan.moves] == [("weights seed", "prefill-0")]
    assert load_cluster(_written(tmp_path, plan.new_text)).model.seed == "prefill-0"


def test_a_decode_rank_is_the_last_of_its_role_refused_without_the_switch(tmp_path):
    path = inventory(tmp_path)
    with pytest.raises(Refused, match="only decode instance.*Nothing was changed.*--allow-outage"):
        replace(path, "decode-1", "spare-0")
    plan = replace(path, "decode-0", "spare-0", allow_outage=True)
    assert (plan.instance, plan.rank, plan.nnodes, plan.outage_switch) == ("decode", 0, 2, "decode")
    removed, added = changed_lines(plan.old_text, plan.new_text)
    assert added == ["      - {node: spare-0, rank: 0}"]
    after = load_cluster(_written(tmp_path, plan.new_text))
    decode = next(i for i in after.instances if i.name == "decode")
    assert decode.head == "spare-0"  # the dist-init address moves with rank 0
    assert "# The published recipe's decode nodes skip" not in plan.new_text  # decode-0's own comment went with it


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("prefill-7", "spare-0", "OLD: found 'prefill-7', expected a node of .*prefill-0, prefill-1"),
        ("prefill-1", "spare-9", "NEW: found 'spare-9', expected a node of .*add the spare under nodes: first"),
        ("prefill-1", "decode-0", "NEW: decode-0 already serves instance decode; pick a spare .*spare-0"),
    ],
)
def test_refusals_name_the_node_found_and_expected(tmp_path, old, new, message):
    path = inventory(tmp_path)
    before = path.read_bytes()
    with pytest.raises(Refused, match=message):
        replace(path, old, new)
    assert path.read_bytes() == before


def test_a_spare_holding_no_duty_is_not_a_replacement(tmp_path):
    path = inventory(tmp_path)
    with pytest.raises(Refused, match="spare-0 serves no instance and holds no duty"):
        replace(path, "spare-0", "spare-0")


def test_a_reimage_keeps_the_inventory_unless_the_router_was_there(tmp_path):
    path = inventory(tmp_path)
    plan = replace(path, "prefill-1", "prefill-1")
    assert plan.reimage and plan.new_text == plan.old_text and plan.inventory_diff == ""
    plan = replace(path, "prefill-0", "prefill-0")
    assert [(m.duty, m.new) for m in plan.moves] == [("router", "prefill-1")]  # it was wiped with the node


def test_a_node_named_like_the_start_of_another_is_not_touched(tmp_path):
    def rename(text: str) -> str:  # prefill-1 becomes prefill-10 everywhere, then a prefill-1 spare is added
        text = text.replace("prefill-1", "prefill-10").replace("name: spare-0", "name: prefill-1")
        return text

    path = inventory(tmp_path, rename)
    plan = replace(path, "prefill-10", "prefill-1")
    removed, added = changed_lines(plan.old_text, plan.new_text)
    assert added == ["    nodes: [prefill-1]"]
    assert load_cluster(_written(tmp_path, plan.new_text)).placement("prefill-1")[0].name == "prefill-10"


def test_an_earlier_run_that_wrote_the_inventory_is_recognised(tmp_path):
    path = inventory(tmp_path)
    plan = replace(path, "prefill-1", "spare-0")
    after = load_cluster(_written(tmp_path, plan.new_text))
    assert already_replaced(after, "prefill-1", "spare-0")
    assert not already_replaced(load_cluster(path), "prefill-1", "spare-0")


def test_known_hosts_entries_of_one_node_are_replaced_and_the_others_kept():
    text = "# pinned\n10.10.0.12 ssh-ed25519 AAAAold\nprefill-1 ssh-ed25519 AAAAold\n10.10.0.13 ssh-ed25519 AAAAd0\n"
    assert knownhosts.entries(text, "10.10.0.12", "prefill-1") == [("ssh-ed25519", "AAAAold")] * 2
    out = knownhosts.replaced(text, "10.10.0.12", "prefill-1", 22, "ssh-ed25519", "AAAAnew")
    assert out.splitlines() == [
        "# pinned",
        "10.10.0.13 ssh-ed25519 AAAAd0",
        "10.10.0.12 ssh-ed25519 AAAAnew",
        "prefill-1 ssh-ed25519 AAAAnew",
    ]
    off_22 = knownhosts.replaced("", "10.10.0.12", "prefill-1", 2222, "ssh-ed25519", "AAAAnew")
    assert off_22.splitlines()[0] == "[10.10.0.12]:2222 ssh-ed25519 AAAAnew"


def test_fingerprints_are_openssh_s(tmp_path):
    import subprocess

    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    kind, body = key.with_suffix(".pub").read_text().split()[:2]
    printed = subprocess.run(["ssh-keygen", "-lf", str(key.with_suffix(".pub"))], capture_output=True, text=True)
    assert printed.stdout.split()[1] == knownhosts.fingerprint(body)


def _loopback_inventory(tmp_path: Path) -> Path:
    """The prod inventory with a spare, every node on a loopback address whose SSH port nobody listens on."""

    def edit(text: str) -> str:
        text = text.replace("10.10.0.", "127.0.0.")
        return text.replace("ssh:\n  user: root", "ssh:\n  port: 9\n  user: root", 1)

    return inventory(tmp_path, edit)


def pdfleet(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run(
        [str(Path(sys.executable).parent / "pdfleet"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def test_the_command_refuses_a_new_node_that_does_not_answer_and_changes_nothing(tmp_path):
    path = _loopback_inventory(tmp_path)
    before = path.read_bytes()
    result = pdfleet("replace-node", "prod.py", "prefill-1", "spare-0", "--yes", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "pdfleet: NEW: spare-0 (127.0.0.15) does not answer over SSH" in result.stderr
    assert path.read_bytes() == before and not list(tmp_path.glob(".prod.replace*"))


def test_the_command_refuses_while_another_replacement_is_unfinished(tmp_path):
    path = _loopback_inventory(tmp_path)
    (tmp_path / ".prod.replace.json").write_text('{"old": "decode-1", "new": "spare-0", "done": ["drain"]}')
    result = pdfleet("replace-node", "prod.py", "prefill-1", "spare-0", "--dry", cwd=tmp_path)
    assert result.returncode == 2
    assert "the replacement of decode-1 by spare-0 is not finished; run `pdfleet replace-node" in result.stderr
    assert path.read_text().count("nodes: [prefill-1]") == 1


def test_a_rerun_continues_from_the_progress_and_a_finished_one_has_nothing_to_do(tmp_path):
    path = _loopback_inventory(tmp_path)
    plan = replace(path, "prefill-1", "spare-0")
    record = {
        "old": "prefill-1",
        "new": "spare-0",
        "replacement": {
            "old": "prefill-1", "new": "spare-0", "reimage": False, "instance": "prefill-1", "role": "prefill",
            "rank": 0, "nnodes": 1, "last_of_role": False, "moves": [], "router_url": plan.router_url,
        },
        "new_text": plan.new_text,
        "old_answered": False,
        "done": ["drain", "retire", "inventory"],
    }  # fmt: skip
    (tmp_path / ".prod.replace.json").write_text(json.dumps(record))
    path.write_text(plan.new_text)  # the run stopped after writing the inventory
    dry = pdfleet("replace-node", "prod.py", "prefill-1", "spare-0", "--dry", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "continuing: done before: drain, retire, inventory" in dry.stderr
    status = {line.split()[0]: line.split()[1] for line in dry.stdout.splitlines() if line.startswith("  ")}
    assert status["drain"] == status["inventory"] == "done" and status["converge"] == "would"
    (tmp_path / ".prod.replace.json").unlink()  # the converge finished and removed it
    again = pdfleet("replace-node", "prod.py", "prefill-1", "spare-0", "--yes", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "nothing to do: prefill-1 is no longer in the inventory and spare-0 serves prefill-1" in again.stderr
