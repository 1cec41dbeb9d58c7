#!/usr/bin/env python3
"""pdfleet-weights: put one model checkpoint on this node, verified, crossing the WAN only when no peer has it.

    python3 pdfleet-weights.py stage  CONFIG.json     make <path> hold repo@revision, verified
    python3 pdfleet-weights.py verify CONFIG.json     say whether it does (reads nothing from the network)

pdfleet copies this file to every node as /usr/local/lib/pdfleet/pdfleet-weights.py and runs it as root with
/usr/bin/python3 (3.10+, standard library only). CONFIG.json, rendered by pdfleet, holds no secret:

    {"node": "prefill-1", "repo": "deepseek-ai/DeepSeek-V3.2", "revision": "<40 hex>",
     "path": "/models/DeepSeek-V3.2",
     "endpoint": "https://huggingface.co" | null,        null: this node never uses the WAN, peers only
     "token_file": "/etc/pdfleet/secrets/hub-token" | null,
     "peers": [{"name": "prefill-0", "address": "10.77.0.11", "port": 8730}, ...],   tried in this order
     "checksums": false,        true: sha256 of every LFS file (the shards) checked against the hub's lfs.oid
     "workers": 8,              parallel downloads from the hub
     "free_margin_bytes": 10737418240}

The stamp. <path>/.pdfleet/verified.json = {"repo", "revision", "files": {relpath: size}, "sha256": {relpath:
sha256 hex of each LFS file, from the hub's manifest}, "checksums": bool (whether sha256 was checked here)}. It is
written only after every file verified, and removed before any file under <path> changes, so its presence means
"this directory holds exactly repo@revision". pdfleet's facts read it. Everything else the stager keeps is under
<path>/.pdfleet/ too: files.json (what it knows of each file it placed: size, mtime, digest, so a later run trusts
a file without hashing it again), incomplete/ (downloads in progress, resumed), rsync-partial/ and rsync-tmp/.

stage, in order:
1. The stamp names this repo@revision and every file it lists is there at its size (and it was made with
   checksums when checksums are asked): print "verified", exit 0. Nothing is fetched again once it verifies.
2. Each peer in order: read its stamp (rsync://ADDRESS:PORT/weights/.pdfleet/verified.json, its read-only rsync
   module); a peer that does not answer, has no stamp or another revision is skipped with a one-line reason. The
   first that has this repo@revision: disk check, then `rsync -a --partial` of exactly the files its stamp lists
   (resumable; complete files are skipped), sizes (and sha256 when asked) checked against its stamp, our stamp
   written. A copy that fails moves on to the next peer.
3. No peer has it and endpoint is null: fail, naming each peer's reason.
4. The hub (huggingface.co or a mirror speaking its API): the manifest from /api/models/{repo}/tree/{revision}
   ?recursive=true (following `Link: rel="next"` pages); the checkpoint's index checked (every shard its
   weight_map names is in the manifest); the disk checked (bytes still needed + margin against the free space);
   then `workers` parallel downloads of what is missing or different, each into .pdfleet/incomplete/, resumed
   with `Range: bytes=N-`, retried with backoff on connection errors and 5xx, verified (size; the git blob id of
   small regular files always; sha256 of LFS files when checksums are asked) and renamed into place. Files of an
   older stamp that this revision lacks are removed. Then the stamp.
   The token (token_file) is sent as `Authorization: Bearer` to the endpoint's host only, never to a redirect
   target such as the hub's CDN, and never printed.

Which files are trusted without a download: a regular (non-LFS) file whose git blob id matches the manifest's
oid; an LFS file of the right size that files.json records with the manifest's sha256 (same size and mtime), or
that the old stamp lists for this same revision; any other LFS file of the right size is hashed, and kept only if
its sha256 matches. A revision change therefore fetches exactly the files whose content changed.

Output: one line per file placed (name, size, time, rate) and a summary (files, bytes, seconds, source) on
stdout; an error ends with one line on stderr: "pdfleet-weights: NODE: what: found X, expected Y".

Exit codes:
    0  staged / verified
    1  a local file system error (one line naming the file) or a bug (a Python traceback)
    2  usage or configuration error (bad CONFIG.json, unreadable token file)
    3  verify: not staged (no stamp, or a stamp for another repo or revision)
    4  verification failed (a file missing, of the wrong size or with the wrong digest)
    5  not enough free disk space (nothing was touched)
    6  no source: no peer has repo@revision verified and endpoint is null (or every peer copy failed)
    7  the hub refused or answered nonsense: 401/403 (token), 404 (repo, revision, file), a manifest or index
       that does not hold together
    8  transfer failed: the hub unreachable or failing after all retries
    9  another pdfleet-weights is already staging this path
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_NOT_STAGED = 3
EXIT_MISMATCH = 4
EXIT_DISK = 5
EXIT_NO_SOURCE = 6
EXIT_HUB = 7
EXIT_TRANSFER = 8
EXIT_BUSY = 9

META = ".pdfleet"
STAMP = f"{META}/verified.json"
JOURNAL = f"{META}/files.json"
INCOMPLETE = f"{META}/incomplete"
RSYNC_PARTIAL = f"{META}/rsync-partial"
RSYNC_TMP = f"{META}/rsync-tmp"
INDEX = "model.safetensors.index.json"
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack", ".onnx", ".ckpt")
MODULE = "weights"  # the peers' rsync module: their model directory, read only
REVISION_RE = re.compile(r"[0-9a-f]{40}\Z")
CHUNK = 1 << 20
ATTEMPTS = 8  # per file and per API request
BACKOFF_FIRST = 0.25  # seconds; doubles per attempt, at most BACKOFF_MAX
BACKOFF_MAX = 30.0
HTTP_TIMEOUT = 60
USER_AGENT = "pdfleet-weights/1"


class Failure(Exception):
    """Ends the run with `code` and one line: what went wrong, found, expected."""

    def __init__(self, code: int, what: str, found: str | None = None, expected: str | None = None):
        text = what
        if found is not None:
            text += f": found {found}"
        if expected is not None:
            text += f", expected {expected}" if found is not None else f": expected {expected}"
        super().__init__(text)
        self.code = code


class Retryable(Exception):
    """A transfer problem worth another attempt (connection trouble, 5xx, a short body)."""


class Aborted(Exception):
    """Another download failed for good: stop this one, keep what it has for the next run."""


def human(count: float) -> str:
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{int(count)} B"


def is_lfs(rel: str) -> bool:
    return rel.endswith(LFS_SUFFIXES)


def safe_relpath(rel: object) -> bool:
    """A plain relative path inside the model directory, not inside our own .pdfleet/."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel or "\0" in rel:
        return False
    parts = rel.split("/")
    return all(p not in ("", ".", "..") for p in parts) and parts[0] != META


