"""The sandbox's stand-in Hugging Face hub (pdfleet/sandbox/hub.py), in-process on 127.0.0.1 with a free port.

The checkpoint is checked as a safetensors reader and git would see it (header layout, offsets, index, blob ids
from `git hash-object` when git is here); the HTTP side as a hub client meets it: API shapes, pagination through
Link headers, ranges, the redirect to the CDN, 401/403/404 with the hub's error codes, the request log and the
fault knobs. The CLI is started once as a subprocess.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pdfleet.sandbox.hub import Hub, checkpoint, start_in_thread

REPO = "deepseek-ai/DeepSeek-V3.2"
REV = "a7e62ac04ecb2c0a54d736dc46601c5606cf10a6"
REV2 = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "hf_TestTokenNotARealOne0123456789"
SHARD_BYTES = 64 * 1024
DTYPE_BYTES = {"BF16": 2, "F32": 4, "F8_E4M3": 1}


@pytest.fixture
def hub(tmp_path):
    knobs = tmp_path / "knobs.json"
    instance = Hub(
        token=TOKEN,
        log_path=tmp_path / "requests.jsonl",
        knobs_path=knobs,
        shard_bytes=SHARD_BYTES,
        page_size=3,
    )
    server = start_in_thread(instance)
    yield server
    server.shutdown()
    server.server_close()


def request(server, method: str, target: str, headers: dict | None = None, auth: bool = True):
    """One request on a fresh connection; no redirect following. Returns (status, headers, body)."""
    split = urlsplit(target)
    host, port = (split.hostname, split.port) if split.scheme else server.server_address[:2]
    path = f"{split.path}?{split.query}" if split.query else split.path
    connection = http.client.HTTPConnection(host, port, timeout=10)
    all_headers = dict(headers or {})
    if auth:
        all_headers["Authorization"] = f"Bearer {TOKEN}"
    connection.request(method, path, headers=all_headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, response.headers, body


def log_of(server) -> list[dict]:
    return [json.loads(line) for line in server.hub.log_path.read_text().splitlines()]


def expected_git_oid(content: bytes, tmp_path: Path) -> str:
    """The blob id as git computes it (git itself when installed)."""
    if shutil.which("git"):
        blob = tmp_path / "blob"
        blob.write_bytes(content)
        return subprocess.run(
            ["git", "hash-object", str(blob)], capture_output=True, text=True, check=True
        ).stdout.strip()
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


# ----- the checkpoint -----


def test_checkpoint_is_a_valid_sharded_safetensors_checkpoint():
    files = checkpoint(REPO, REV, shards=8, shard_bytes=SHARD_BYTES)
    shards = [f"model-{k:05d}-of-00008.safetensors" for k in range(1, 9)]
    assert set(shards) <= set(files)
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "README.md"):
        assert name in files
    index = json.loads(files["model.safetensors.index.json"])
    assert set(index["weight_map"].values()) == set(shards)
    data_bytes = 0
    for shard in shards:
        content = files[shard]
        assert len(content) == SHARD_BYTES
        (header_len,) = struct.unpack("<Q", content[:8])
        assert header_len % 8 == 0
        header = json.loads(content[8 : 8 + header_len])  # trailing spaces are allowed by the format
        assert header.pop("__metadata__") == {"format": "pt"}
        ends = 0
        for name, tensor in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
            begin, end = tensor["data_offsets"]
            assert begin == ends, f"{shard}: {name} does not follow the previous tensor"
            elements = 1
            for dim in tensor["shape"]:
                elements *= dim
            assert elements * DTYPE_BYTES[tensor["dtype"]] == end - begin
            assert index["weight_map"][name] == shard
            ends = end
        assert 8 + header_len + ends == len(content)  # the data runs to the end of the file
        data_bytes += ends
        assert sum(1 for s in index["weight_map"].values() if s == shard) == len(header)
    assert index["metadata"]["total_size"] == data_bytes

    config = json.loads(files["config.json"])
    assert config["architectures"] == ["DeepseekV32ForCausalLM"]
    assert config["model_type"] == "deepseek_v32"
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (61, 7168, 129280)
    assert config["max_position_embeddings"] == 163840
    assert config["torch_dtype"] == "bfloat16"
    assert config["quantization_config"]["quant_method"] == "fp8"
    assert config["quantization_config"]["weight_block_size"] == [128, 128]


def test_checkpoint_content_follows_repo_and_revision():
    a = checkpoint(REPO, REV, shards=4, shard_bytes=SHARD_BYTES)
    again = checkpoint(REPO, REV, shards=4, shard_bytes=SHARD_BYTES)
    b = checkpoint(REPO, REV2, shards=4, shard_bytes=SHARD_BYTES)
    assert a == again  # deterministic: a download can be checked against a fresh computation
    assert a.keys() == b.keys()
    shard = "model-00001-of-00004.safetensors"
    assert a[shard] != b[shard] and len(a[shard]) == len(b[shard])  # same size, other content
    assert a["config.json"] == b["config.json"] and a["tokenizer.json"] == b["tokenizer.json"]
    assert a["README.md"] != b["README.md"]
    assert checkpoint("other/model", REV, shards=4, shard_bytes=SHARD_BYTES)[shard] != a[shard]
    with pytest.raises(ValueError):
        checkpoint(REPO, REV, shards=4, shard_bytes=4096)  # too small for the tensors


# ----- the API -----


def test_revision_info(hub):
    status, headers, body = request(hub, "GET", f"/api/models/{REPO}/revision/{REV}")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    info = json.loads(body)
    assert info["id"] == REPO and info["sha"] == REV
    files = checkpoint(REPO, REV, shard_bytes=SHARD_BYTES)
    assert sorted(s["rfilename"] for s in info["siblings"]) == sorted(files)


def list_tree(server, target: str) -> tuple[list[dict], int]:
    """Every entry of a tree listing, following Link rel="next" as huggingface_hub does; (entries, pages)."""
    items, pages = [], 0
    while target:
        status, headers, body = request(server, "GET", target)
        assert status == 200
        page = json.loads(body)
        assert len(page) <= 3
        items += page
        pages += 1
        link = headers.get("Link")
        if link:
            assert link.endswith('>; rel="next"') and link.startswith(f"<http://127.0.0.1:{server.server_address[1]}/")
            target = link[1 : link.index(">")]
        else:
            target = None
    return items, pages


def test_tree_pages_follow_link_headers(hub, tmp_path):
    files = checkpoint(REPO, REV, shard_bytes=SHARD_BYTES)
    items, pages = list_tree(hub, f"/api/models/{REPO}/tree/{REV}?recursive=true")
    file_items = [i for i in items if i["type"] == "file"]
    directories = [i for i in items if i["type"] == "directory"]
    assert [d["path"] for d in directories] == ["inference"]
    assert pages == -(-len(items) // 3) and pages > 1
    assert sorted(i["path"] for i in file_items) == sorted(files)
    for item in file_items:
        content = files[item["path"]]
        assert item["size"] == len(content)
        if item["path"].endswith(".safetensors"):
            assert item["lfs"]["oid"] == hashlib.sha256(content).hexdigest()
            assert item["lfs"]["size"] == len(content)
            pointer = (
                f"version https://git-lfs.github.com/spec/v1\noid sha256:{item['lfs']['oid']}\nsize {len(content)}\n"
            ).encode()
            assert item["lfs"]["pointerSize"] == len(pointer)
            assert item["oid"] == expected_git_oid(pointer, tmp_path)
        else:
            assert "lfs" not in item
            assert item["oid"] == expected_git_oid(content, tmp_path)

    top, _ = list_tree(hub, f"/api/models/{REPO}/tree/{REV}")  # not recursive: the folder, not its files
    assert next(i for i in top if i["path"] == "inference")["type"] == "directory"
    assert not any(i["path"].startswith("inference/") for i in top)
    assert len(top) == len(files) - 1 + 1
    inside, _ = list_tree(hub, f"/api/models/{REPO}/tree/{REV}/inference")
    assert [i["path"] for i in inside] == ["inference/config_671B_v3.2.json"]


def test_errors_carry_the_hubs_codes(hub):
    cases = [
        (f"/api/models/nobody/nothing/tree/{REV}", 404, "RepoNotFound"),
        (f"/api/models/{REPO}/tree/main", 404, "RevisionNotFound"),
        (f"/api/models/{REPO}/revision/{REV[:12]}", 404, "RevisionNotFound"),
        (f"/{REPO}/resolve/{REV}/no-such-file.json", 404, "EntryNotFound"),
        (f"/nobody/nothing/resolve/{REV}/config.json", 404, "RepoNotFound"),
    ]
    for target, status, code in cases:
        got, headers, body = request(hub, "GET", target)
        assert (got, headers.get("X-Error-Code")) == (status, code), target
        assert "error" in json.loads(body)
    for target in (f"/api/models/{REPO}/tree/{REV}", f"/{REPO}/resolve/{REV}/config.json"):
        assert request(hub, "GET", target, auth=False)[0] == 401
        assert request(hub, "GET", target, {"Authorization": "Bearer hf_wrong"}, auth=False)[0] == 401
        assert request(hub, "GET", target, {"Authorization": TOKEN}, auth=False)[0] == 401  # no "Bearer"
    assert TOKEN not in hub.hub.log_path.read_text()


def test_resolve_regular_file_with_ranges(hub, tmp_path):
    content = checkpoint(REPO, REV, shard_bytes=SHARD_BYTES)["config.json"]
    target = f"/{REPO}/resolve/{REV}/config.json"
    status, headers, body = request(hub, "GET", target)
    assert status == 200 and body == content
    assert headers["X-Repo-Commit"] == REV
    assert int(headers["Content-Length"]) == len(content)
    assert headers["ETag"] == '"' + expected_git_oid(content, tmp_path) + '"'

    status, headers, body = request(hub, "HEAD", target)
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == len(content)

    size = len(content)
    for spec, start, end in (("bytes=100-", 100, size - 1), ("bytes=10-19", 10, 19), ("bytes=-5", size - 5, size - 1)):
        status, headers, body = request(hub, "GET", target, {"Range": spec})
        assert status == 206, spec
        assert headers["Content-Range"] == f"bytes {start}-{end}/{size}"
        assert body == content[start : end + 1]
    status, headers, _ = request(hub, "GET", target, {"Range": f"bytes={size}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"


def test_lfs_files_redirect_to_a_signed_cdn_url(hub):
    shard = "model-00003-of-00008.safetensors"
    content = checkpoint(REPO, REV, shard_bytes=SHARD_BYTES)[shard]
    sha = hashlib.sha256(content).hexdigest()
    status, headers, _ = request(hub, "GET", f"/{REPO}/resolve/{REV}/{shard}", {"Range": "bytes=0-"})
    assert status == 302
    assert headers["X-Linked-Etag"] == f'"{sha}"' and int(headers["X-Linked-Size"]) == len(content)
    assert headers["X-Repo-Commit"] == REV
    location = headers["Location"]
    assert urlsplit(location).path == f"/cdn/repos/{sha}"
    # Another origin than the hub's, as the real hub's CDN: a hub client stops at this 302 and reads its headers.
    assert urlsplit(location).netloc != "{}:{}".format(*hub.server_address[:2])
    assert request(hub, "GET", urlsplit(location).path + "?" + urlsplit(location).query)[0] == 404  # not on the hub

    status, headers, body = request(hub, "GET", location, auth=False)  # the CDN needs no token
    assert status == 200 and body == content and headers["ETag"] == f'"{sha}"'
    status, headers, body = request(hub, "GET", location, {"Range": "bytes=1000-"}, auth=False)
    assert status == 206 and body == content[1000:]

    forged = location.replace("Signature=", "Signature=0")
    assert request(hub, "GET", forged, auth=False)[0] == 403
    other = location.replace(shard, "model-00004-of-00008.safetensors")  # the signature covers the file
    assert request(hub, "GET", other, auth=False)[0] == 403

    log = log_of(hub)
    cdn = [r for r in log if r["kind"] == "cdn"]
    assert [r["status"] for r in cdn] == [200, 206, 403, 403]
    assert all(not r["auth"] for r in cdn)
    assert cdn[0]["bytes"] == len(content) and cdn[1]["range"] == "bytes=1000-"
    assert cdn[0]["file"] == shard and cdn[0]["revision"] == REV
    resolve = [r for r in log if r["kind"] == "resolve"]
    assert resolve[0]["status"] == 302 and resolve[0]["auth"] and resolve[0]["client"] == "127.0.0.1"


def test_truncate_and_error_knobs(hub):
    knobs = hub.hub.knobs_path
    shard = "model-00001-of-00008.safetensors"
    content = checkpoint(REPO, REV, shard_bytes=SHARD_BYTES)[shard]
    knobs.write_text(json.dumps({"truncate_after_bytes": 1000, "truncate_count": 1, "match": "*.safetensors"}))
    _, headers, _ = request(hub, "GET", f"/{REPO}/resolve/{REV}/{shard}")
    location = headers["Location"]

    cdn = urlsplit(location)
    connection = http.client.HTTPConnection(cdn.hostname, cdn.port, timeout=10)
    connection.request("GET", f"{cdn.path}?{cdn.query}")
    response = connection.getresponse()
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    connection.close()
    assert cut.value.partial == content[:1000]
    assert json.loads(knobs.read_text())["truncate_count"] == 0  # spent
    assert request(hub, "GET", location, auth=False)[2] == content  # whole again
    assert request(hub, "GET", f"/{REPO}/resolve/{REV}/config.json")[0] == 200  # "match" spares other files

    knobs.write_text(json.dumps({"error_status": 503, "error_count": 2}))
    assert request(hub, "GET", location, auth=False)[0] == 503
    assert request(hub, "GET", f"/{REPO}/resolve/{REV}/config.json")[0] == 503
    assert request(hub, "GET", location, auth=False)[0] == 200
    knobs.write_text("not json")  # an unreadable knobs file means no faults
    assert request(hub, "GET", location, auth=False)[0] == 200

    cdn = [
        (r["status"], r["bytes"] if r["status"] == 200 else "-", r["truncated"])
        for r in log_of(hub)
        if r["kind"] == "cdn"
    ]
    whole = (200, len(content), False)
    assert sorted(cdn, key=str) == sorted([(200, 1000, True), whole, (503, "-", False), whole, whole], key=str)


def test_cli_serves_with_a_token_file(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    log = tmp_path / "log.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "pdfleet.sandbox.hub", "--listen", "127.0.0.1:0", "--token-file", str(token_file),
         "--log", str(log), "--shards", "4", "--shard-bytes", str(SHARD_BYTES)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        assert line.startswith("standin hub listening on http://127.0.0.1:"), line
        port = int(line.split()[4].rstrip(",").rsplit(":", 1)[1])
        assert "its CDN on http://127.0.0.1:" in line
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", f"/api/models/{REPO}/revision/{REV}", headers={"Authorization": f"Bearer {TOKEN}"})
        info = json.loads(connection.getresponse().read())
        assert "model-00004-of-00004.safetensors" in [s["rfilename"] for s in info["siblings"]]
        connection.request("GET", f"/api/models/{REPO}/revision/{REV}")
        refused = connection.getresponse()
        assert refused.status == 401 and json.loads(refused.read())["error"]
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert [json.loads(x)["status"] for x in log.read_text().splitlines()] == [200, 401]


# ----- the real Hugging Face client -----


@pytest.fixture
def hf_client(tmp_path, monkeypatch):
    """huggingface_hub (the real client, pinned in the dev extras) with its cache and config under tmp_path."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return pytest.importorskip("huggingface_hub")


