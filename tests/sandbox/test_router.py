"""The real PD router (smg) in front of stand-in prefill and decode servers, on the sandbox hosts, with exactly
the commands, environment and router membership pdfleet plans for inventories/sandbox.yaml. (The serving layer's
units and health gate come later; here the plan's argv and the membership agent run as transient systemd units.)"""

from __future__ import annotations

import json
import shlex
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from pdfleet.inventory import load
from pdfleet.render import members_file
from pdfleet.runtimeplan import serving_venv
from pdfleet.serving import plan
from tests.sandbox.conftest import ROOT, on_host

TEST_UNIT = "pdfleet-test-{}"


def _install(host: str, venvs: list[tuple[str, str]], index: str) -> None:
    """Virtual environments [(path, packages)] from the image's package index, one host at a time."""
    script = "set -e; apt-get install -y -q python3-venv >/dev/null; mkdir -p /models/DeepSeek-V3.2"
    for venv, packages in venvs:
        script += (
            f"; test -x {venv}/bin/python3 || python3 -m venv {venv}"
            f"; {venv}/bin/pip install -q --no-cache-dir --index-url {index} {packages}"
        )
    on_host(host, script, timeout=300)


def _run_unit(host: str, name: str, argv, env: dict) -> None:
    setenv = " ".join(f"--setenv={shlex.quote(f'{k}={v}')}" for k, v in env.items())
    on_host(host, f"systemd-run --quiet --unit={TEST_UNIT.format(name)} {setenv} {shlex.join(argv)}")


def _get(url: str, timeout: float = 5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, json.loads(response.read() or b"null")


def test_real_router_in_pd_mode_returns_200_for_a_chat_completion(sandbox):
    cluster = load(ROOT / "inventories/sandbox.py")
    serving = plan(cluster)
    index = cluster.runtime.index_url
    venv = serving_venv(cluster)
    venvs: dict[str, list[tuple[str, str]]] = {s.host: [(venv, "sglang==0.5.23")] for s in serving.servers}
    venvs.setdefault(serving.router.host, []).append((cluster.router.venv, f"smg=={cluster.router.version}"))
    with ThreadPoolExecutor(max_workers=len(venvs)) as pool:
        list(pool.map(lambda host: _install(host, venvs[host], index), venvs))
    units = []
    try:
        for spec in serving.servers:
            # without API keys (tests/test_apikeys.py and the pd deploy cover them): no key file needed here
            _run_unit(spec.host, spec.instance, spec.launcher + spec.server_args, spec.env)
            units.append((spec.host, spec.instance))
        for spec in serving.servers:
            if spec.serves_api:
                deadline = time.monotonic() + 60
                while True:
                    result = on_host(
                        spec.host,
                        f'python3 -c "import urllib.request as u; '
                        f"print(u.urlopen('http://127.0.0.1:{spec.http_port}/health').status)\"",
                        check=False,
                    )
                    if result.stdout.strip() == "200":
                        break
                    assert time.monotonic() < deadline, f"{spec.instance} never became healthy: {result.stderr}"
                    time.sleep(1)
        keyless = serving.router.argv[: len(serving.router.argv) - len(serving.router.key_args)]
        _run_unit(serving.router.host, "router", keyless, {})
        units.append((serving.router.host, "router"))
        # The router starts with no worker: the membership agent registers them through its worker API.
        agent = (ROOT / "pdfleet/onhost/router_members.py").read_text()
        members = json.loads(members_file(serving).content)
        members.pop("key_file", None)
        keyless_members = json.dumps(members, indent=1) + "\n"
        scratch = "/var/tmp/pdfleet-test-router"
        on_host(
            serving.router.host,
            f"mkdir -p {scratch} && cat > {scratch}/agent.py <<'PDFLEET_EOF'\n{agent}PDFLEET_EOF\n"
            f"cat > {scratch}/members.json <<'PDFLEET_EOF'\n{keyless_members}PDFLEET_EOF",
        )
        _run_unit(
            serving.router.host, "members", ["python3", f"{scratch}/agent.py", "run", f"{scratch}/members.json"], {}
        )
        units.append((serving.router.host, "members"))

        deadline = time.monotonic() + 90
        while True:
            try:
                status, body = _get(f"{serving.router.url}/readiness")
                # 200 comes with one healthy prefill and one decode: wait for every worker.
                if status == 200 and body["healthy_workers"] == 3:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the router never became ready"
            time.sleep(1)
        assert body["healthy_workers"] == 3

        request = urllib.request.Request(
            f"{serving.router.url}/v1/chat/completions",
            data=json.dumps(
                {"model": "DeepSeek-V3.2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            answer = json.loads(response.read())
        assert answer["choices"][0]["message"]["role"] == "assistant"

        status, workers = _get(f"{serving.router.url}/workers")
        assert {w["runtime_type"] for w in workers["workers"]} == {"sglang"}

        decode_head = next(s for s in serving.servers if s.role == "decode" and s.rank == 0)
        log = on_host(decode_head.host, "cat /var/log/sglang-standin/launch.jsonl").stdout
        events = [json.loads(line) for line in log.splitlines()]
        chats = [e for e in events if e.get("event") == "request" and e.get("path") == "/v1/chat/completions"]
        assert chats, "the decode server received no chat completion"
        assert isinstance(chats[-1]["bootstrap_room"], int)
        assert chats[-1]["bootstrap_port"] == 8998
        assert chats[-1]["bootstrap_host"] in {s.address for s in serving.servers if s.role == "prefill"}
        launch = next(e for e in events if e.get("event") == "launch")
        assert launch["argv"] == list(decode_head.server_args)
        assert launch["env"]["NCCL_IB_GID_INDEX"] == "3" and launch["env"]["MC_IB_TC"] == "98"
    finally:
        for host, name in units:
            on_host(host, f"systemctl stop {TEST_UNIT.format(name)}", check=False)