def git_blob_oid_of(path: Path) -> str:
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# ----- configuration -----


@dataclass(frozen=True)
class Peer:
    name: str
    address: str
    port: int

    @property
    def host_port(self) -> str:
        """ADDRESS:PORT, an IPv6 address in brackets (as rsync:// URLs need it)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"rsync://{self.host_port}/{MODULE}/"


@dataclass(frozen=True)
class Config:
    node: str
    repo: str
    revision: str
    path: Path
    endpoint: str | None
    token_file: str | None
    peers: tuple[Peer, ...]
    checksums: bool
    workers: int
    free_margin: int

    @property
    def label(self) -> str:
        return f"{self.repo}@{self.revision[:12]}"


def load_config(file: str) -> Config:
    try:
        raw = json.loads(Path(file).read_text())
    except OSError as exc:
        raise Failure(EXIT_USAGE, f"cannot read the configuration {file}: {exc.strerror}") from None
    except ValueError as exc:
        raise Failure(EXIT_USAGE, f"the configuration {file} is not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise Failure(EXIT_USAGE, f"the configuration {file}", type(raw).__name__, "a JSON object")

    def field_(key: str, kinds: tuple, check=lambda v: True, expected: str = "") -> object:
        if key not in raw:
            raise Failure(EXIT_USAGE, f"{file}: '{key}' is missing", expected=expected or None)
        value = raw[key]
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds) or not check(value):
            raise Failure(
                EXIT_USAGE, f"{file}: '{key}'", repr(value), expected or " or ".join(k.__name__ for k in kinds)
            )
        return value

    node = field_("node", (str,), bool, "a node name")
    repo = field_("repo", (str,), lambda v: re.fullmatch(r"[\w.-]+/[\w.-]+", v), "OWNER/NAME")
    revision = field_("revision", (str,), REVISION_RE.match, "a 40-hex commit id")
    path = field_("path", (str,), lambda v: v.startswith("/") and v.rstrip("/") != "", "an absolute directory")
    endpoint = field_(
        "endpoint", (str, type(None)), lambda v: v is None or re.match(r"https?://[^/@]+", v), "an http(s) URL or null"
    )
    token_file = field_("token_file", (str, type(None)), lambda v: v is None or v.startswith("/"), "an absolute path")
    peers_raw = field_("peers", (list,), expected="a list of {name, address, port}")
    peers = []
    for i, item in enumerate(peers_raw):
        ok = (
            isinstance(item, dict)
            and isinstance(item.get("name"), str)
            and isinstance(item.get("address"), str)
            and isinstance(item.get("port"), int)
            and 0 < item["port"] < 65536
        )
        if not ok:
            raise Failure(EXIT_USAGE, f"{file}: peers[{i}]", repr(item), "{name, address, port}")
        peers.append(Peer(item["name"], item["address"], item["port"]))
    checksums = field_("checksums", (bool,), expected="true or false")
    workers = field_("workers", (int,), lambda v: 1 <= v <= 256, "an integer 1..256")
    margin = field_("free_margin_bytes", (int,), lambda v: v >= 0, "bytes >= 0")
    return Config(
        node=node,
        repo=repo,
        revision=revision,
        path=Path(path.rstrip("/")),
        endpoint=endpoint.rstrip("/") if endpoint else None,
        token_file=token_file,
        peers=tuple(peers),
        checksums=checksums,
        workers=workers,
        free_margin=margin,
    )


# ----- the model directory -----


@dataclass
class FileInfo:
    """One file of the checkpoint as its source describes it."""

    size: int
    oid: str | None = None  # git blob id (regular files) as the hub lists it
    sha256: str | None = None  # LFS files


class Directory:
    """The model directory: stamp, journal, free space, atomic writes. Only this class changes files under it."""

    def __init__(self, path: Path):
        self.path = path
        self.meta = path / META
        self._journal_lock = threading.Lock()
        self.journal = self._read_json(path / JOURNAL, {}).get("files", {})
        if not isinstance(self.journal, dict):
            self.journal = {}

    @staticmethod
    def _read_json(file: Path, default):
        try:
            value = json.loads(file.read_text())
        except (OSError, ValueError):
            return default
        return value if isinstance(value, dict) else default

    def stamp(self) -> dict | None:
        stamp = self._read_json(self.path / STAMP, None)
        if stamp is None or not isinstance(stamp.get("files"), dict):
            return None
        return stamp

    def size_of(self, rel: str) -> int | None:
        try:
            st = os.stat(self.path / rel)
        except OSError:
            return None
        return st.st_size if os.path.isfile(self.path / rel) else None

    def free_bytes(self) -> tuple[int, Path]:
        probe = self.path
        while not probe.exists():
            probe = probe.parent
        st = os.statvfs(probe)
        return st.f_bavail * st.f_frsize, probe

    def unstamp(self) -> None:
        """Before any change: the directory stops claiming to hold a verified model."""
        (self.path / STAMP).unlink(missing_ok=True)
        self.meta.mkdir(parents=True, exist_ok=True)

    def write_json(self, rel: str, value: dict) -> None:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        with open(tmp, "w") as f:
            json.dump(value, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)

    def write_stamp(self, cfg: Config, files: dict[str, FileInfo]) -> None:
        self.write_json(
            STAMP,
            {
                "repo": cfg.repo,
                "revision": cfg.revision,
                "files": {rel: info.size for rel, info in sorted(files.items())},
                "sha256": {rel: info.sha256 for rel, info in sorted(files.items()) if info.sha256},
                "checksums": cfg.checksums,
            },
        )

    # The journal: what we know of files we placed or checked, valid while size and mtime stay.

    def known(self, rel: str) -> dict | None:
        entry = self.journal.get(rel)
        try:
            st = os.stat(self.path / rel)
        except OSError:
            return None
        if isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
            return entry
        return None

    def remember(self, rel: str, info: FileInfo, hashed: bool) -> None:
        st = os.stat(self.path / rel)
        entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "hashed": hashed}
        if info.sha256:
            entry["sha256"] = info.sha256
        if info.oid:
            entry["oid"] = info.oid
        with self._journal_lock:
            self.journal[rel] = entry
            self.write_json(JOURNAL, {"files": self.journal})

    def keep_only(self, rels) -> None:
        with self._journal_lock:
            self.journal = {rel: e for rel, e in self.journal.items() if rel in rels}
            self.write_json(JOURNAL, {"files": self.journal})

    def remove(self, rel: str) -> None:
        target = self.path / rel
        target.unlink(missing_ok=True)
        parent = target.parent
        while parent != self.path:
            try:
                parent.rmdir()  # only when empty
            except OSError:
                break
            parent = parent.parent

    def tidy(self) -> None:
        """Remove our empty work directories."""
        for rel in (INCOMPLETE, RSYNC_PARTIAL, RSYNC_TMP):
            root = self.path / rel
            if not root.is_dir():
                continue
            for directory in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            with contextlib.suppress(OSError):
                root.rmdir()


# ----- the stager -----


class Stager:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.dir = Directory(cfg.path)
        self._print_lock = threading.Lock()
        self.token: str | None = None
        self.hashed_here: set[str] = set()  # files found in place whose digest this run computed

    def say(self, text: str) -> None:
        with self._print_lock:
            print(f"{self.cfg.node}: {text}", flush=True)

    # ----- verify -----

    def check_stamp(self, stamp: dict | None) -> str | None:
        """Why the stamp does not vouch for the wanted checkpoint as it lies on disk now; None when it does."""
        cfg = self.cfg
        if stamp is None:
            return "no stamp"
        if stamp.get("repo") != cfg.repo or stamp.get("revision") != cfg.revision:
            return f"the stamp is for {stamp.get('repo')}@{str(stamp.get('revision'))[:12]}"
        wrong = []
        for rel, size in sorted(stamp["files"].items()):
            have = self.dir.size_of(rel) if safe_relpath(rel) else None
            if have != size:
                wrong.append(f"{rel} ({'missing' if have is None else f'{have} bytes, expected {size}'})")
        if wrong:
            more = f" and {len(wrong) - 1} more" if len(wrong) > 1 else ""
            return f"{wrong[0]}{more}"
        return None

    def verify(self) -> int:
        cfg = self.cfg
        stamp = self.dir.stamp()
        if stamp is None:
            raise Failure(EXIT_NOT_STAGED, f"{cfg.label} not staged at {cfg.path}", "no stamp", f"{STAMP}")
        if stamp.get("repo") != cfg.repo or stamp.get("revision") != cfg.revision:
            found = f"{stamp.get('repo')}@{str(stamp.get('revision'))[:12]}"
            raise Failure(EXIT_NOT_STAGED, f"{cfg.path} holds another checkpoint", found, cfg.label)
        problem = self.check_stamp(stamp)
        if problem:
            raise Failure(EXIT_MISMATCH, f"{cfg.label} at {cfg.path}: {problem}")
        if cfg.checksums:
            shas = sorted((stamp.get("sha256") or {}).items())
            for (rel, sha), got in zip(
                shas, self._parallel(lambda item: sha256_of(cfg.path / item[0]), shas), strict=True
            ):
                if got != sha:
                    raise Failure(EXIT_MISMATCH, f"{cfg.label} at {cfg.path}: sha256 of {rel}", got, sha)
        files = stamp["files"]
        how = "sizes and sha256" if cfg.checksums else "sizes"
        self.say(f"verified {cfg.label} at {cfg.path}: {len(files)} files, {human(sum(files.values()))} ({how})")
        return EXIT_OK

    # ----- stage -----

    def stage(self) -> int:
        cfg = self.cfg
        started = time.monotonic()
        stamp = self.dir.stamp()
        problem = self.check_stamp(stamp)
        if problem is None and cfg.checksums and not stamp.get("checksums"):
            problem = "the stamp was made without checksums"
        if problem is None:
            files = stamp["files"]
            self.say(
                f"verified {cfg.label} at {cfg.path}: {len(files)} files, {human(sum(files.values()))}; nothing to do"
            )
            return EXIT_OK
        self.say(f"staging {cfg.label} at {cfg.path} ({problem})")
        reasons = []
        for peer in cfg.peers:
            if peer.name == cfg.node:
                continue
            reason = self.from_peer(peer, stamp, started)
            if reason is None:
                return EXIT_OK
            self.say(f"peer {peer.name} skipped: {reason}")
            reasons.append(f"{peer.name}: {reason}")
        if cfg.endpoint is None:
            found = "; ".join(reasons) if reasons else "no peers configured"
            raise Failure(EXIT_NO_SOURCE, f"no peer has {cfg.label} verified (and no hub for this node)", found)
        self.from_hub(stamp, started)
        return EXIT_OK

    def _disk_check(self, needed: int, freed: int, what: str) -> None:
        free, probe = self.dir.free_bytes()
        if needed + self.cfg.free_margin > free + freed:
            raise Failure(
                EXIT_DISK,
                f"not enough disk space for {self.cfg.label} at {self.cfg.path} (filesystem of {probe}; {what})",
                f"{human(free)} free" + (f" + {human(freed)} of stale files" if freed else ""),
                f"{human(needed)} still needed + {human(self.cfg.free_margin)} margin",
            )

    def _stale(self, old_stamp: dict | None, keep: dict) -> dict[str, int]:
        """Files an older stamp (or our journal) lists that the wanted checkpoint lacks: rel -> bytes they hold."""
        listed = set(self.dir.journal)
        if old_stamp:
            listed |= set(old_stamp["files"])
        stale = {}
        for rel in sorted(listed - set(keep)):
            size = self.dir.size_of(rel) if safe_relpath(rel) else None
            if size is not None:
                stale[rel] = size
        return stale

    # ----- from a peer -----

    def _rsync_error(self, result: subprocess.CompletedProcess) -> str:
        lines = [line.strip() for line in (result.stderr or "").splitlines() if line.strip()]
        text = next((line for line in lines if line.startswith("@ERROR") or "rsync:" in line), None)
        text = text or (lines[0] if lines else "")
        return f"rsync exit {result.returncode}" + (f": {text}" if text else "")

    def peer_stamp(self, peer: Peer) -> tuple[dict | None, str]:
        with tempfile.TemporaryDirectory(prefix="pdfleet-weights-") as tmp:
            target = Path(tmp) / "verified.json"
            try:
                result = subprocess.run(
                    ["rsync", "--contimeout=5", "--timeout=30", f"{peer.url}{STAMP}", str(target)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    stdin=subprocess.DEVNULL,
                )
            except FileNotFoundError:
                return None, "rsync is not installed on this node"
            except subprocess.TimeoutExpired:
                return None, f"no answer from {peer.host_port} within 60 s"
            if result.returncode != 0:
                error = self._rsync_error(result)
                if "No such file" in (result.stderr or ""):
                    return None, "has no verified model (no stamp)"
                return None, f"not answering ({error})"
            try:
                stamp = json.loads(target.read_text())
            except (OSError, ValueError):
                return None, "its stamp is unreadable"
        if not isinstance(stamp, dict) or not isinstance(stamp.get("files"), dict):
            return None, "its stamp is unreadable"
        cfg = self.cfg
        if stamp.get("repo") != cfg.repo or stamp.get("revision") != cfg.revision:
            return None, f"has {stamp.get('repo')}@{str(stamp.get('revision'))[:12]}, not {cfg.label}"
        sizes, shas = stamp["files"], stamp.get("sha256") or {}
        if not sizes or not all(safe_relpath(r) and isinstance(s, int) and s >= 0 for r, s in sizes.items()):
            return None, "its stamp lists no usable files"
        if not isinstance(shas, dict):
            return None, "its stamp is unreadable"
        return stamp, ""

    def from_peer(self, peer: Peer, old_stamp: dict | None, started: float) -> str | None:
        """Copy from `peer`; None on success, else why not (a one-line reason)."""
        cfg = self.cfg
        stamp, reason = self.peer_stamp(peer)
        if stamp is None:
            return reason
        files = {
            rel: FileInfo(size, sha256=(stamp.get("sha256") or {}).get(rel)) for rel, size in stamp["files"].items()
        }
        needed = sum(info.size for rel, info in files.items() if self.dir.size_of(rel) != info.size)
        stale = self._stale(old_stamp, files)
        self._disk_check(needed, sum(stale.values()), f"copy from {peer.name}")
        self.say(f"copying {cfg.label} from peer {peer.name} ({peer.address}): {len(files)} files, {human(needed)}")
        self.dir.unstamp()
        for rel in stale:
            self.dir.remove(rel)
            self.say(f"removed {rel} (not in {cfg.label})")
        for rel in (RSYNC_PARTIAL, RSYNC_TMP):
            (cfg.path / rel).mkdir(parents=True, exist_ok=True)
        copied, fetched = self._rsync(peer, files)
        if copied is None:
            return f"copy failed ({fetched})"
        problem = self._verify_files(files, source=f"peer {peer.name}")
        if problem:
            return f"copied, but {problem}"
        self._finish_stage(
            files, started, f"copied {copied} files, {human(fetched)}", f"peer {peer.name} ({peer.address})"
        )
        return None

    def _finish_stage(self, files: dict[str, FileInfo], started: float, moved: str, source: str) -> None:
        """The path holds exactly `files`, verified: drop what the revision lacks, stamp it, say how it went."""
        cfg = self.cfg
        self.dir.keep_only(set(files))
        self.dir.write_stamp(cfg, files)
        self.dir.tidy()
        seconds = time.monotonic() - started
        self.say(
            f"staged {cfg.label} at {cfg.path}: {len(files)} files, {human(sum(i.size for i in files.values()))};"
            f" {moved} in {seconds:.1f} s from {source}"
        )

    def _rsync(self, peer: Peer, files: dict[str, FileInfo]) -> tuple[int | None, int | str]:
        """rsync exactly the stamp's files; (files copied, bytes) or (None, why it failed)."""
        cfg = self.cfg
        argv = [
            "rsync",
            "-a",
            "--partial",
            f"--partial-dir={cfg.path / RSYNC_PARTIAL}",
            f"--temp-dir={cfg.path / RSYNC_TMP}",
            f"--exclude=/{META}/",
            "--files-from=-",
            "--contimeout=10",
            "--timeout=120",
            "--out-format=%n\t%l",
            peer.url,
            f"{cfg.path}/",
        ]
        process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        errors: list[str] = []
        reader = threading.Thread(target=lambda: errors.extend(process.stderr), daemon=True)
        reader.start()
        process.stdin.write("".join(f"{rel}\n" for rel in sorted(files)))
        process.stdin.close()
        # rsync names a file when it starts on it and handles one file at a time: a file is done when the next
        # one is named (or rsync ends).
        copied = fetched = 0
        current: tuple[str, float] | None = None

        def done(name: str, since: float) -> None:
            took = time.monotonic() - since
            rate = f" ({human(files[name].size / took)}/s)" if took > 0 else ""
            self.say(f"{name} {human(files[name].size)} in {took:.1f} s{rate} from {peer.name}")

        for line in process.stdout:
            name = line.rstrip("\n").partition("\t")[0]
            if name.endswith("/") or name not in files:
                continue
            if current:
                done(*current)
            current = (name, time.monotonic())
            copied += 1
            fetched += files[name].size
        rc = process.wait()
        reader.join(timeout=5)
        if current and rc == 0:
            done(*current)
        if rc != 0:
            result = subprocess.CompletedProcess(argv, rc, "", "".join(errors))
            return None, self._rsync_error(result)
        return copied, fetched

    def _verify_files(self, files: dict[str, FileInfo], source: str) -> str | None:
        """Sizes (and sha256 when asked) of the copied files; records them in the journal. None when all good."""
        for rel, info in sorted(files.items()):
            have = self.dir.size_of(rel)
            if have != info.size:
                return f"{rel} is {'missing' if have is None else f'{have} bytes'}, expected {info.size} ({source})"
        if self.cfg.checksums:

            def digest(rel: str) -> str | None:
                known = self.dir.known(rel)
                if known and known.get("hashed") and known.get("sha256") == files[rel].sha256:
                    return files[rel].sha256
                return sha256_of(self.cfg.path / rel)

            lfs = sorted(rel for rel, info in files.items() if info.sha256)
            for rel, got in zip(lfs, self._parallel(digest, lfs), strict=True):
                if got != files[rel].sha256:
                    self.dir.remove(rel)  # so that the next source copies it again
                    return f"sha256 of {rel} is {got}, expected {files[rel].sha256} ({source})"
        for rel, info in sorted(files.items()):
            self.dir.remember(rel, info, hashed=bool(self.cfg.checksums and info.sha256))
        return None

    def _parallel(self, fn, items: list) -> list:
        """fn over items on `workers` threads (hashing: hashlib lets go of the GIL), results in order."""
        if len(items) < 2:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.cfg.workers, len(items)), thread_name_prefix="hash") as pool:
            return list(pool.map(fn, items))

    # ----- from the hub -----

    def _open(self, url: str, headers: dict | None = None):
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
        if self.token and urlsplit(url).netloc == urlsplit(self.cfg.endpoint).netloc:
            # Unredirected: urllib drops it when following a redirect (to the CDN), wherever that points.
            request.add_unredirected_header("Authorization", f"Bearer {self.token}")
        return urllib.request.urlopen(request, timeout=HTTP_TIMEOUT)

    def _hub_refusal(self, exc: urllib.error.HTTPError, what: str) -> Failure:
        code = exc.headers.get("X-Error-Code") if exc.headers else None
        message = exc.headers.get("X-Error-Message") if exc.headers else None
        detail = f"HTTP {exc.code}" + (f" {code}" if code else "") + (f" ({message})" if message else "")
        if exc.code in (401, 403):
            token = f"the token in {self.cfg.token_file}" if self.token else "no token (token_file is null)"
            return Failure(EXIT_HUB, f"the hub {self.cfg.endpoint} refused {what} with {token}", detail, "access")
        return Failure(EXIT_HUB, f"the hub {self.cfg.endpoint} has no {what}", detail, "HTTP 200")

    def _with_retries(self, what: str, attempt_fn):
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return attempt_fn()
            except Retryable as exc:
                if attempt == ATTEMPTS:
                    raise Failure(
                        EXIT_TRANSFER, f"{what} failed {ATTEMPTS} times from {self.cfg.endpoint}", str(exc)
                    ) from None
                delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (attempt - 1))
                self.say(f"{what}: {exc}; retry {attempt}/{ATTEMPTS - 1} in {delay:.2f} s")
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _get_bytes(self, url: str, what: str) -> tuple[bytes, dict]:
        def once():
            try:
                with self._open(url) as response:
                    body = response.read()
                    length = response.headers.get("Content-Length")
                    if length is not None and len(body) != int(length):
                        raise Retryable(f"short body: {len(body)} of {length} bytes")
                    return body, response.headers
            except urllib.error.HTTPError as exc:
                if exc.code >= 500 or exc.code == 429:
                    raise Retryable(f"HTTP {exc.code}") from None
                raise self._hub_refusal(exc, what) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                raise Retryable(_describe(exc)) from None

        return self._with_retries(what, once)

    def manifest(self) -> dict[str, FileInfo]:
        cfg = self.cfg
        url = f"{cfg.endpoint}/api/models/{quote(cfg.repo)}/tree/{cfg.revision}?recursive=true"
        files: dict[str, FileInfo] = {}
        seen = set()
        while url:
            if url in seen:
                raise Failure(EXIT_HUB, f"the hub's file list for {cfg.label} loops", url)
            seen.add(url)
            body, headers = self._get_bytes(url, f"the file list of {cfg.label}")
            try:
                items = json.loads(body)
            except ValueError:
                raise Failure(EXIT_HUB, f"the hub's file list for {cfg.label}", "not JSON", "a JSON list") from None
            if not isinstance(items, list):
                raise Failure(EXIT_HUB, f"the hub's file list for {cfg.label}", type(items).__name__, "a list")
            for item in items:
                if not isinstance(item, dict) or item.get("type") != "file":
                    continue
                rel, size = item.get("path"), item.get("size")
                lfs = item.get("lfs") if isinstance(item.get("lfs"), dict) else None
                if not safe_relpath(rel) or not isinstance(size, int) or size < 0:
                    raise Failure(EXIT_HUB, f"the hub's file list for {cfg.label} has an entry", repr(item)[:200])
                sha = lfs.get("oid") if lfs else None
                if lfs and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
                    raise Failure(EXIT_HUB, f"the hub's file list: lfs.oid of {rel}", repr(sha), "a sha256")
                oid = item.get("oid") if not lfs and isinstance(item.get("oid"), str) else None
                files[rel] = FileInfo(size=size, oid=oid, sha256=sha)
            url = _next_link(headers.get("Link"), url)
        if not files:
            raise Failure(EXIT_HUB, f"the hub lists no files for {cfg.label}")
        return files

    def resolve_url(self, rel: str) -> str:
        cfg = self.cfg
        return f"{cfg.endpoint}/{quote(cfg.repo)}/resolve/{cfg.revision}/{quote(rel)}"

    def trusted(self, rel: str, info: FileInfo, old_stamp: dict | None) -> bool:
        """Is the file at rel already the wanted content (present, right size, known or hashed digest)?"""
        if self.dir.size_of(rel) != info.size:
            return False
        known = self.dir.known(rel)
        if info.sha256 is None:
            if info.oid is None or (known and known.get("oid") == info.oid):
                return True
            ok = git_blob_oid_of(self.cfg.path / rel) == info.oid
        else:
            if known and known.get("sha256") == info.sha256 and (known.get("hashed") or not self.cfg.checksums):
                return True
            same_revision = (
                old_stamp
                and old_stamp.get("repo") == self.cfg.repo
                and old_stamp.get("revision") == self.cfg.revision
                and old_stamp["files"].get(rel) == info.size
                and (old_stamp.get("sha256") or {}).get(rel) == info.sha256
            )
            if same_revision and not self.cfg.checksums:
                return True
            ok = sha256_of(self.cfg.path / rel) == info.sha256
        if ok:
            self.hashed_here.add(rel)
        return ok

    def check_index(self, files: dict[str, FileInfo]) -> bytes | None:
        """The index's bytes (fetched once, kept for placing) after checking every shard it names is listed."""
        cfg = self.cfg
        if INDEX not in files:
            return None
        info = files[INDEX]
        if self.trusted(INDEX, info, None):
            body = (cfg.path / INDEX).read_bytes()
        else:
            body, _ = self._get_bytes(self.resolve_url(INDEX), f"{INDEX} of {cfg.label}")
            if len(body) != info.size:
                raise Failure(EXIT_MISMATCH, f"{INDEX} from the hub", f"{len(body)} bytes", f"{info.size}")
            if info.oid and _blob_oid(body) != info.oid:
                raise Failure(EXIT_MISMATCH, f"{INDEX} from the hub: git blob id", _blob_oid(body), info.oid)
        try:
            weight_map = json.loads(body)["weight_map"]
            shards = set(weight_map.values())
        except (ValueError, KeyError, TypeError, AttributeError):
            raise Failure(EXIT_HUB, f"{INDEX} of {cfg.label}", "no weight_map", "a safetensors index") from None
        missing = sorted(s for s in shards if s not in files)
        if missing:
            raise Failure(
                EXIT_HUB,
                f"{INDEX} of {cfg.label} names shards the hub does not list",
                f"{len(missing)} missing, first {missing[0]}",
                f"all {len(shards)} listed",
            )
        return body

    def from_hub(self, old_stamp: dict | None, started: float) -> None:
        cfg = self.cfg
        if cfg.token_file:
            try:
                self.token = Path(cfg.token_file).read_text().strip() or None
            except OSError as exc:
                raise Failure(EXIT_USAGE, f"cannot read the token file {cfg.token_file}: {exc.strerror}") from None
            if self.token is None:
                raise Failure(EXIT_USAGE, f"the token file {cfg.token_file} is empty")
        self.say(f"downloading {cfg.label} from {cfg.endpoint}")
        files = self.manifest()
        index = self.check_index(files)
        wanted = {}
        needed = 0
        in_place = self._parallel(lambda item: self.trusted(item[0], item[1], old_stamp), list(files.items()))
        for (rel, info), ok in zip(files.items(), in_place, strict=True):
            if ok:
                continue
            wanted[rel] = info
            part = cfg.path / INCOMPLETE / rel
            have = part.stat().st_size if rel != INDEX and part.is_file() else 0
            needed += info.size - have if have <= info.size else info.size
        stale = self._stale(old_stamp, files)
        self._disk_check(needed, sum(stale.values()), f"download of {len(wanted)} files")
        self.dir.unstamp()
        for rel in stale:
            self.dir.remove(rel)
            self.say(f"removed {rel} (not in {cfg.label})")
        fetched = 0
        if INDEX in wanted:
            self._place_bytes(INDEX, files[INDEX], index)
            fetched += files[INDEX].size
        fetched += self._download_all({rel: info for rel, info in wanted.items() if rel != INDEX})
        wrong = [rel for rel, info in files.items() if self.dir.size_of(rel) != info.size]
        if wrong:
            have = self.dir.size_of(wrong[0])
            raise Failure(
                EXIT_MISMATCH,
                f"after the download of {cfg.label}: {wrong[0]}",
                "nothing" if have is None else f"{have} bytes",
                f"{files[wrong[0]].size} bytes",
            )
        for rel, info in files.items():
            if rel not in wanted and self.dir.known(rel) is None:
                self.dir.remember(rel, info, hashed=rel in self.hashed_here)
        self._finish_stage(files, started, f"fetched {len(wanted)} files, {human(fetched)}", cfg.endpoint)

    def _place_bytes(self, rel: str, info: FileInfo, body: bytes) -> None:
        part = self.cfg.path / INCOMPLETE / rel
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(body)
        self._finish(rel, info, part, hashed=bool(info.oid))
        self.say(f"{rel} {human(info.size)}")

    def _finish(self, rel: str, info: FileInfo, part: Path, hashed: bool) -> None:
        target = self.cfg.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, target)
        self.dir.remember(rel, info, hashed=hashed)

    def _download_all(self, wanted: dict[str, FileInfo]) -> int:
        if not wanted:
            return 0
        abort = threading.Event()
        total = 0
        with ThreadPoolExecutor(max_workers=self.cfg.workers, thread_name_prefix="download") as pool:
            futures = [pool.submit(self._download, rel, info, abort) for rel, info in wanted.items()]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                abort.set()
                for future in futures:
                    future.cancel()
            wait(futures)
        errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
        real = [e for e in errors if not isinstance(e, Aborted)]
        if real:
            raise real[0]
        for future in futures:
            total += future.result()
        return total

    def _download(self, rel: str, info: FileInfo, abort: threading.Event) -> int:
        """One file into .pdfleet/incomplete/, resumed, verified, renamed into place; returns bytes fetched."""
        cfg = self.cfg
        part = cfg.path / INCOMPLETE / rel
        part.parent.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        fetched = 0
        fresh_retry_used = False
        while True:
            if abort.is_set():
                raise Aborted
            counter = [0]
            try:
                self._with_retries(rel, lambda counter=counter: self._fetch_into(rel, info, part, abort, counter))
            finally:
                fetched += counter[0]
            hashed = False
            problem = None
            if info.sha256 and cfg.checksums:
                got = sha256_of(part)
                hashed = True
                if got != info.sha256:
                    problem = ("sha256", got, info.sha256)
            elif info.sha256 is None and info.oid:
                got = git_blob_oid_of(part)
                hashed = True
                if got != info.oid:
                    problem = ("git blob id", got, info.oid)
            if problem is None:
                break
            part.unlink()
            if fresh_retry_used:
                raise Failure(EXIT_MISMATCH, f"{rel} from {cfg.endpoint}: {problem[0]}", problem[1], problem[2])
            fresh_retry_used = True
            self.say(f"{rel}: {problem[0]} {problem[1]}, expected {problem[2]}; downloading it again from the start")
        self._finish(rel, info, part, hashed=hashed)
        took = time.monotonic() - began
        rate = f" ({human(fetched / took)}/s)" if took > 0 else ""
        self.say(f"{rel} {human(info.size)} in {took:.1f} s{rate}")
        return fetched

    def _fetch_into(self, rel: str, info: FileInfo, part: Path, abort: threading.Event, counter: list) -> None:
        have = part.stat().st_size if part.exists() else 0
        if have > info.size:
            part.unlink()
            have = 0
        if have == info.size and part.exists():
            return
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            response = self._open(self.resolve_url(rel), headers)
        except urllib.error.HTTPError as exc:
            if exc.code == 416:
                part.unlink(missing_ok=True)
                raise Retryable(f"HTTP 416 for bytes={have}- of {info.size}: starting over") from None
            if exc.code >= 500 or exc.code == 429:
                raise Retryable(f"HTTP {exc.code}") from None
            raise self._hub_refusal(exc, rel) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise Retryable(_describe(exc)) from None
        with response:
            start = 0
            if response.status == 206:
                match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range") or "")
                start = int(match[1]) if match else -1
                if start != have:
                    part.unlink(missing_ok=True)
                    raise Retryable(f"the hub answered range {response.headers.get('Content-Range')}, asked {have}-")
            expected = info.size - start
            length = response.headers.get("Content-Length")
            if length is not None and int(length) != expected:
                raise Failure(
                    EXIT_HUB, f"{rel}: the hub's Content-Length (from byte {start})", length, f"{expected} bytes"
                )
            got = 0
            try:
                with open(part, "ab" if start else "wb") as out:
                    while True:
                        if abort.is_set():
                            raise Aborted
                        chunk = response.read(CHUNK)
                        if not chunk:
                            break
                        out.write(chunk)
                        got += len(chunk)
                        counter[0] += len(chunk)
            except (OSError, http.client.HTTPException) as exc:
                if isinstance(exc, OSError) and exc.errno in (28, 122):  # ENOSPC, EDQUOT
                    raise Failure(EXIT_DISK, f"writing {rel} under {self.cfg.path}", exc.strerror) from None
                raise Retryable(
                    f"connection lost after {start + got} of {info.size} bytes ({_describe(exc)})"
                ) from None
            if got != expected:
                raise Retryable(f"connection closed after {start + got} of {info.size} bytes")