def test_the_real_client_downloads_a_snapshot(hub, hf_client, tmp_path):
    target = tmp_path / "snapshot"
    path = hf_client.snapshot_download(
        REPO, revision=REV, endpoint=hub.url, token=TOKEN, local_dir=target, max_workers=4
    )
    expected = checkpoint(REPO, REV, shard_bytes=SHARD_BYTES)
    got = {p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    got = {name: data for name, data in got.items() if not name.startswith(".cache/")}
    assert Path(path) == target
    assert sorted(got) == sorted(expected) and len(expected) == 16
    assert all(got[name] == data for name, data in expected.items())
    log = log_of(hub)
    shards = [name for name in expected if name.endswith(".safetensors")]
    assert sorted(r["file"] for r in log if r["kind"] == "cdn" and r["method"] == "GET") == sorted(shards)
    # The token went to the hub only, never to the CDN.
    assert all(not r["auth"] for r in log if r["kind"] == "cdn")


def test_the_real_client_reads_file_metadata(hub, hf_client):
    api = hf_client.HfApi(endpoint=hub.url, token=TOKEN)
    info = api.model_info(REPO, revision=REV, files_metadata=True)
    expected = checkpoint(REPO, REV, shard_bytes=SHARD_BYTES)
    assert info.sha == REV
    sizes = {sibling.rfilename: sibling.size for sibling in info.siblings}
    assert sizes == {name: len(data) for name, data in expected.items()}
    shard = "model-00002-of-00008.safetensors"
    lfs = next(s.lfs for s in info.siblings if s.rfilename == shard)
    assert lfs.sha256 == hashlib.sha256(expected[shard]).hexdigest() and lfs.size == len(expected[shard])
    url = hf_client.hf_hub_url(REPO, shard, revision=REV, endpoint=hub.url)
    meta = hf_client.get_hf_file_metadata(url, token=TOKEN)
    assert meta.commit_hash == REV and meta.size == len(expected[shard])
    assert meta.etag == hashlib.sha256(expected[shard]).hexdigest()
