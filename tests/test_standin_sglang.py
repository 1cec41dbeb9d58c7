"""The sandbox's stand-in `sglang` engine, its wheel and the static package index, against the real router.

Loopback only (127.0.0.1, free ports), bounded waits, every process started here ended by its own PID.

1. The stand-in wheel builds deterministically, and pip installs it offline from the static index into a fresh venv
   (together with the real smg when its wheels are at hand: PDFLEET_SANDBOX_WHEELS=<dir with smg's wheel set>).
2. Its parser rejects what SGLang 0.5.23 rejects and accepts the command lines pdfleet generates for prod (the
   whole prod topology started on loopback: 2 prefills, a 2-node decode). With the parser environment of
   .ci/install-parsers.sh, the committed option table is regenerated from the real SGLang and compared.
3. The real smg router (PD mode, pdfleet's own router arguments) takes the stand-ins for SGLang workers, injects
   the bootstrap fields, and chat completions (plain, streaming, tool calls) come back through it.
4. compile_deep_gemm fills the DeepGEMM cache and takes the configured time.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from http.client import HTTPConnection
from pathlib import Path

import pytest

from pdfleet import netaddr
from pdfleet.inventory import load
from pdfleet.onhost import router_members
from pdfleet.render import members_file
from pdfleet.sandbox import wheels
from pdfleet.serving import plan

ROOT = Path(__file__).resolve().parent.parent
PROD = ROOT / "inventories/prod.py"
PARSERS = ROOT / ".cache/parsers"
TABLE = ROOT / "pdfleet/sandbox/standins/sglang/sglang/_flags_0_5_23.json"
EXTRACTOR = ROOT / "pdfleet/sandbox/standins/tools/extract_sglang_flags.py"
LOOPBACK = "127.0.0.1"


# ---------------------------------------------------------------------------------------------------------------
# helpers


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict:
    """This environment without proxies (everything here talks to 127.0.0.1 directly) and without stand-in settings
    from outside (knobs, /etc/sglang-standin, cache directories), plus extra."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.lower().endswith("_proxy")
        and not k.startswith("SGLANG_STANDIN_")
        and k not in ("SGLANG_DG_CACHE_DIR", "SGLANG_CACHE_DIR")
    }
    env["SGLANG_STANDIN_CONFIG_DIR"] = "/nonexistent/sglang-standin"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PIP_CONFIG_FILE"] = os.devnull
    env.update(extra)
    return env


