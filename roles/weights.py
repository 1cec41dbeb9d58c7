"""The model weights, staged to `model.path` on every node and verified; the share peers copy them from.

The seed (`model.seed`) downloads from the hub or a mirror (`model.endpoint`), with the token when one is given;
every other node copies from a peer inside the cluster after the seed is done, in waves that fan out from the seed
(`pdfleet.weightsplan.copy_waves`: each holder serves `share.copies_per_source` copies per wave). The work is
done on the node by pdfleet-weights.py (`pdfleet/onhost/weights.py`): it tries peers before the hub, resumes
partial downloads and copies, checks free disk space before starting, verifies every file against the hub's
manifest (sizes; sha256 when `model.verify: checksums`) and only then writes the stamp this role reads. A node
whose stamp matches the pinned revision and whose files have their stamped sizes is left alone.
"""

from __future__ import annotations

import hashlib
import shlex
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import DeployError, FactBase, FileUploadCommand, StringCommand, deploy, operation
from pyinfra.facts.files import Sha1File
from pyinfra.operations import files

from pdfleet.hostfacts import parse_weights_stamp
from pdfleet.hubtoken import TokenError, read_hub_token
from pdfleet.weightsplan import (
    SHARE_CONFIG,
    SHARE_UNIT,
    STAGER,
    STAGER_CONFIG,
    STAMP,
    TOKEN_FILE,
    StagedWeights,
    copy_waves,
    staged_problem,
    staged_summary,
)
from roles import common
from roles.unitfiles import service_current

STAGER_SOURCE = Path(__file__).resolve().parent.parent / "pdfleet" / "onhost" / "weights.py"
_SIZES_MARK = "--- pdfleet sizes"


class StagedWeightsFact(FactBase):
    """A model directory: its stamp (`.pdfleet/verified.json`) and the size of every file outside `.pdfleet/`."""

    def command(self, path: str) -> str:
        quoted = shlex.quote(path)
        return (
            f"cat {shlex.quote(f'{path}/{STAMP}')} 2>/dev/null; echo; echo '{_SIZES_MARK}'; "
            f"cd {quoted} 2>/dev/null && find . -path ./.pdfleet -prune -o -type f -printf '%s %P\\n'; true"
        )

    @staticmethod
    def default() -> StagedWeights:
        return StagedWeights(None, {})

    def process(self, output: list[str]) -> StagedWeights:
        mark = output.index(_SIZES_MARK) if _SIZES_MARK in output else len(output)
        # A stamp being written or damaged reads as none: not verified.
        stamp = parse_weights_stamp("\n".join(output[:mark]))
        sizes = {}
        for line in output[mark + 1 :]:
            size, _, name = line.partition(" ")
            if name and size.isdigit():
                sizes[name] = int(size)
        return StagedWeights(stamp, sizes)


@operation()
def secret_file(path: str, secret: str | None, label: str):
    """
    A file only root can read, holding a secret that never appears in a diff, a command line or a log.

    + path: where the file lives (its directory is made 0700)
    + secret: the content; None removes the file
    + label: what the secret is called in messages
    """
    current = host.get_fact(Sha1File, path=path)
    if secret is None:
        if current is None:
            host.noop(f"no {label} configured")
            return
        yield StringCommand("rm", "-f", path)
        return
    content = secret + "\n"
    if current == hashlib.sha1(content.encode()).hexdigest():
        host.noop(f"{label} is current")
        return
    directory = path.rsplit("/", 1)[0]
    yield StringCommand("install", "-d", "-m", "0700", directory)
    yield FileUploadCommand(StringIO(content), path)
    yield StringCommand("chmod", "0600", path)


@operation()
def staged(path: str, repo: str, revision: str, here: bool, source: str):
    """
    The pinned revision staged and verified at `path`, by pdfleet-weights.py (peers first, then the hub if allowed).

    + path: the model directory
    + repo / revision: what must be there
    + here: whether this node stages in this step (the seed first, then the others in waves)
    + source: where this step takes the weights from, for messages
    """
    if not here:
        host.noop(f"weights: not staged in this step ({source})")
        return
    state = host.get_fact(StagedWeightsFact, path=path)
    problem = staged_problem(state, repo, revision)
    if problem is None:
        host.noop(f"{repo}@{revision[:12]} verified at {path} ({staged_summary(state)})")
        return
    yield StringCommand("python3", STAGER, "stage", STAGER_CONFIG)


@deploy("Weights")
def weights():
    cluster = common.cluster()
    node = common.node_name()
    model = cluster.model
    seed = node == model.seed

    files.directory(name="stager directory", path=STAGER.rsplit("/", 1)[0], mode="0755")
    files.put(name="stager pdfleet-weights.py", src=str(STAGER_SOURCE), dest=STAGER, mode="0755")
    common.put_rendered(STAGER_CONFIG, name="stager configuration")

    config = common.put_rendered(SHARE_CONFIG, name="share configuration")
    service_current(SHARE_UNIT, "share", reads=(config,))

    token = None
    if seed:
        try:
            token = read_hub_token(cluster)
        except TokenError as exc:
            raise DeployError(str(exc)) from None
    secret_file(name="hub token (seed only)", path=TOKEN_FILE, secret=token, label="hub token")

    wanted = dict(path=model.path, repo=model.repo, revision=model.revision)
    staged(name="staged on the seed (peers, else the hub)", here=seed, source="the seed stages first", **wanted)
    waves = copy_waves(cluster)
    for number, wave in enumerate(host.loop(waves), start=1):
        source = wave.get(node)
        staged(
            name=f"copied from peers (wave {number} of {len(waves)})",
            here=source is not None,
            source=f"from {source}" if source else f"wave {number} copies to {', '.join(wave)}",
            **wanted,
        )
