"""API keys (pdfleet/apikeys.py, docs/security.md): read like the hub token with clear errors; enforced by the
sglang stand-in exactly as by the real SGLang middleware of both versions; the real smg router in front of keyed
stand-in engines; the health gate and the membership agent send the key; and no output of pdfleet (rendered
files, `pdfleet plan`, a dry run's operations and commands, the golden files) ever holds a key."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from pdfleet import apikeys
from pdfleet.apikeys import ApiKeyError, read_api_keys
from pdfleet.cli import main as cli
from pdfleet.inventory import load
from pdfleet.onhost import router_members
from pdfleet.sandbox import wheels
from pdfleet.serving import plan
from roles import health
from roles.layers import SERVING_LAYER
from tests.conftest import TEST_KEY
from tests.fakehosts import converge
from tests.test_standin_sglang import (
    LOOPBACK,
    PARSERS,
    clean_env,
    free_port,
    http,
    replace_values,
    start,
    start_router,
    stop,
    wait_http,
)
from tests.test_standin_sglang import standin as standin  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parent.parent
PROD = ROOT / "inventories/prod.yaml"
KEY = "k" * 8 + "-0123456789abcdef"


def cluster_with(tmp_path, **security):
    cluster = load(PROD)
    moved = dataclasses.replace(cluster, source=str(tmp_path / "prod.yaml"))
    return dataclasses.replace(moved, security=dataclasses.replace(cluster.security, **security))


def key_file(tmp_path, name: str, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return path


# ---------------------------------------------------------------------------------------------------------------
# reading the keys


def test_keys_from_the_environment(tmp_path):
    keys = read_api_keys(cluster_with(tmp_path), {"PDFLEET_CLIENT_KEYS": f" {KEY} ", "PDFLEET_ENGINE_KEY": KEY})
    assert (keys.client, keys.engine) == (KEY, KEY)
    assert KEY not in repr(keys)
    assert read_api_keys(cluster_with(tmp_path, api_keys=False), {}) is None


def test_keys_from_root_only_files_relative_to_the_inventory(tmp_path):
    key_file(tmp_path, "clients", f"\n{KEY}\n")
    key_file(tmp_path, "engine", f"{KEY}\n")
    cluster = cluster_with(tmp_path, client_keys_file="clients", engine_key_file="engine")
    keys = read_api_keys(cluster, {"PDFLEET_CLIENT_KEYS": "ignored-when-a-file-is-named"})
    assert (keys.client, keys.engine) == (KEY, KEY)


@pytest.mark.parametrize(
    ("files", "environ", "message"),
    [
        (
            {"clients": (KEY, 0o644)},
            {},
            "field 'client_keys_file': found {tmp}/clients with mode 0644, expected a file",
        ),
        ({"clients": ("\n \n", 0o600)}, {}, "found an empty file {tmp}/clients, expected one key per line"),
        (
            {},
            {"PDFLEET_ENGINE_KEY": KEY},
            "environment variable PDFLEET_CLIENT_KEYS (security: client_keys_env): found",
        ),
        ({"clients": (f"{KEY}\n{KEY}x", 0o600)}, {}, "found 2 keys, expected exactly one: smg 1.13.0 forwards"),
        ({}, {"PDFLEET_CLIENT_KEYS": KEY}, "environment variable PDFLEET_ENGINE_KEY (security: engine_key_env): found"),
        ({}, {"PDFLEET_CLIENT_KEYS": KEY, "PDFLEET_ENGINE_KEY": KEY + "x"}, "found a key different from the client"),
        ({}, {"PDFLEET_CLIENT_KEYS": "short", "PDFLEET_ENGINE_KEY": "short"}, "found a key of 5 characters"),
    ],
)
def test_unusable_keys_are_refused_naming_source_field_found_and_expected(tmp_path, files, environ, message):
    for name, (text, mode) in files.items():
        key_file(tmp_path, name, text, mode)
    cluster = cluster_with(tmp_path, client_keys_file="clients" if "clients" in files else None)
    with pytest.raises(ApiKeyError) as caught:
        read_api_keys(cluster, environ)
    assert message.format(tmp=tmp_path) in str(caught.value)
    assert KEY not in str(caught.value)


# ---------------------------------------------------------------------------------------------------------------
# the stand-in engine against the real SGLang middleware

CASES = [
    ("GET", "/health", None),
    ("GET", "/health_generate", None),
    ("GET", "/metrics", None),
    ("GET", "/ready", None),
    ("OPTIONS", "/generate", None),
    ("POST", "/generate", None),
    ("POST", "/generate", f"Bearer {KEY}"),
    ("POST", "/generate", f"bearer {KEY}"),
    ("POST", "/generate", "Bearer wrong-key-0123456789"),
    ("POST", "/generate", KEY),
    ("POST", "/pause_generation", None),
    ("POST", "/abort_request", None),
    ("GET", "/flush_cache", None),
    ("GET", "/no_such_path", None),
    ("GET", "/v1/models", f"Bearer {KEY}"),
]

# Runs in the parser environment: the real middleware of each wheel on a FastAPI app, asked over ASGI directly.
REAL = r"""
import ast, asyncio, importlib.util, json, sys
from fastapi import FastAPI
from fastapi.responses import ORJSONResponse
version, root, key, cases = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
app = FastAPI()
if version == "0.5.23":
    spec = importlib.util.spec_from_file_location("auth", f"{root}/sglang/srt/utils/auth.py")
    auth = sys.modules["auth"] = importlib.util.module_from_spec(spec); spec.loader.exec_module(auth)
    admin = auth.auth_level(auth.AuthLevel.ADMIN_OPTIONAL)
