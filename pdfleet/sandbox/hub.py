"""A stand-in Hugging Face hub for the sandbox: the "WAN" the seed node downloads the model from.

STAND-IN, standard library only. It speaks the part of the hub's HTTP API that a downloader uses, with the real
shapes, headers and status codes, and serves a deterministic fake DeepSeek-V3.2 checkpoint for any 40-hex revision
of its repositories (default `deepseek-ai/DeepSeek-V3.2`). A test or a person counts fetches in its request log
and breaks transfers on purpose with its fault knobs.

Content. `checkpoint(repo, revision, shards, shard_bytes)` is a pure function: path -> bytes. config.json,
generation_config.json, the tokenizer files, .gitattributes and inference/config_671B_v3.2.json depend on the
repository only (they stay the same from one revision to the next, as in the real repository); README.md, the
index and the shards depend on the revision too. Shards are valid safetensors files (8-byte little-endian header
length, JSON header padded with spaces, data) of exactly `shard_bytes` bytes, named model-0000K-of-0000N; the
index (model.safetensors.index.json) maps every tensor to its shard. *.safetensors files are LFS files.

Endpoints (all under http://ADDRESS:PORT):

    GET  /api/models/{repo}/revision/{rev}          {"id", "sha": rev, "siblings": [{"rfilename"}], ...};
         [?blobs=true]                                with blobs=true each sibling also has "blobId", "size" and,
                                                      for LFS files, "lfs": {"sha256", "size", "pointerSize"}
    GET  /api/models/{repo}/tree/{rev}[/{dir}]      [{"type": "file"|"directory", "oid", "size", "path",
         ?recursive=true&cursor=...                   "lfs": {"oid": sha256, "size", "pointerSize"}}]; pages of
                                                      --page-size entries, the next one in `Link: <url>; rel="next"`
    GET|HEAD /{repo}/resolve/{rev}/{path}           regular files: 200/206 with Content-Length, ETag (git blob
                                                      oid), X-Repo-Commit, Range (bytes=N-, N-M, -N; 416 outside);
                                                      LFS files: 302 to a signed URL on the CDN, with
                                                      X-Repo-Commit, X-Linked-Etag (sha256) and X-Linked-Size, like
                                                      the hub's redirect to its CDN

The CDN is another origin, as the real hub's is (cdn-lfs.hf.co): a second listener on its own port (--cdn-port,
default the hub's port + 1), which answers only

    GET|HEAD /cdn/repos/{sha256}?repo&revision&file&Expires&Signature
                                                    no token needed, HMAC signature (403 when wrong or expired),
                                                      Range as above, ETag "sha256"

A real Hugging Face client (huggingface_hub) follows a redirect only while it stays on the hub's origin, and reads
a file's commit, ETag and size from the headers of the 302 that leaves it; a CDN on the hub's own origin would be
followed and its answer taken for the hub's (no X-Repo-Commit: "does not seem to be served by a Hugging Face Hub
endpoint"). tests/test_standin_hub.py runs the real client's snapshot_download and model_info against it.

Errors as the hub answers them: 404 with X-Error-Code RepoNotFound (unknown repository), RevisionNotFound (revision
not 40 lowercase hex), EntryNotFound (no such file); 401 on /api and /resolve without the configured token
(`Authorization: Bearer TOKEN`) or with a wrong one. A JSON body {"error": ...} and X-Error-Message come with them.

Request log (--log): one JSON object per line, appended per request: time, client, method, path (no query),
kind (api | resolve | cdn | other), repo, revision, file, range, status, bytes (body bytes sent), auth (whether an
Authorization header came; the header itself is never logged), truncated. Truncate the file to start counting
anew. A request's line is written before the last byte of its response is sent, so a client that holds a whole
response finds the line already there.

Fault knobs (--knobs, a JSON object read at every request; absent or unreadable file = no faults):

    truncate_after_bytes  N   content responses (resolve 200/206, cdn) send N body bytes, then the connection
                              is closed (the client sees a short body)
    truncate_count        K   ... only for the next K such responses (the hub counts K down in the file);
                              absent: every content response
    error_status          S   answer S (e.g. 503) instead, to resolve and cdn requests ...
    error_count           K   ... the next K times (counted down in the file); absent: always
    match                 G   limit both to files matching the glob G (e.g. "*.safetensors")
    rate_bytes_per_s      R   throttle every content body to about R bytes per second

    python -m pdfleet.sandbox.hub --listen 10.77.0.2:8080 [--cdn-port 8081] --token-file T --log L --knobs K
        [--repo OWNER/NAME ...] [--shards 8] [--shard-bytes 1048576] [--page-size 1000] [--revision-shards REV=N]

`pdfleet sandbox up` runs it in its own network namespace on the sandbox bridge (the /24's second address, port
8080, its CDN on 8081), with <sandbox dir>/hub/{token,requests.jsonl,knobs.json}; `pdfleet sandbox down` ends it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fnmatch
import hashlib
import hmac
import json
import random
import re
import secrets
import socket
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from pdfleet.sandbox.benchdata import tokenizer_files

DEFAULT_REPOS = ("deepseek-ai/DeepSeek-V3.2",)
DEFAULT_SHARDS = 8
DEFAULT_SHARD_BYTES = 1 << 20
DEFAULT_PAGE_SIZE = 1000
CDN_URL_LIFETIME = 3600  # seconds a signed CDN URL stays valid
REVISION_RE = re.compile(r"[0-9a-f]{40}\Z")
SHA256_RE = re.compile(r"[0-9a-f]{64}\Z")
LFS_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
INDEX = "model.safetensors.index.json"
CHUNK = 64 * 1024
# A layer count and tensor names in DeepSeek-V3.2's style: 61 layers plus the one MTP (next-token) layer.
LAYERS = 62
DENSE_LAYERS = 3

# What the real repository's config.json says (a subset: the fields the engine and a reader look at).
CONFIG = {
    "architectures": ["DeepseekV32ForCausalLM"],
    "model_type": "deepseek_v32",
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "first_k_dense_replace": DENSE_LAYERS,
    "hidden_act": "silu",
    "hidden_size": 7168,
    "index_head_dim": 128,
    "index_n_heads": 64,
    "index_topk": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 18432,
    "kv_lora_rank": 512,
    "max_position_embeddings": 163840,
    "moe_intermediate_size": 2048,
    "moe_layer_freq": 1,
    "n_group": 8,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "norm_topk_prob": True,
    "num_attention_heads": 128,
    "num_experts_per_tok": 8,
    "num_hidden_layers": 61,
    "num_key_value_heads": 128,
    "num_nextn_predict_layers": 1,
    "q_lora_rank": 1536,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "quantization_config": {
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "quant_method": "fp8",
        "scale_fmt": "ue8m0",
        "weight_block_size": [128, 128],
    },
    "rms_norm_eps": 1e-06,
    "rope_scaling": {
        "beta_fast": 32,
        "beta_slow": 1,
        "factor": 40,
        "mscale": 1.0,
        "mscale_all_dim": 1.0,
        "original_max_position_embeddings": 4096,
        "type": "yarn",
    },
    "rope_theta": 10000,
    "routed_scaling_factor": 2.5,
    "scoring_func": "sigmoid",
    "tie_word_embeddings": False,
    "topk_group": 4,
    "topk_method": "noaux_tc",
    "torch_dtype": "bfloat16",
    "transformers_version": "4.44.2",
    "use_cache": True,
    "v_head_dim": 128,
    "vocab_size": 129280,
}
DTYPE_BYTES = {"BF16": 2, "F32": 4, "F8_E4M3": 1}


def _json(value) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()


def is_lfs(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in LFS_PATTERNS)


def shard_name(k: int, n: int) -> str:
    return f"model-{k:05d}-of-{n:05d}.safetensors"


def _tensor_names() -> list[str]:
    names = ["model.embed_tokens.weight"]
    for layer in range(LAYERS):
        p = f"model.layers.{layer}"
        names += [f"{p}.input_layernorm.weight", f"{p}.post_attention_layernorm.weight"]
        for proj in ("q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"):
            names += [f"{p}.self_attn.{proj}.weight", f"{p}.self_attn.{proj}.weight_scale_inv"]
        names += [f"{p}.self_attn.indexer.wk.weight", f"{p}.self_attn.indexer.k_norm.weight"]
        if layer < DENSE_LAYERS:
            names += [f"{p}.mlp.{proj}.weight" for proj in ("gate_proj", "up_proj", "down_proj")]
        else:
            names += [f"{p}.mlp.gate.weight", f"{p}.mlp.gate.e_score_correction_bias"]
            names += [f"{p}.mlp.shared_experts.{proj}.weight" for proj in ("gate_proj", "up_proj", "down_proj")]
    return names + ["model.norm.weight", "lm_head.weight"]


def _dtype(name: str) -> str:
    if name.endswith(("norm.weight", "embed_tokens.weight", "lm_head.weight")):
        return "BF16"
    if name.endswith(("weight_scale_inv", "e_score_correction_bias", "mlp.gate.weight")):
        return "F32"
    return "F8_E4M3"


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\n".join(parts).encode()).digest()[:16], "big")


def _safetensors(tensors: list[str], total: int, seed: int) -> bytes:
    """A valid safetensors file of exactly `total` bytes holding `tensors` (random data, deterministic in seed)."""
    if total % 8:
        raise ValueError(f"shard_bytes must be a multiple of 8, got {total}")
    # Header room: the header with every number at its widest, rounded up to 8.
    widest = {n: {"dtype": _dtype(n), "shape": [total, 128], "data_offsets": [total, total]} for n in tensors}
    widest["__metadata__"] = {"format": "pt"}
    room = -(-len(json.dumps(widest, separators=(",", ":"))) // 8) * 8
    budget = total - 8 - room
    share = budget // len(tensors) // 8 * 8  # every tensor a multiple of 8 bytes: the data stays 8-aligned
    if share < 8:
        raise ValueError(f"shard_bytes {total} is too small for {len(tensors)} tensors")
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name in tensors:
        dtype = _dtype(name)
        count = share // DTYPE_BYTES[dtype]
        shape = [count // 128, 128] if count % 128 == 0 else [count]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + share]}
        offset += share
    text = json.dumps(header, separators=(",", ":")).encode()
    header_len = total - 8 - offset
    assert header_len >= len(text) and header_len % 8 == 0
    data = random.Random(seed).randbytes(offset)
    return header_len.to_bytes(8, "little") + text.ljust(header_len, b" ") + data


def checkpoint(
    repo: str, revision: str, shards: int = DEFAULT_SHARDS, shard_bytes: int = DEFAULT_SHARD_BYTES
) -> dict[str, bytes]:
    """The fake checkpoint of `repo` at `revision`: path -> content. Pure and deterministic."""
    names = _tensor_names()
    if not 1 <= shards <= len(names):
        raise ValueError(f"shards must be 1..{len(names)}, got {shards}")
    owner, _, name = repo.partition("/")
    files: dict[str, bytes] = {
        ".gitattributes": "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS).encode(),
        "README.md": (
            f"# {name} (stand-in)\n\nA deterministic fake checkpoint served by pdfleet's sandbox hub for {repo}"
            f" at revision {revision}. It has the real file layout and no real weights.\n"
        ).encode(),
        "config.json": _json(CONFIG),
        "generation_config.json": _json(
            {
                "_from_model_config": True,
                "bos_token_id": 0,
                "eos_token_id": 1,
                "do_sample": True,
                "temperature": 1.0,
                "top_p": 0.95,
                "transformers_version": "4.44.2",
            }
        ),
        # a real byte-level BPE tokenizer, DeepSeek-shaped (pdfleet/sandbox/benchdata.py): what `pdfleet bench`'s client
        # counts tokens with on the router's node
        **tokenizer_files(),
        "inference/config_671B_v3.2.json": _json(
            {
                "vocab_size": 129280,
                "dim": 7168,
                "inter_dim": 18432,
                "moe_inter_dim": 2048,
                "n_layers": 61,
                "n_dense_layers": 3,
                "n_heads": 128,
                "n_routed_experts": 256,
                "n_shared_experts": 1,
                "n_activated_experts": 8,
                "n_expert_groups": 8,
                "n_limited_groups": 4,
                "route_scale": 2.5,
                "score_func": "sigmoid",
                "q_lora_rank": 1536,
                "kv_lora_rank": 512,
                "qk_nope_head_dim": 128,
                "qk_rope_head_dim": 64,
                "v_head_dim": 128,
                "dtype": "fp8",
                "scale_fmt": "ue8m0",
                "index_n_heads": 64,
                "index_head_dim": 128,
                "index_topk": 2048,
            }
        ),
    }
    weight_map: dict[str, str] = {}
    total_size = 0
    per = len(names) / shards
    for k in range(shards):
        chunk = names[round(k * per) : round((k + 1) * per)]
        shard = shard_name(k + 1, shards)
        content = _safetensors(chunk, shard_bytes, _seed(repo, revision, shard))
        files[shard] = content
        total_size += len(content) - 8 - int.from_bytes(content[:8], "little")
        weight_map.update(dict.fromkeys(chunk, shard))
    files[INDEX] = _json({"metadata": {"total_size": total_size}, "weight_map": dict(sorted(weight_map.items()))})
    return dict(sorted(files.items()))


def git_blob_oid(content: bytes) -> str:
    """The git object id of a file (what the hub reports as `oid` for a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class Entry:
    path: str
    content: bytes
    oid: str  # git blob oid of what git stores: the file, or its LFS pointer
    sha256: str | None  # LFS files only
    pointer_size: int | None

    @property
    def size(self) -> int:
        return len(self.content)

    def sibling(self, blobs: bool) -> dict:
        """The file in a revision's `siblings`; with the hub's `?blobs=true`, its blob id, size and LFS data."""
        if not blobs:
            return {"rfilename": self.path}
        item = {"rfilename": self.path, "blobId": self.oid, "size": self.size}
        if self.sha256:
            item["lfs"] = {"sha256": self.sha256, "size": self.size, "pointerSize": self.pointer_size}
        return item

    def tree_item(self) -> dict:
        item = {"type": "file", "oid": self.oid, "size": self.size, "path": self.path}
        if self.sha256:
            item["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": self.pointer_size}
        return item


def entries_of(files: dict[str, bytes]) -> dict[str, Entry]:
    out = {}
    for path, content in files.items():
        if is_lfs(path):
            sha = hashlib.sha256(content).hexdigest()
            pointer = lfs_pointer(sha, len(content))
            out[path] = Entry(path, content, git_blob_oid(pointer), sha, len(pointer))
        else:
            out[path] = Entry(path, content, git_blob_oid(content), None, None)
    return out


class Hub:
    """What the server serves and how: repositories, checkpoint shape, token, log, knobs. Thread-safe."""

    def __init__(
        self,
        repos=DEFAULT_REPOS,
        token: str | None = None,
        log_path: Path | None = None,
        knobs_path: Path | None = None,
        shards: int = DEFAULT_SHARDS,
        shard_bytes: int = DEFAULT_SHARD_BYTES,
        page_size: int = DEFAULT_PAGE_SIZE,
        revision_shards: dict[str, int] | None = None,
    ):
        self.repos = tuple(repos)
        self.token = token
        self.log_path = Path(log_path) if log_path else None
        self.knobs_path = Path(knobs_path) if knobs_path else None
        self.shards = shards
        self.shard_bytes = shard_bytes
        self.page_size = page_size
        self.revision_shards = dict(revision_shards or {})
        self.secret = secrets.token_bytes(32)  # signs CDN URLs; new per process, like expiring URLs
        self.cdn_url = ""  # the CDN's origin (http://ADDRESS:PORT), set when its listener starts
        self._cache: OrderedDict[tuple[str, str], dict[str, Entry]] = OrderedDict()
        self._lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._knobs_lock = threading.Lock()

    def entries(self, repo: str, revision: str) -> dict[str, Entry]:
        key = (repo, revision)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            shards = self.revision_shards.get(revision, self.shards)
            entries = entries_of(checkpoint(repo, revision, shards, self.shard_bytes))
            self._cache[key] = entries
            while len(self._cache) > 4:
                self._cache.popitem(last=False)
            return entries

    # ----- CDN signatures -----

    def _signature(self, sha: str, repo: str, revision: str, file: str, expires: int) -> str:
        message = "\n".join((sha, repo, revision, file, str(expires))).encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def cdn_path(self, entry: Entry, repo: str, revision: str) -> str:
        expires = int(time.time()) + CDN_URL_LIFETIME
        query = urlencode(
            {
                "repo": repo,
                "revision": revision,
                "file": entry.path,
                "Expires": expires,
                "Signature": self._signature(entry.sha256 or "", repo, revision, entry.path, expires),
            }
        )
        return f"/cdn/repos/{entry.sha256}?{query}"

    def cdn_valid(self, sha: str, repo: str, revision: str, file: str, expires: str, signature: str) -> bool:
        if not expires.isdigit() or int(expires) < time.time():
            return False
        return hmac.compare_digest(self._signature(sha, repo, revision, file, int(expires)), signature)

    # ----- log and knobs -----

    def log(self, record: dict) -> None:
        if not self.log_path:
            return
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._log_lock, open(self.log_path, "a", encoding="utf-8") as out:
            out.write(line)

    def knobs(self) -> dict:
        if not self.knobs_path:
            return {}
        try:
            value = json.loads(self.knobs_path.read_text())
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def take(self, what: str, file: str) -> int | None:
        """The fault `what` ("truncate" or "error") for this content request, counting its budget down."""
        value_key, count_key = {
            "truncate": ("truncate_after_bytes", "truncate_count"),
            "error": ("error_status", "error_count"),
        }[what]
        with self._knobs_lock:
            knobs = self.knobs()
            value = knobs.get(value_key)
            if not isinstance(value, int) or isinstance(value, bool):
                return None
            if knobs.get("match") and not fnmatch.fnmatchcase(file, str(knobs["match"])):
                return None
            if count_key in knobs:
                count = knobs[count_key]
                if not isinstance(count, int) or count <= 0:
                    return None
                knobs[count_key] = count - 1
                tmp = self.knobs_path.with_name(self.knobs_path.name + ".tmp")
                tmp.write_text(json.dumps(knobs) + "\n")
                tmp.replace(self.knobs_path)
            return value

    def rate(self) -> float | None:
        rate = self.knobs().get("rate_bytes_per_s")
        return float(rate) if isinstance(rate, (int, float)) and rate > 0 else None


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(start, end inclusive) for a single bytes range; None: no (usable) Range header; "unsatisfiable"."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not match or (not match[1] and not match[2]):
        return None  # a malformed or multi-range header is ignored, as servers do: the whole file follows
    if not match[1]:  # suffix: the last N bytes
        length = int(match[2])
        if length == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - length), size - 1
    start = int(match[1])
    end = int(match[2]) if match[2] else size - 1
    if start >= size or end < start:
        return "unsatisfiable"
    return start, min(end, size - 1)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pdfleet-standin-hub/1"
    server: HubServer

    def log_message(self, format, *args):  # noqa: A002  (the request log replaces stderr lines)
        pass

    def do_GET(self):  # noqa: N802
        self._handle(head=False)

    def do_HEAD(self):  # noqa: N802
        self._handle(head=True)

    def _method_not_allowed(self):
        self.rec = self._record()
        try:
            self._error(405, None, "Method not allowed", head=False)
        finally:
            self._log_now()

    do_POST = do_PUT = do_DELETE = do_PATCH = _method_not_allowed  # noqa: N815

    # ----- plumbing -----

    def _record(self) -> dict:
        url = urlsplit(self.path)
        return {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "client": self.client_address[0],
            "method": self.command,
            "path": unquote(url.path),
            "kind": "other",
            "repo": None,
            "revision": None,
            "file": None,
            "range": self.headers.get("Range"),
            "status": None,
            "bytes": 0,
            "auth": "Authorization" in self.headers,
            "truncated": False,
        }

    def _handle(self, head: bool) -> None:
        self.rec = self._record()
        try:
            self._route(head)
        except (BrokenPipeError, ConnectionResetError):
            self.rec["error"] = "client closed the connection"
            self.close_connection = True
        finally:
            self._log_now()

    def _log_now(self) -> None:
        """Write this request's log line once. Called before the response's last byte goes out, so that a client
        holding a whole response finds its line in the log (tests count right after their downloads end)."""
        if getattr(self, "_logged", None) is not self.rec:
            self._logged = self.rec
            self.server.hub.log(self.rec)

    def _headers(self, status: int, headers: dict[str, str | int]) -> None:
        """Status line and headers, buffered: end_headers() sends them."""
        self.rec["status"] = status
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, str(value))

    def _write_last(self, data) -> None:
        """The response's last bytes: all but one, the log line, the last one."""
        if len(data) == 0:
            self._log_now()
            return
        self.wfile.write(data[:-1])
        self.rec["bytes"] += len(data)
        self._log_now()
        self.wfile.write(data[-1:])

    def _send(self, status: int, body: bytes, headers: dict, head: bool) -> None:
        self._headers(status, {**headers, "Content-Length": len(body)})
        if head or not body:
            self._log_now()
            self.end_headers()
            return
        self.end_headers()
        self._write_last(body)

    def _error(self, status: int, code: str | None, message: str, head: bool, extra: dict | None = None) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, _json({"error": message}), headers, head)

    def _json_response(self, value, head: bool, extra: dict | None = None) -> None:
        self._send(200, _json(value), {"Content-Type": "application/json; charset=utf-8", **(extra or {})}, head)

    def _base_url(self) -> str:
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        return f"http://{host}"

    # ----- routes -----

    def _route(self, head: bool) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        query = parse_qs(url.query)
        if self.server.cdn:
            if parts[:2] == ["cdn", "repos"] and len(parts) == 3:
                self.rec["kind"] = "cdn"
                self._cdn(parts[2], query, head)
            else:
                self._error(404, None, "NoSuchKey", head)
            return
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
            self.rec["kind"] = "api"
            repo, revision = f"{parts[2]}/{parts[3]}", parts[5]
            if self._check(repo, revision, head):
                if parts[4] == "revision" and len(parts) == 6:
                    self._revision(repo, revision, query, head)
                elif parts[4] == "tree":
                    self._tree(repo, revision, "/".join(p for p in parts[6:] if p), query, head)
                else:
                    self._error(404, None, "Not Found", head)
        elif len(parts) >= 5 and parts[2] == "resolve":
            self.rec["kind"] = "resolve"
            repo, revision, file = f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:])
            self.rec["file"] = file
            if self._check(repo, revision, head):
                self._resolve(repo, revision, file, head)
        else:
            self._error(404, None, "Sorry, we can't find the page you are looking for.", head)

    def _check(self, repo: str, revision: str, head: bool) -> bool:
        """Token, repository and revision, in the hub's order; answers the error and returns False."""
        self.rec["repo"], self.rec["revision"] = repo, revision
        hub = self.server.hub
        if hub.token is not None:
            given = self.headers.get("Authorization")
            if given is None:
                self._error(401, None, "Access to this resource requires a token (Authorization: Bearer).", head)
                return False
            if not hmac.compare_digest(given.encode(), f"Bearer {hub.token}".encode()):
                self._error(401, None, "Invalid credentials in Authorization header", head)
                return False
        if repo not in hub.repos:
            self._error(404, "RepoNotFound", "Repository not found", head)
            return False
        if not REVISION_RE.match(revision):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
            return False
        return True

    def _revision(self, repo: str, revision: str, query: dict, head: bool) -> None:
        entries = self.server.hub.entries(repo, revision)
        owner = repo.split("/")[0]
        blobs = query.get("blobs", ["false"])[0].lower() in ("1", "true")
        self._json_response(
            {
                "_id": hashlib.sha1(repo.encode()).hexdigest()[:24],
                "id": repo,
                "modelId": repo,
                "author": owner,
                "sha": revision,
                "private": False,
                "gated": False,
                "disabled": False,
                "library_name": "transformers",
                "pipeline_tag": "text-generation",
                "tags": ["transformers", "safetensors", "deepseek_v32", "text-generation", "fp8"],
                "config": {"architectures": CONFIG["architectures"], "model_type": CONFIG["model_type"]},
                "siblings": [entry.sibling(blobs) for entry in entries.values()],
            },
            head,
        )

    def _tree(self, repo: str, revision: str, under: str, query: dict, head: bool) -> None:
        entries = self.server.hub.entries(repo, revision)
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = f"{under}/" if under else ""
        if under and under not in {"/".join(p.split("/")[: i + 1]) for p in entries for i in range(p.count("/"))}:
            self._error(404, "EntryNotFound", f"{under} does not exist on {revision}", head)
            return
        items: dict[str, dict] = {}
        for path, entry in entries.items():
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            if recursive or "/" not in rest:
                for i in range(rest.count("/") if recursive else 0):  # directories on the way, as the hub lists
                    directory = prefix + "/".join(rest.split("/")[: i + 1])
                    items.setdefault(directory, _directory(directory, entries))
                items[path] = entry.tree_item()
            else:
                directory = prefix + rest.split("/")[0]
                items.setdefault(directory, _directory(directory, entries))
        listing = [items[k] for k in sorted(items)]
        try:
            offset = int(json.loads(base64.urlsafe_b64decode(query.get("cursor", ["e30="])[0]))["offset"])
        except (ValueError, KeyError, TypeError):
            offset = 0
        page_size = self.server.hub.page_size
        page = listing[offset : offset + page_size]
        extra = {}
        if offset + page_size < len(listing):
            cursor = base64.urlsafe_b64encode(json.dumps({"offset": offset + page_size}).encode()).decode()
            params = {k: v[0] for k, v in query.items() if k != "cursor"}
            params["cursor"] = cursor
            path = quote(urlsplit(self.path).path, safe="/")
            extra["Link"] = f'<{self._base_url()}{path}?{urlencode(params)}>; rel="next"'
        self._json_response(page, head, extra)

    def _resolve(self, repo: str, revision: str, file: str, head: bool) -> None:
        entry = self.server.hub.entries(repo, revision).get(file)
        if entry is None:
            self._error(404, "EntryNotFound", f"{file} does not exist on {revision}", head)
            return
        if self._fault(entry, head):
            return
        common = {"X-Repo-Commit": revision, "Accept-Ranges": "bytes"}
        if entry.sha256:
            location = self.server.hub.cdn_url + self.server.hub.cdn_path(entry, repo, revision)
            body = f"Found. Redirecting to {location}".encode()
            headers = {
                **common,
                "Location": location,
                "ETag": f'"{entry.oid}"',
                "X-Linked-Etag": f'"{entry.sha256}"',
                "X-Linked-Size": entry.size,
                "Content-Type": "text/plain; charset=utf-8",
            }
            self._send(302, body, headers, head)
            return
        self._content(entry, {**common, "ETag": f'"{entry.oid}"'}, head)

    def _cdn(self, sha: str, query: dict, head: bool) -> None:
        def one(key: str) -> str:
            return query.get(key, [""])[0]

        repo, revision, file = one("repo"), one("revision"), one("file")
        self.rec.update(repo=repo or None, revision=revision or None, file=file or None)
        hub = self.server.hub
        if not SHA256_RE.match(sha) or not hub.cdn_valid(sha, repo, revision, file, one("Expires"), one("Signature")):
            self._error(403, None, "AccessDenied: the signature is wrong or expired", head)
            return
        entry = hub.entries(repo, revision).get(file) if repo in hub.repos else None
        if entry is None or entry.sha256 != sha:
            self._error(404, None, "NoSuchKey", head)
            return
        if self._fault(entry, head):
            return
        self._content(entry, {"ETag": f'"{sha}"', "Accept-Ranges": "bytes"}, head)

    def _fault(self, entry: Entry, head: bool) -> bool:
        """The error knob: answers the injected status and returns True when it applies to this request."""
        status = self.server.hub.take("error", entry.path)
        if status is None:
            return False
        self._error(status, None, f"injected fault: {status}", head)
        return True

    def _content(self, entry: Entry, headers: dict, head: bool) -> None:
        hub = self.server.hub
        size = entry.size
        wanted = _parse_range(self.headers.get("Range"), size)
        content_type = "application/json" if entry.path.endswith(".json") else "application/octet-stream"
        if entry.path.endswith(".md"):
            content_type = "text/markdown; charset=utf-8"
        headers = {**headers, "Content-Type": content_type}
        if wanted == "unsatisfiable":
            self._send(416, b"", {**headers, "Content-Range": f"bytes */{size}"}, head)
            return
        if wanted is None:
            status, start, end = 200, 0, size - 1
        else:
            status, (start, end) = 206, wanted
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1
        self._headers(status, {**headers, "Content-Length": length})
        cut = None if head else hub.take("truncate", entry.path)
        if head or length == 0:
            self._log_now()
            self.end_headers()
            return
        self.end_headers()
        rate = hub.rate()
        body = memoryview(entry.content)[start : end + 1]
        limit = length if cut is None else min(cut, length)
        began = time.monotonic()
        while self.rec["bytes"] < limit:
            sent = self.rec["bytes"]
            piece = body[sent : min(limit, sent + CHUNK)]
            if sent + len(piece) == length:
                self._write_last(piece)
            else:
                self.wfile.write(piece)
                self.rec["bytes"] += len(piece)
            if rate:
                ahead = self.rec["bytes"] / rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)
        if limit < length:
            self.rec["truncated"] = True
            self._log_now()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)