def _blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
        return str(reason.strerror if isinstance(reason, OSError) and reason.strerror else reason)
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, http.client.IncompleteRead):
        return f"short body ({len(exc.partial)} bytes read)"
    return str(exc) or type(exc).__name__


def _next_link(header: str | None, base: str) -> str | None:
    """The rel="next" URL of a Link header (RFC 8288), made absolute."""
    for part in (header or "").split(","):
        match = re.match(r"\s*<([^>]*)>\s*;(.*)", part)
        if match and re.search(r'\brel\s*=\s*"?next"?', match[2]):
            return urljoin(base, match[1])
    return None


@contextlib.contextmanager
def _exclusive(path: Path):
    """One stager per model directory at a time (a lock outside the directory: taking it touches nothing)."""
    name = hashlib.sha1(str(path).encode()).hexdigest()[:16]
    lock_file = Path(tempfile.gettempdir()) / f"pdfleet-weights-{name}.lock"
    with open(lock_file, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            raise Failure(EXIT_BUSY, f"another pdfleet-weights is staging {path}", f"pid {holder}") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield


def main(argv: list[str]) -> int:
    usage = "usage: pdfleet-weights.py stage|verify CONFIG.json"
    if len(argv) == 1 and argv[0] in ("-h", "--help"):
        print(__doc__)
        return EXIT_OK
    if len(argv) != 2 or argv[0] not in ("stage", "verify"):
        print(usage, file=sys.stderr)
        return EXIT_USAGE
    node = "?"
    token = None
    try:
        cfg = load_config(argv[1])
        node = cfg.node
        stager = Stager(cfg)
        if argv[0] == "verify":
            return stager.verify()
        with _exclusive(cfg.path):
            try:
                return stager.stage()
            finally:
                token = stager.token
    except Failure as exc:
        text = str(exc)
        if token:
            text = text.replace(token, "<token>")
        print(f"pdfleet-weights: {node}: {text}", file=sys.stderr, flush=True)
        return exc.code
    except KeyboardInterrupt:
        print(f"pdfleet-weights: {node}: interrupted (partial downloads are kept and resumed)", file=sys.stderr)
        return 130
    except OSError as exc:  # the local file system: permissions, a file where a directory should be, I/O errors
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"pdfleet-weights: {node}: {exc.strerror or exc}{where}", file=sys.stderr, flush=True)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