else:
    tree = ast.parse(open(f"{root}/sglang/srt/utils/common.py").read())
    [fn] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "add_api_key_middleware"]
    space = {"ORJSONResponse": ORJSONResponse}
    exec(compile(ast.Module([fn], []), "common.py", "exec"), space)
    admin = lambda f: f
async def ok():
    return {"ok": True}
for path in ("/health", "/health_generate", "/metrics", "/ready", "/v1/models"):
    app.get(path)(ok)
for path in ("/generate", "/pause_generation", "/abort_request"):
    app.post(path)(ok)
app.api_route("/flush_cache", methods=["GET", "POST"])(admin(ok))
if version == "0.5.23":
    auth.add_api_key_middleware(app, api_key=key, admin_api_key=None)
else:
    space["add_api_key_middleware"](app, key)
async def ask(method, path, header):
    sent = []
    headers = [(b"authorization", header.encode())] if header else []
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": headers, "http_version": "1.1", "scheme": "http", "server": ("t", 80), "client": ("c", 1),
             "root_path": "", "app": app}
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        sent.append(message)
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return [status, body.decode()]
print(json.dumps([asyncio.run(ask(*case)) for case in cases]))
"""


def real_middleware(version: str) -> list[list]:
    python, root = PARSERS / "venv/bin/python", PARSERS / f"sglang-{version}"
    if not python.exists() or not root.exists():
        message = f"{root} is missing: run .ci/install-parsers.sh"
        if os.environ.get("PDFLEET_REQUIRE_PARSERS"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [str(python), "-c", REAL, version, str(root), KEY, json.dumps(CASES)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def standin_answers(tmp_path, version: str) -> list[list]:
    wheel = wheels.build_standin_sglang_wheel(tmp_path / "wheel", version=version)
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    port = free_port()
    config = key_file(tmp_path, "key.yaml", f'api-key: "{KEY}"\n')
    argv = [sys.executable, "-m", "sglang.launch_server", "--model-path", "m", "--host", LOOPBACK, "--port", str(port)]
    argv += ["--enable-metrics", "--config", str(config)]
    env = clean_env(PYTHONPATH=str(site), SGLANG_STANDIN_LOG=str(tmp_path / "log.jsonl"))
    proc = start(argv, env, tmp_path, f"standin-{version}")
    try:
        wait_http(port, "/health", [proc])
        answers = []
        for method, path, header in CASES:
            from http.client import HTTPConnection

            conn = HTTPConnection(LOOPBACK, port, timeout=10)
            conn.request(
                method,
                path,
                body=b"{}" if method == "POST" else None,
                headers={"Authorization": header} if header else {},
            )
            response = conn.getresponse()
            answers.append([response.status, response.read().decode()])
            conn.close()
        launch = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
        assert KEY not in json.dumps([e.get("argv") for e in launch])  # the key came from the file
        return answers
    finally:
        stop(proc)


@pytest.mark.parametrize("version", ["0.5.6.post2", "0.5.23"])
def test_standin_refuses_exactly_what_the_real_middleware_refuses(tmp_path, version):
    real = real_middleware(version)
    mine = standin_answers(tmp_path, version)
    for case, (real_status, real_body), (status, body) in zip(CASES, real, mine, strict=True):
        refused = real_status == 401
        assert (status == 401) == refused, f"{version} {case}: real {real_status}, stand-in {status} {body[:200]}"
        if refused:
            assert json.loads(body) == json.loads(real_body) == {"error": "Unauthorized"}
    # the real verdicts themselves, as docs/security.md states them
    verdict = {case: status == 401 for case, (status, _) in zip(CASES, real, strict=True)}
    assert verdict[("POST", "/pause_generation", None)] and verdict[("GET", "/flush_cache", None)]
    assert not verdict[("GET", "/health", None)] and not verdict[("GET", "/metrics", None)]
    assert verdict[("GET", "/ready", None)] == (version == "0.5.6.post2")
    assert verdict[("POST", "/generate", f"bearer {KEY}")] == (version == "0.5.6.post2")


# ---------------------------------------------------------------------------------------------------------------
# the real smg router in front of keyed stand-ins


@pytest.fixture(scope="module")
def keyed_cluster(standin, tmp_path_factory):  # noqa: F811
    """pdfleet's prod command lines on loopback, every engine started with the key from its --config file."""
    work = tmp_path_factory.mktemp("keyed")
    config = work / "engine-api-key.yaml"
    config.write_text(apikeys.engine_files(apikeys.ApiKeys(KEY, KEY))[apikeys.ENGINE_CONFIG] + "\n")
    config.chmod(0o600)
    serving = plan(load(PROD))
    dist_port = free_port()
    nodes, procs = [], []
    env = clean_env(
        SGLANG_STANDIN_LOG=str(work / "standin.jsonl"),
        SGLANG_STANDIN_REQUIRE_MODEL_PATH="0",
        **serving.servers[0].env,
    )
    try:
        for spec in serving.servers:
            values = {"--host": LOOPBACK, "--port": str(free_port())}
            if "--disaggregation-bootstrap-port" in spec.server_args:
                values["--disaggregation-bootstrap-port"] = str(free_port())
            if "--dist-init-addr" in spec.server_args:
                values["--dist-init-addr"] = f"{LOOPBACK}:{dist_port}"
            key_args = replace_values(list(spec.key_args), {"--config": str(config)})
            args = replace_values(list(spec.server_args), values) + key_args
            node = {"spec": spec, "args": args, "values": values}
            node["proc"] = start([str(standin["python"]), "-m", "sglang.launch_server", *args], env, work, spec.host)
            nodes.append(node)
            procs.append(node["proc"])
        for node in nodes:
            wait_http(int(node["values"]["--port"]), "/health", procs)
        yield {"nodes": nodes, "work": work, "plan": serving, "procs": procs, "env": env, "loopback": LOOPBACK}
    finally:
        for node in sorted(nodes, key=lambda n: n["spec"].rank):
            stop(node["proc"])