def _directory(path: str, entries: dict[str, Entry]) -> dict:
    inside = "".join(e.oid for p, e in entries.items() if p.startswith(path + "/"))
    return {"type": "directory", "oid": hashlib.sha1(inside.encode()).hexdigest(), "size": 0, "path": path}


class HubServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], hub: Hub, cdn: bool = False):
        self.hub = hub
        self.cdn = cdn  # the CDN's listener: answers /cdn/ only
        super().__init__(address, _Handler)
        if cdn:
            hub.cdn_url = self.url

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _Pair:
    """The hub and its CDN, each serving in a thread; ended together by shutdown() and server_close()."""

    def __init__(self, hub_server: HubServer, cdn_server: HubServer):
        self.hub_server, self.cdn_server = hub_server, cdn_server

    def __getattr__(self, name):
        return getattr(self.hub_server, name)

    def shutdown(self) -> None:
        self.hub_server.shutdown()
        self.cdn_server.shutdown()

    def server_close(self) -> None:
        self.hub_server.server_close()
        self.cdn_server.server_close()


def start_in_thread(hub: Hub, host: str = "127.0.0.1", port: int = 0, cdn_port: int = 0):
    """For tests: the hub and its CDN (another port, so another origin) running in daemon threads. The result acts
    as the hub's server (url, server_address, hub); `server.shutdown(); server.server_close()` ends both."""
    cdn_server = HubServer((host, cdn_port), hub, cdn=True)
    hub_server = HubServer((host, port), hub)
    for name, server in (("standin-hub-cdn", cdn_server), ("standin-hub", hub_server)):
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True).start()
    return _Pair(hub_server, cdn_server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pdfleet.sandbox.hub", description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, metavar="ADDRESS:PORT", help="where to listen (port 0: any)")
    parser.add_argument("--cdn-port", type=int, help="the CDN's port on the same address (default: the port + 1)")
    parser.add_argument("--token-file", type=Path, help="require `Authorization: Bearer <its content>`")
    parser.add_argument("--log", type=Path, help="append one JSON line per request here")
    parser.add_argument("--knobs", type=Path, help="fault knobs, a JSON object read at every request")
    parser.add_argument("--repo", action="append", dest="repos", help=f"serve this repository ({DEFAULT_REPOS[0]})")
    parser.add_argument("--shards", type=int, default=DEFAULT_SHARDS)
    parser.add_argument("--shard-bytes", type=int, default=DEFAULT_SHARD_BYTES)
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE, help="tree entries per page")
    parser.add_argument(
        "--revision-shards", action="append", default=[], metavar="REV=N", help="another shard count for REV"
    )
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"--listen wants ADDRESS:PORT, got {args.listen!r}")
    revision_shards = {}
    for item in args.revision_shards:
        rev, _, count = item.partition("=")
        if not REVISION_RE.match(rev) or not count.isdigit():
            parser.error(f"--revision-shards wants REV=N with a 40-hex REV, got {item!r}")
        revision_shards[rev] = int(count)
    token = None
    if args.token_file:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            parser.error(f"cannot read the token file {args.token_file}: {exc.strerror}")
        if not token:
            parser.error(f"the token file {args.token_file} is empty")
    try:
        checkpoint(DEFAULT_REPOS[0], "0" * 40, args.shards, args.shard_bytes)  # refuse a shape it cannot make
    except ValueError as exc:
        parser.error(str(exc))
    hub = Hub(
        repos=args.repos or DEFAULT_REPOS,
        token=token,
        log_path=args.log,
        knobs_path=args.knobs,
        shards=args.shards,
        shard_bytes=args.shard_bytes,
        page_size=args.page_size,
        revision_shards=revision_shards,
    )
    address = host.strip("[]")
    cdn_port = args.cdn_port if args.cdn_port is not None else (int(port) + 1 if int(port) else 0)
    cdn = HubServer((address, cdn_port), hub, cdn=True)
    server = HubServer((address, int(port)), hub)
    threading.Thread(target=cdn.serve_forever, name="standin-hub-cdn", daemon=True).start()
    print(f"standin hub listening on {server.url}, its CDN on {cdn.url} (repos: {', '.join(hub.repos)})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        cdn.shutdown()
        cdn.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