def http(
    method: str,
    port: int,
    path: str,
    body=None,
    timeout: float = 10.0,
    key: str | None = None,
    host: str = LOOPBACK,
) -> tuple[int, bytes]:
    conn = HTTPConnection(host, port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_http(
    port: int,
    path: str,
    procs: list[subprocess.Popen],
    timeout: float = 20.0,
    status: int = 200,
    until=None,
    key: str | None = None,
    host: str = LOOPBACK,
):
    """Poll until the answer has `status` (and `until(body)` holds, when given)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.poll() is None, f"{proc.args[:4]}... exited with {proc.returncode}: {_output(proc)}"
        try:
            last = http("GET", port, path, timeout=2, key=key, host=host)
            if last[0] == status and (until is None or until(last[1])):
                return last
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    where = netaddr.host_port(host, port)
    raise AssertionError(f"GET {where}{path} did not answer {status} within {timeout} s: {last!r}")


def _output(proc: subprocess.Popen) -> str:
    out = getattr(proc, "log_file", None)
    return Path(out).read_text(errors="replace")[-3000:] if out and Path(out).exists() else ""


def start(argv: list[str], env: dict, log_dir: Path, name: str) -> subprocess.Popen:
    out = log_dir / f"{name}.out"
    with out.open("wb") as handle:
        proc = subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    proc.log_file = out
    return proc


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGTERM by PID, then SIGKILL by PID if it lingers; returns the exit status."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode


def events(log: Path, event: str | None = None) -> list[dict]:
    if not log.exists():
        return []
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [r for r in records if event is None or r["event"] == event]


def replace_values(args: list[str], values: dict[str, str]) -> list[str]:
    """args with the value after each flag in `values` replaced (flags themselves untouched)."""
    out = list(args)
    for flag, value in values.items():
        assert flag in out, f"{flag} not in {args}"
        out[out.index(flag) + 1] = value
    return out


# ---------------------------------------------------------------------------------------------------------------
# 1. the wheel and the index


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> dict:
    """The stand-in wheel in a static index, installed offline into a fresh venv."""
    root = tmp_path_factory.mktemp("standin")
    wheel_dir = root / "wheels"
    wheel = wheels.build_standin_sglang_wheel(wheel_dir)
    extra = os.environ.get("PDFLEET_SANDBOX_WHEELS")
    with_smg = bool(extra) and any(Path(extra).glob("smg-1.13.0-*.whl"))
    if with_smg:
        for path in Path(extra).glob("*.whl"):
            if not path.name.startswith("sglang-"):
                (wheel_dir / path.name).symlink_to(path)
    simple = wheels.write_simple_index(wheel_dir, root / "simple")
    assert simple == root / "simple"
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin/python"
    requirements = ["sglang==0.5.23"] + (["smg==1.13.0"] if with_smg else [])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--no-input",
            "--index-url",
            simple.as_uri(),
            *requirements,
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    smg = venv / "bin/smg" if with_smg else PARSERS / "smg-venv/bin/smg"
    return {"root": root, "wheel": wheel, "simple": simple, "python": python, "smg": smg, "with_smg": with_smg}


def test_wheel_is_deterministic_and_well_formed(tmp_path, standin):
    again = wheels.build_standin_sglang_wheel(tmp_path)
    assert again.name == "sglang-0.5.23-py3-none-any.whl"
    assert again.read_bytes() == standin["wheel"].read_bytes()
    with zipfile.ZipFile(again) as archive:
        names = archive.namelist()
        assert {
            "sglang/__init__.py",
            "sglang/launch_server.py",
            "sglang/compile_deep_gemm.py",
            "sglang/_flags_0_5_23.json",
        } <= set(names)
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        metadata = archive.read("sglang-0.5.23.dist-info/METADATA").decode()
        assert "Name: sglang\n" in metadata and "Version: 0.5.23\n" in metadata and "STAND-IN" in metadata
        assert "Tag: py3-none-any" in archive.read("sglang-0.5.23.dist-info/WHEEL").decode()
        record = archive.read("sglang-0.5.23.dist-info/RECORD").decode().splitlines()
        listed = {}
        for line in record:
            name, digest, size = line.rsplit(",", 2)
            listed[name] = (digest, size)
        assert set(listed) == set(names)
        for name in names:
            if name.endswith("/RECORD"):
                assert listed[name] == ("", "")
                continue
            data = archive.read(name)
            expected = wheels._record_hash(data)
            assert listed[name] == (expected, str(len(data))), name


def test_index_installs_offline(standin):
    page = (standin["simple"] / "sglang/index.html").read_text()
    digest = hashlib.sha256(standin["wheel"].read_bytes()).hexdigest()
    assert f'#sha256={digest}"' in page and 'data-requires-python="&gt;=3.11"' in page
    assert '<a href="sglang/">sglang</a>' in (standin["simple"] / "index.html").read_text()
    probe = "import importlib.metadata as m, sglang; print(sglang.__version__, m.version('sglang'), sglang.STANDIN)"
    if standin["with_smg"]:
        probe += "; print(m.version('smg'))"
    out = subprocess.run([str(standin["python"]), "-c", probe], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:3] == ["0.5.23", "0.5.23", "True"]
    if standin["with_smg"]:
        assert out.stdout.split()[3] == "1.13.0"


# ---------------------------------------------------------------------------------------------------------------
# 2. arguments


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        (
            "launch_server",
            ["--model-path", "m", "--cuda-graph-bs", "1", "2"],
            "ambiguous option: --cuda-graph-bs could match --cuda-graph-bs-decode, --cuda-graph-bs-prefill",
        ),
        (
            "launch_server",
            ["--model-path", "m", "--enable-expert-distribution-metrics"],
            "unrecognized arguments: --enable-expert-distribution-metrics",
        ),
        ("launch_server", ["--tp-size", "8"], "the following arguments are required: --model-path/--model"),
        (
            "launch_server",
            ["--model-path", "m", "--disaggregation-mode", "both"],
            "argument --disaggregation-mode: invalid choice: 'both'",
        ),
        (
            "compile_deep_gemm",
            ["--model-path", "m", "--timeout", "soon"],
            "argument --timeout: invalid int value: 'soon'",
        ),
    ],
)
def test_rejects_what_sglang_rejects(tmp_path, standin, module, args, message):
    log = tmp_path / "log.jsonl"
    result = subprocess.run(
        [str(standin["python"]), "-m", f"sglang.{module}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(SGLANG_STANDIN_LOG=str(log)),
    )
    assert result.returncode == 2, result.stderr
    prog = "sglang serve" if module == "launch_server" else "compile_deep_gemm.py"
    assert f"{prog}: error: {message}" in result.stderr
    assert [e["event"] for e in events(log)] == [f"{'launch' if module == 'launch_server' else 'compile'}_rejected"]


@pytest.mark.parsers
def test_option_table_matches_the_real_sglang(tmp_path):
    """Regenerate the table from SGLang 0.5.23's own parser and compare it with the committed one, byte for byte."""
    python, site = PARSERS / "venv/bin/python", PARSERS / "sglang-0.5.23"
    for path in (python, site):
        if not path.exists():
            message = f"{path} is missing: run .ci/install-parsers.sh"
            if os.environ.get("PDFLEET_REQUIRE_PARSERS"):
                pytest.fail(message)
            pytest.skip(message)
    result = subprocess.run(
        [str(python), str(EXTRACTOR)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == TABLE.read_text(), "the option table is stale: regenerate it (see the extractor)"
    table = json.loads(result.stdout)
    assert len(table["options"]) > 500
    assert table["parsers"]["compile_deep_gemm"]["extra"] == [
        {"flags": ["--timeout"], "dest": "timeout", "action": "store", "type": "int", "default": 3600}
    ]


def test_missing_model_path_fails_like_sglang(tmp_path, standin):
    log = tmp_path / "log.jsonl"
    result = subprocess.run(
        [
            str(standin["python"]),
            "-m",
            "sglang.launch_server",
            "--model-path",
            str(tmp_path / "absent"),
            "--host",
            LOOPBACK,
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(SGLANG_STANDIN_LOG=str(log)),
    )
    assert result.returncode == 1
    assert "does not exist" in result.stderr
    assert [e["event"] for e in events(log)] == ["launch", "exit"]


@pytest.fixture(scope="module")
def prod_cluster(standin, tmp_path_factory):
    """pdfleet's prod command lines (2 prefills, a 2-node decode), values moved to loopback ports, all running."""
    yield from run_cluster(standin, tmp_path_factory.mktemp("prod"), plan(load(PROD)), LOOPBACK)


def run_cluster(standin: dict, work: Path, serving, loopback: str):
    """Every node of `serving` as a stand-in on `loopback` (127.0.0.1 or ::1), each on its own ports; the addresses
    moved there as pdfleet writes them (an IPv6 --dist-init-addr in brackets)."""
    log = work / "standin.jsonl"
    dist_port = free_port(loopback)
    nodes = []
    for spec in serving.servers:
        args = list(spec.server_args)
        values = {"--host": loopback, "--port": str(free_port(loopback))}
        if "--disaggregation-bootstrap-port" in args:
            values["--disaggregation-bootstrap-port"] = str(free_port(loopback))
        if "--dist-init-addr" in args:
            values["--dist-init-addr"] = netaddr.host_port(loopback, dist_port)
        nodes.append({"spec": spec, "args": replace_values(args, values), "values": values})
    env = clean_env(
        SGLANG_STANDIN_LOG=str(log),
        SGLANG_STANDIN_REQUIRE_MODEL_PATH="0",  # keep prod's --model-path; no model on this machine
        **{k: v for k, v in nodes[0]["spec"].env.items()},
    )
    procs = []
    try:
        for node in nodes:
            argv = [str(standin["python"]), "-m", "sglang.launch_server", *node["args"]]
            node["proc"] = start(argv, env, work, node["spec"].host)
            procs.append(node["proc"])
        for node in nodes:
            wait_http(int(node["values"]["--port"]), "/health", procs, host=loopback)
        yield {
            "nodes": nodes,
            "log": log,
            "work": work,
            "plan": serving,
            "procs": procs,
            "env": env,
            "loopback": loopback,
        }
    finally:
        # rank 0s first: a rank >= 1 then stops on rank 0's shutdown broadcast, as in SGLang
        for node in sorted(nodes, key=lambda n: n["spec"].rank):
            if "proc" in node:
                stop(node["proc"])


def test_accepts_pdfleet_prod_command_lines(prod_cluster, standin):
    nodes, log = prod_cluster["nodes"], prod_cluster["log"]
    launches = events(log, "launch")
    assert sorted(tuple(e["argv"]) for e in launches) == sorted(tuple(n["args"]) for n in nodes)
    assert not events(log, "launch_rejected")
    # the launch line carries the environment as given (here: the node's env from the plan)
    for launch in launches:
        assert launch["env"]["SGLANG_STANDIN_REQUIRE_MODEL_PATH"] == "0"
        assert launch["env"]["SGLANG_DISAGGREGATION_BOOTSTRAP_TIMEOUT"] == "80"
    assert len(events(log, "rendezvous")) == 2  # the 2-node decode met on --dist-init-addr
    for node in nodes:
        spec, port = node["spec"], int(node["values"]["--port"])
        status, body = http("GET", port, "/v1/models")
        if spec.rank == 0:
            assert status == 200
            card = json.loads(body)["data"][0]
            assert card["id"] == "DeepSeek-V3.2" and card["owned_by"] == "sglang"
            info = json.loads(http("GET", port, "/server_info")[1])
            assert info["version"] == "0.5.23" and info["disaggregation_mode"] == spec.role
            assert info["tp_size"] == int(spec.server_args[spec.server_args.index("--tp-size") + 1])
            assert http("GET", port, "/version")[0] == 404  # a 200 there would make smg see vLLM
        else:
            assert status == 404  # ranks >= 1: health stub only
            assert http("GET", port, "/health_generate")[0] == 200
        if spec.role == "prefill":
            bootstrap = int(node["values"]["--disaggregation-bootstrap-port"])
            assert http("GET", bootstrap, "/health") == (200, b"OK")
    prefill = next(n for n in nodes if n["spec"].role == "prefill")
    compile_args = replace_values(list(prefill["spec"].precompile_args), prefill["values"])
    result = subprocess.run(
        [str(standin["python"]), "-m", "sglang.compile_deep_gemm", *compile_args],
        capture_output=True,
        text=True,
        timeout=30,
        env={
            **prod_cluster["env"],
            "SGLANG_STANDIN_COMPILE_SECONDS": "0",
            "SGLANG_DG_CACHE_DIR": str(prod_cluster["work"] / "dg"),
        },
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert events(log, "compile")[-1]["argv"] == compile_args


def test_pd_mode_requires_a_bootstrap_room(prod_cluster):
    decode = next(n for n in prod_cluster["nodes"] if n["spec"].role == "decode" and n["spec"].rank == 0)
    port = int(decode["values"]["--port"])
    status, body = http("POST", port, "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
    assert status == 400
    assert "Disaggregated request received without bootstrap room id" in json.loads(body)["message"]
    status, body = http("POST", port, "/generate", {"text": "hi", "bootstrap_host": "2.2.2.2", "bootstrap_room": 0})
    assert status == 200 and json.loads(body)["meta_info"]["completion_tokens"] > 0


# ---------------------------------------------------------------------------------------------------------------
# 3. the real router in front


def start_router(prod_cluster: dict, smg: Path, name: str, key: str | None = None) -> tuple[subprocess.Popen, int, str]:
    """The real smg router with pdfleet's own arguments and membership, every address moved to this machine's
    loopback ports, the workers registered by the membership agent's passes as its service runs them on the
    router's node; returns (process, port, /readiness body) once all three workers are healthy. With `key`: the
    router takes it as its client key (`--api-key`, as its unit's EnvironmentFile gives it) and the agent reads it
    from a 0600 file named by the membership, as on the router's node; without, no API keys."""
    nodes, work, loopback = prod_cluster["nodes"], prod_cluster["work"], prod_cluster["loopback"]
    by_url = {n["spec"].url: n for n in nodes if n["spec"].rank == 0}
    router_port, metrics_port = free_port(loopback), free_port(loopback)
    args = replace_values(
        list(prod_cluster["plan"].router.router_args),
        {
            "--host": loopback,
            "--port": str(router_port),
            "--prometheus-host": loopback,
            "--prometheus-port": str(metrics_port),
        },
    )
    args += ["--worker-startup-check-interval", "1"]
    members = json.loads(members_file(prod_cluster["plan"]).content)
    members.pop("key_file", None)
    if key is not None:
        args += ["--api-key", key]
        key_file = prod_cluster["work"] / f"{name}.api-key"
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        members["key_file"] = str(key_file)
    for worker in members["workers"]:
        node = by_url[worker["spec"]["url"]]
        worker["spec"]["url"] = netaddr.url(loopback, int(node["values"]["--port"]))
        if "bootstrap_port" in worker["spec"]:
            worker["spec"]["bootstrap_port"] = int(node["values"]["--disaggregation-bootstrap-port"])
    members["router"] = netaddr.url(loopback, router_port)
    (work / f"{name}.members.json").write_text(router_members.members_json(members))
    router = start([str(smg), "launch", *args], prod_cluster["env"], work, name)
    try:
        wait_http(router_port, "/workers", [router, *prod_cluster["procs"]], timeout=30, key=key, host=loopback)
        pending: dict = {}
        deadline = time.monotonic() + 30
        while len(json.loads(http("GET", router_port, "/workers", key=key, host=loopback)[1])["workers"]) < 3:
            assert time.monotonic() < deadline, "the agent did not register the three workers"
            router_members.apply(members, pending)
            time.sleep(0.5)
        # /readiness turns 200 with one healthy prefill and one decode; wait for all three workers.
        _, body = wait_http(
            router_port,
            "/readiness",
            [router, *prod_cluster["procs"]],
            timeout=30,
            until=lambda text: json.loads(text)["healthy_workers"] == 3,
            host=loopback,
        )
    except BaseException:
        stop(router)
        raise
    return router, router_port, body


def test_real_smg_router_in_pd_mode(prod_cluster, standin):
    smg = standin["smg"]
    if not smg.exists():
        message = f"{smg} is missing: run .ci/install-parsers.sh (or set PDFLEET_SANDBOX_WHEELS)"
        if os.environ.get("PDFLEET_REQUIRE_PARSERS"):
            pytest.fail(message)
        pytest.skip(message)
    nodes, log = prod_cluster["nodes"], prod_cluster["log"]
    router, router_port, body = start_router(prod_cluster, smg, "router")
    try:
        assert json.loads(body)["healthy_workers"] == 3

        workers = json.loads(http("GET", router_port, "/workers")[1])["workers"]
        assert sorted(w["worker_type"] for w in workers) == ["decode", "prefill", "prefill"]
        assert {w["runtime_type"] for w in workers} == {"sglang"}

        before = len(events(log, "request"))
        chat = {"model": "DeepSeek-V3.2", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8}
        status, body = http("POST", router_port, "/v1/chat/completions", chat)
        assert status == 200, body
        answer = json.loads(body)
        assert answer["choices"][0]["message"]["content"] and answer["object"] == "chat.completion"

        tools = [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                },
            }
        ]
        status, body = http("POST", router_port, "/v1/chat/completions", {**chat, "tools": tools})
        assert status == 200, body
        choice = json.loads(body)["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        call = choice["message"]["tool_calls"][0]["function"]
        assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "stand-in"}

        status, body = http("POST", router_port, "/v1/chat/completions", {**chat, "stream": True})
        assert status == 200
        chunks = [line[len(b"data: ") :] for line in body.splitlines() if line.startswith(b"data: ")]
        assert chunks[-1] == b"[DONE]" and len(chunks) > 3
        assert "".join(json.loads(c)["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])

        deadline = time.monotonic() + 5
        while len(events(log, "request")) < before + 6 and time.monotonic() < deadline:
            time.sleep(0.05)  # the prefill legs may log after the decode leg answered
        requests = events(log, "request")[before:]
        decode_side = [r for r in requests if r["role"] == "decode"]
        prefill_side = [r for r in requests if r["role"] == "prefill"]
        assert len(decode_side) == 3 and len(prefill_side) == 3
        bootstrap_ports = {
            int(n["values"]["--disaggregation-bootstrap-port"]) for n in nodes if n["spec"].role == "prefill"
        }
        for request in decode_side:
            assert request["status"] == 200
            assert isinstance(request["bootstrap_room"], int)
            assert request["bootstrap_host"] == LOOPBACK
            assert request["bootstrap_port"] in bootstrap_ports
        # each request went to one prefill and the decode with the same room
        assert {r["bootstrap_room"] for r in decode_side} == {r["bootstrap_room"] for r in prefill_side}
        # decode reached the prefill's bootstrap server the request named
        assert events(log, "bootstrap_request")
    finally:
        stop(router)


# ---------------------------------------------------------------------------------------------------------------
# lifecycle


def _two_ranks(tmp_path, standin, env) -> tuple[list[subprocess.Popen], list[int]]:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text(json.dumps({"model_type": "deepseek_v32", "max_position_embeddings": 4096}))
    dist, ports = free_port(), [free_port(), free_port()]
    procs = []
    for rank in (0, 1):
        argv = [
            str(standin["python"]),
            "-m",
            "sglang.launch_server",
            "--model-path",
            str(model),
            "--host",
            LOOPBACK,
            "--port",
            str(ports[rank]),
            "--nnodes",
            "2",
            "--node-rank",
            str(rank),
            "--dist-init-addr",
            f"{LOOPBACK}:{dist}",
        ]
        procs.append(start(argv, env, tmp_path, f"rank{rank}"))
    wait_http(ports[0], "/v1/models", procs)
    wait_http(ports[1], "/health", procs)
    return procs, ports


def test_sigterm_stops_cleanly_and_multi_node_peer_loss_fails_with_peer_loss_exit(tmp_path, standin):
    log = tmp_path / "log.jsonl"
    env = clean_env(SGLANG_STANDIN_LOG=str(log), SGLANG_STANDIN_PEER_LOSS="exit")
    procs, ports = _two_ranks(tmp_path, standin, env)
    try:
        assert json.loads(http("GET", ports[0], "/v1/models")[1])["data"][0]["max_model_len"] == 4096
        assert stop(procs[1]) == 0  # SIGTERM: clean stop
        assert procs[0].wait(10) == 1  # rank 0 lost its peer: the instance fails at once
    finally:
        for proc in procs:
            stop(proc)
    shutdowns = {e["pid"]: e for e in events(log, "shutdown")}
    assert shutdowns[procs[1].pid]["reason"] == "SIGTERM" and shutdowns[procs[1].pid]["status"] == 0
    assert shutdowns[procs[0].pid]["status"] == 1


def test_a_lost_peer_hangs_rank_0_as_sglang_does(tmp_path, standin):
    """The default (sglang #3099): rank 0 stays, its requests never finish, /health turns 503, and only NCCL's
    watchdog (here 3 s instead of 600) ends it."""
    log = tmp_path / "log.jsonl"
    env = clean_env(
        SGLANG_STANDIN_LOG=str(log),
        SGLANG_STANDIN_PEER_LOSS_EXIT_SECONDS="4",
        SGLANG_HEALTH_CHECK_TIMEOUT="1",
        SGLANG_STANDIN_HEALTH_GENERATE_SECONDS="0",
    )
    procs, ports = _two_ranks(tmp_path, standin, env)
    try:
        os.kill(procs[1].pid, signal.SIGKILL)
        procs[1].wait(5)
        deadline = time.monotonic() + 5
        while not events(log, "peer_lost") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert procs[0].poll() is None  # still there
        assert http("GET", ports[0], "/health", timeout=10)[0] == 503
        chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        with pytest.raises(OSError):  # a request hangs: nothing comes back
            http("POST", ports[0], "/v1/chat/completions", chat, timeout=1)
        assert procs[0].wait(10) == 1  # the watchdog, at last
    finally:
        for proc in procs:
            stop(proc)
    assert [e["message"] for e in events(log, "peer_lost")] == ["node rank 1 left the instance"]


def test_sigterm_drains_the_requests_in_flight_first(tmp_path, standin):
    """SGLang's sigterm_watchdog: /health answers 503 at once, requests in flight finish, then the process exits."""
    log = tmp_path / "log.jsonl"
    env = clean_env(SGLANG_STANDIN_LOG=str(log), SGLANG_STANDIN_LATENCY_MS="2500")
    port = free_port()
    argv = [str(standin["python"]), "-m", "sglang.launch_server", "--model-path", "m", "--port", str(port),
            "--host", LOOPBACK]  # fmt: skip
    proc = start(argv, env, tmp_path, "server")
    try:
        wait_http(port, "/v1/models", [proc])
        answer = {}
        chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        request = threading.Thread(target=lambda: answer.update(r=http("POST", port, "/v1/chat/completions", chat)))
        request.start()
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGTERM)
        time.sleep(0.3)
        assert http("GET", port, "/health")[0] == 503  # draining: the router takes it out
        assert proc.poll() is None  # still finishing the request
        request.join(10)
        assert answer["r"][0] == 200
        assert proc.wait(10) == 0
    finally:
        stop(proc)
    assert "Gracefully exiting... Remaining number of requests 1" in Path(proc.log_file).read_text()


# ---------------------------------------------------------------------------------------------------------------
# 4. compile_deep_gemm


def test_compile_deep_gemm_fills_the_cache_and_takes_the_configured_time(tmp_path, standin):
    log = tmp_path / "log.jsonl"
    cache = tmp_path / "dg"
    args = ["--model-path", "/models/DeepSeek-V3.2", "--tp-size", "8", "--timeout", "60"]
    env = clean_env(SGLANG_STANDIN_LOG=str(log), SGLANG_DG_CACHE_DIR=str(cache), SGLANG_STANDIN_COMPILE_SECONDS="1.5")
    started = time.monotonic()
    result = subprocess.run(
        [str(standin["python"]), "-m", "sglang.compile_deep_gemm", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert 1.5 <= elapsed < 6
    cubins = sorted(cache.glob("cache/kernel.*/kernel.cubin"))
    assert len(cubins) >= 3 and all(p.stat().st_size > 0 for p in cubins)
    compile_event = events(log, "compile")[0]
    assert compile_event["argv"] == args and compile_event["cache_dir"] == str(cache)
    assert compile_event["env"]["SGLANG_DG_CACHE_DIR"] == str(cache)
    assert events(log, "compile_done")[0]["status"] == 0

    # the time from the image's file, the cache in SGLang's default place under $HOME; --timeout shorter: fails
    config = tmp_path / "etc"
    config.mkdir()
    (config / "compile-seconds").write_text("0.6\n")
    home = tmp_path / "home"
    env = clean_env(SGLANG_STANDIN_LOG=str(log), SGLANG_STANDIN_CONFIG_DIR=str(config), HOME=str(home))
    started = time.monotonic()
    result = subprocess.run(
        [str(standin["python"]), "-m", "sglang.compile_deep_gemm", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert 0.6 <= time.monotonic() - started < 5
    assert list((home / ".cache/sglang/deep_gemm/cache").glob("kernel.*/kernel.cubin"))
    result = subprocess.run(
        [str(standin["python"]), "-m", "sglang.compile_deep_gemm", *args[:-1], "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1 and "DeepGEMM Kernels compilation timeout." in result.stderr


# ---------------------------------------------------------------------------------------------------------------
# 6. two versions: 0.5.6.post2 beside 0.5.23, and a mixed pair that fails as it fails on real nodes


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> dict[str, Path]:
    """Each version's stand-in wheel, unpacked (a pure-Python wheel runs from its files)."""
    root = tmp_path_factory.mktemp("versions")
    found = {}
    for version in wheels.STANDIN_SGLANG_VERSIONS:
        wheel = wheels.build_standin_sglang_wheel(root / "wheels", version=version)
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(root / version)
        found[version] = root / version
    return found


def _launch(site: Path, spec, tmp_path: Path, log: Path, name: str) -> tuple[subprocess.Popen, dict[str, str]]:
    """One node of pdfleet's plan, on loopback ports, from a version's stand-in; a lone decode rank 0 serves
    without waiting for rank 1 (rendezvous off)."""
    values = {"--host": LOOPBACK, "--port": str(free_port())}
    if "--disaggregation-bootstrap-port" in spec.server_args:
        values["--disaggregation-bootstrap-port"] = str(free_port())
    if "--dist-init-addr" in spec.server_args:
        values["--dist-init-addr"] = f"{LOOPBACK}:{free_port()}"
    env = clean_env(
        PYTHONPATH=str(site),
        SGLANG_STANDIN_LOG=str(log),
        SGLANG_STANDIN_REQUIRE_MODEL_PATH="0",
        SGLANG_STANDIN_RENDEZVOUS="0",
        SGLANG_STANDIN_BOOTSTRAP_TIMEOUT="1",
    )
    argv = [sys.executable, "-m", "sglang.launch_server", *replace_values(list(spec.server_args), values)]
    return start(argv, env, tmp_path, name), values


@pytest.mark.parametrize(
    ("prefill_version", "decode_version"),
    [("0.5.23", "0.5.23"), ("0.5.6.post2", "0.5.6.post2"), ("0.5.23", "0.5.6.post2"), ("0.5.6.post2", "0.5.23")],
)
def test_each_version_takes_its_own_command_lines_and_only_a_same_version_pair_serves(
    sites, tmp_path, prefill_version, decode_version
):
    log = tmp_path / "standin.jsonl"
    prefill_spec = plan(load(PROD).with_sglang_version(prefill_version)).ranks("prefill-0")[0]
    decode_spec = plan(load(PROD).with_sglang_version(decode_version)).ranks("decode")[0]
    prefill, p_values = _launch(sites[prefill_version], prefill_spec, tmp_path, log, "prefill")
    decode, d_values = _launch(sites[decode_version], decode_spec, tmp_path, log, "decode")
    try:
        procs = [prefill, decode]
        for values in (p_values, d_values):
            wait_http(int(values["--port"]), "/health", procs)
        assert not events(log, "launch_rejected")  # pdfleet's command lines of that version parse
        for version, values in ((prefill_version, p_values), (decode_version, d_values)):
            port = int(values["--port"])
            assert json.loads(http("GET", port, "/server_info")[1])["version"] == version
            legacy = version == "0.5.6.post2"
            assert http("GET", port, "/ready")[0] == (404 if legacy else 200)
            assert http("GET", port, "/get_load" if legacy else "/v1/loads")[0] == 200
        request = {
            "text": "hi",
            "bootstrap_host": LOOPBACK,
            "bootstrap_port": int(p_values["--disaggregation-bootstrap-port"]),
            "bootstrap_room": 7,
        }
        status, body = http("POST", int(d_values["--port"]), "/generate", request)
        if prefill_version == decode_version:
            assert status == 200, body
        else:
            assert status >= 400 and b"did not answer GET /route (HTTP 400)" in body, (status, body)
            asked = [e for e in events(log, "bootstrap_request") if e["path"] == "/route"]
            assert asked and all(e["method"] == "GET" for e in asked)
    finally:
        for proc in (decode, prefill):
            stop(proc)


def _router_with(workers: list[dict], tmp_path: Path) -> tuple[subprocess.Popen, int]:
    """The real smg with pdfleet's prod router arguments on a loopback port, the given worker specs registered
    through its worker API, each ready."""
    smg = PARSERS / "smg-venv/bin/smg"
    if not smg.exists():
        message = f"{smg} is missing: run .ci/install-parsers.sh"
        if os.environ.get("PDFLEET_REQUIRE_PARSERS"):
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    args = replace_values(
        list(plan(load(PROD)).router.router_args),
        {"--host": LOOPBACK, "--port": str(port), "--prometheus-host": LOOPBACK, "--prometheus-port": str(free_port())},
    )
    router = start([str(smg), "launch", *args], clean_env(), tmp_path, "router")
    wait_http(port, "/workers", [router], timeout=30)
    for spec in workers:
        status, body = http("POST", port, "/workers", spec)
        assert status in (200, 201, 202), body
    deadline = time.monotonic() + 30
    while True:
        listed = json.loads(http("GET", port, "/workers")[1])["workers"]
        if len(listed) == len(workers) and all(w["status"] == "ready" for w in listed):
            return router, port
        assert time.monotonic() < deadline, listed
        time.sleep(0.3)


@pytest.mark.parametrize("protocols", [True, False])
def test_the_router_pairs_only_workers_of_one_version_when_they_name_their_protocol(sites, tmp_path, protocols):
    """Blue/green's switch: both versions' prefill and decode registered at once. With the pairing protocol pdfleet
    gives each worker (its SGLang version), the real smg never builds a mixed pair: every request answers. Without
    it (the control), the router pairs across versions and those requests fail at the bootstrap."""
    log = tmp_path / "standin.jsonl"
    workers, procs = [], []
    try:
        for version in ("0.5.23", "0.5.6.post2"):
            serving = plan(load(PROD).with_sglang_version(version))
            for instance in ("prefill-0", "decode"):
                proc, values = _launch(
                    sites[version], serving.ranks(instance)[0], tmp_path, log, f"{instance}-{version}"
                )
                procs.append(proc)
                wait_http(int(values["--port"]), "/health", procs)
                worker = next(w for w in serving.router.workers if w.instance == instance)
                spec = {**worker.spec, "url": f"http://{LOOPBACK}:{values['--port']}"}
                if "bootstrap_port" in spec:
                    spec["bootstrap_port"] = int(values["--disaggregation-bootstrap-port"])
                if not protocols:
                    spec.pop("pairing_protocol")
                workers.append(spec)
        assert {w.get("pairing_protocol") for w in workers} == (
            {"sglang-0.5.23", "sglang-0.5.6.post2"} if protocols else {None}
        )
        router, port = _router_with(workers, tmp_path)
        procs.append(router)
        chat = {"model": "DeepSeek-V3.2", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}
        before = len(events(log, "request"))
        codes = [http("POST", port, "/v1/chat/completions", chat)[0] for _ in range(24)]
        if protocols:
            assert codes == [200] * 24, codes
        else:
            assert any(code != 200 for code in codes), codes  # mixed pairs were built and failed
        assert len(events(log, "request")) > before  # the engines saw the requests
    finally:
        for proc in reversed(procs):
            stop(proc)