CHAT = {"model": "DeepSeek-V3.2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def test_router_and_engines_take_only_the_key(keyed_cluster, standin):  # noqa: F811
    smg = standin["smg"]
    if not smg.exists():
        message = f"{smg} is missing: run .ci/install-parsers.sh"
        if os.environ.get("PDFLEET_REQUIRE_PARSERS"):
            pytest.fail(message)
        pytest.skip(message)
    head = next(n for n in keyed_cluster["nodes"] if n["spec"].role == "prefill")
    engine = int(head["values"]["--port"])
    # the engine itself: its destructive endpoints and generation refuse a request without the key
    for path in ("/pause_generation", "/abort_request", "/flush_cache", "/generate", "/v1/chat/completions"):
        assert http("POST", engine, path, {})[0] == 401, path
    assert http("GET", engine, "/v1/models", key="wrong-key-0123456789")[0] == 401
    assert http("GET", engine, "/v1/models", key=KEY)[0] == 200
    assert http("GET", engine, "/health")[0] == 200
    # the router, its workers registered by the agent with the key (smg's registration reads /v1/models and
    # /server_info with the worker's api_key: without it no worker would be ready)
    router, port, body = start_router(keyed_cluster, smg, "keyed-router", key=KEY)
    try:
        assert json.loads(body)["healthy_workers"] == 3
        assert http("GET", port, "/workers")[0] == 401
        assert http("POST", port, "/v1/chat/completions", CHAT)[0] == 401
        assert http("POST", port, "/v1/chat/completions", CHAT, key="wrong-key-0123456789")[0] == 401
        status, answer = http("POST", port, "/v1/chat/completions", CHAT, key=KEY)
        assert status == 200, answer[:500]
        assert json.loads(answer)["choices"][0]["message"]["content"]
        # drain and undrain through the agent, as `pdfleet drain` runs it: it reaches the router with the key
        members_path = keyed_cluster["work"] / "members.json"
        members = json.loads((keyed_cluster["work"] / "keyed-router.members.json").read_text())
        members_path.write_text(router_members.members_json(members))
        name = members["workers"][0]["instance"]
        assert router_members.drain(str(members_path), name, "operator", "test", 20) == 0
        assert router_members.undrain(str(members_path), name, "operator", 20) == 0
    finally:
        stop(router)
    assert KEY not in (keyed_cluster["work"] / "keyed-router.out").read_text()


# ---------------------------------------------------------------------------------------------------------------
# pdfleet's own checks send the key


class _Output:
    def __init__(self, lines):
        self.stdout_lines, self.stderr_lines = lines, []


class _Host:
    """Records the health gate's shell commands on the router's node; answers 200."""

    def __init__(self):
        self.commands: list[str] = []

    def run_shell_command(self, command, print_output=False):
        self.commands.append(command)
        return True, _Output(['{"workers": []}', "200"])


@pytest.mark.parametrize("keys_on", [True, False])
def test_health_gate_calls_carry_the_header_file_never_the_key(monkeypatch, tmp_path, keys_on):
    cluster = cluster_with(tmp_path, api_keys=keys_on)
    serving = plan(cluster)
    fake = _Host()
    monkeypatch.setattr(health, "host", fake)
    monkeypatch.setattr(health.common, "serving_plan", lambda: serving)
    assert health._curl(f"{serving.router.local_url}/workers", timeout=5)[0]
    assert health._curl(f"{serving.router.url}/v1/chat/completions", CHAT)[0]
    for command in fake.commands:
        assert (f"-H @{apikeys.CURL_HEADER}" in command) == keys_on, command
        assert TEST_KEY not in command


# ---------------------------------------------------------------------------------------------------------------
# no output holds a key


def _texts_under(root: Path) -> dict[str, str]:
    return {str(p): p.read_text(errors="replace") for p in sorted(root.rglob("*")) if p.is_file()}


def test_no_rendered_file_plan_dry_run_log_or_golden_file_holds_a_key(tmp_path, capsys, caplog, monkeypatch):
    uploads: dict[str, str] = {}
    from pyinfra.connectors.fake import FakeConnector

    original = FakeConnector.put_file

    def put_file(self, filename_or_io, remote_filename, *args, **kwargs):
        if hasattr(filename_or_io, "getvalue"):
            uploads[remote_filename] = filename_or_io.getvalue()
        return original(self, filename_or_io, remote_filename, *args, **kwargs)

    monkeypatch.setattr(FakeConnector, "put_file", put_file)
    caplog.set_level("DEBUG")
    outputs: dict[str, str] = {}
    runner = CliRunner()
    for args in (["render", str(PROD), "--out", str(tmp_path / "render")], ["plan", str(PROD)]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        outputs[" ".join(args[:1])] = result.output
    result = runner.invoke(cli, ["plan", str(PROD), "--json"])
    outputs["plan --json"] = result.output
    outputs.update(_texts_under(tmp_path / "render"))
    outputs.update(_texts_under(ROOT / "tests/golden"))
    for dry in (True, False):
        every = {node.name: {} for node in load(PROD).nodes}
        for node, run in converge(SERVING_LAYER, every, inventory_yaml=PROD, dry=dry).items():
            outputs[f"{node} dry={dry} operations"] = "\n".join(run.will_change)
            outputs[f"{node} dry={dry} commands"] = "\n".join(run.commands)
    captured = capsys.readouterr()
    outputs["stdout"], outputs["stderr"], outputs["log"] = captured.out, captured.err, caplog.text
    # the render points at the key files, the run writes them: this test looks where the key would be
    rendered = "\n".join(outputs.values())
    assert apikeys.ENGINE_CONFIG in rendered and f"--api-key ${{{apikeys.ROUTER_KEY_VAR}}}" in rendered
    assert uploads[apikeys.ENGINE_CONFIG] == f'api-key: "{TEST_KEY}"\n'
    assert uploads[apikeys.ROUTER_ENV] == f"{apikeys.ROUTER_KEY_VAR}={TEST_KEY}\n"
    leaking = [name for name, text in outputs.items() if TEST_KEY in text]
    assert leaking == []


# What API keys add to prod's golden files, and nothing else: removed, the render with keys off must remain.
KEY_ADDITIONS = [
    " \\\n    --config /etc/pdfleet/keys/engine-api-key.yaml",
    " \\\n    --api-key ${PDFLEET_ROUTER_API_KEY}",
    '  "key_file": "/etc/pdfleet/keys/api-key",\n',
    "# The API key clients send (smg takes it only as an argument): from this root-only file, read by systemd.\n"
    "EnvironmentFile=/etc/pdfleet/keys/router.env\n",
]


def test_keys_off_renders_the_golden_files_less_exactly_the_key_additions(tmp_path):
    doc = PROD.read_text().replace("  # api_keys: true ", "  api_keys: false ")
    assert "api_keys: false" in doc
    off = tmp_path / "prod.yaml"  # the same name: rendered headers name it
    off.write_text(doc)
    from pdfleet.render import render

    rendered = render(plan(load(off)))
    golden = ROOT / "tests/golden/prod"
    found = {str(p.relative_to(golden)): p.read_text() for p in golden.rglob("*") if p.is_file()}
    assert sorted(found) == sorted(f"{h}{path}" for h, files in rendered.items() for path in files)
    used = set()
    for name, text in found.items():
        host, path = name.split("/", 1)
        for addition in KEY_ADDITIONS:
            if addition in text:
                used.add(addition)
                text = text.replace(addition, "")
        assert rendered[host]["/" + path].content == text, name
        assert "/etc/pdfleet/keys" not in text and "--api-key" not in text
    assert used == set(KEY_ADDITIONS)


def test_sandbox_up_makes_one_key_0600_once(tmp_path):
    from pdfleet.sandbox.hosts import Sandbox

    inventory = tmp_path / "inventories/sandbox.yaml"
    inventory.parent.mkdir()
    inventory.write_text((ROOT / "inventories/sandbox.yaml").read_text())
    sandbox = Sandbox(inventory, paths=None)
    sandbox._ensure_api_keys()
    clients, engine = tmp_path / ".cache/sandbox/keys/clients", tmp_path / ".cache/sandbox/keys/engine"
    assert oct(clients.stat().st_mode & 0o777) == oct(engine.stat().st_mode & 0o777) == "0o600"
    assert oct(clients.parent.stat().st_mode & 0o777) == "0o700"
    key = clients.read_text()
    assert engine.read_text() == key and len(key.strip()) > 40
    engine.unlink()
    sandbox._ensure_api_keys()  # kept across runs; a lost file comes back with the same key
    assert clients.read_text() == engine.read_text() == key
    cluster = load(inventory)
    assert read_api_keys(cluster, {}).client == key.strip()


MERGE = r"""
import argparse, importlib.util, json, sys
version, root, path = sys.argv[1:4]
name = "server_args_config_parser.py" if version == "0.5.6.post2" else "utils/server_args_config_parser.py"
spec = importlib.util.spec_from_file_location("cp", f"{root}/sglang/srt/{name}")
module = sys.modules["cp"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
argv = ["--model-path", "m", "--port", "1", "--config", path]
if version == "0.5.6.post2":
    merger = module.ConfigArgumentMerger(boolean_actions=[])
else:
    parser = argparse.ArgumentParser()
    for flag in ("--model-path", "--port", "--api-key", "--config"):
        parser.add_argument(flag)
    merger = module.ConfigArgumentMerger(parser)
print(json.dumps(merger.merge_config_with_args(argv)))
"""


@pytest.mark.parametrize("version", ["0.5.6.post2", "0.5.23"])
def test_the_engine_key_file_is_read_by_sglangs_own_config_merger(tmp_path, version):
    python, root = PARSERS / "venv/bin/python", PARSERS / f"sglang-{version}"
    if not python.exists() or not root.exists():
        pytest.skip(f"{root} is missing: run .ci/install-parsers.sh")
    content = apikeys.engine_files(apikeys.ApiKeys(KEY, KEY))[apikeys.ENGINE_CONFIG]
    path = key_file(tmp_path, "engine-api-key.yaml", content + "\n")
    result = subprocess.run(
        [str(python), "-c", MERGE, version, str(root), str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == ["--api-key", KEY, "--model-path", "m", "--port", "1"]


def test_the_agent_sends_the_key_from_its_file_and_nothing_with_keys_off(tmp_path):
    import http.server
    import threading

    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            ok = self.headers.get("Authorization") == f"Bearer {KEY}"
            body = json.dumps({"workers": []} if ok else {"error": "Unauthorized"}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    router = f"http://{LOOPBACK}:{server.server_address[1]}"
    try:
        file_key = key_file(tmp_path, "api-key", KEY + "\n")
        members = {"router": router, "workers": [], "drained": {}, "key_file": str(file_key)}
        router_members.load_key(members)
        assert router_members.registered_workers(router) == []
        key_file(tmp_path, "api-key", "wrong-key-0123456789\n")  # the key changed on disk: the next pass reads it
        router_members.load_key(members)
        with pytest.raises(OSError, match="answered 401"):
            router_members.registered_workers(router)
        router_members.load_key({"router": router})  # keys off: no header at all
        with pytest.raises(OSError, match="answered 401"):
            router_members.registered_workers(router)
        assert seen == [f"Bearer {KEY}", "Bearer wrong-key-0123456789", None]
    finally:
        server.shutdown()
        router_members.load_key({})


def test_keys_switched_off_removes_the_key_files_a_run_with_keys_left_and_nothing_else(tmp_path):
    off = tmp_path / "prod.yaml"
    off.write_text(PROD.read_text().replace("  # api_keys: true ", "  api_keys: false "))
    engine_files, router_files = apikeys.engine_files(None), apikeys.router_files(None)
    left = {  # what a run with keys wrote: the router's node (prefill-0) is an engine node too
        "prefill-0": sorted({*engine_files, *router_files}),
        "decode-1": sorted(engine_files),
        "decode-0": [],  # never had keys (or already clean)
        "prefill-1": [],
    }
    answers = {node: {f"sha1sum {path}": f"{'0' * 40}  {path}" for path in paths} for node, paths in left.items()}
    runs = converge(SERVING_LAYER, answers, inventory_yaml=off)
    for node, paths in left.items():
        removed = sorted({c.split("rm -f ", 1)[1] for c in runs[node].commands if "rm -f /etc/pdfleet/keys/" in c})
        assert removed == paths, node
    # where no key file is left, the same operations change nothing
    key_ops = {name: changed for name, changed in runs["decode-0"].will_change.items() if "API key file" in name}
    assert key_ops and not any(key_ops.values()), key_ops
