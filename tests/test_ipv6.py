"""IPv6 node addresses (issue 17, item 5): what `pdfleet check` accepts comes out right in every URL, command line
and file, and the real consumers take it.

The cluster is prod's, its addresses moved to fd00:10::11..14. Every rendered file and every command line or URL
the code builds holds no `ADDRESS:PORT` without brackets, and every URL parses to the node's address and port.
SGLang's own code (both pinned wheels) reads the rendered --dist-init-addr; the real smg router on ::1 serves a
chat completion through stand-in engines listening on ::1, registered at `http://[::1]:PORT`. A cluster mixing
IPv4 and IPv6 addresses is refused, naming file, line, field, found and expected.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pdfleet import benchplan, netaddr
from pdfleet.bluegreenplan import plan_blue_green
from pdfleet.cluster import load_cluster
from pdfleet.errors import InventoryError
from pdfleet.inventory import load
from pdfleet.monitoringplan import targets
from pdfleet.onhost.weights import Peer
from pdfleet.render import render
from pdfleet.replaceplan import plan_replacement
from pdfleet.serving import plan
from pdfleet.weightsplan import peers
from roles.deepgemm import cache_url, copy_script
from tests.test_parsers import PARSERS, _need, sglang_parse, smg_parse
from tests.test_standin_sglang import (  # noqa: F401 - standin is a fixture
    clean_env,
    events,
    free_port,
    http,
    run_cluster,
    standin,
    start_router,
    stop,
)

ROOT = Path(__file__).resolve().parent.parent
PDFLEET = [os.fspath(Path(os.sys.executable).parent / "pdfleet")]
V4_TO_V6 = {f"10.10.0.{n}": f"fd00:10::{n}" for n in (11, 12, 13, 14)}
V6 = set(V4_TO_V6.values())
# The addresses a rendered file may hold: the nodes', the loopback and the wildcard.
KNOWN = sorted(V6 | {"::1", "::"}, key=len, reverse=True)
# One of them followed by ":PORT" and not inside brackets (nor the tail of a longer address).
BARE = re.compile(r"(?<![0-9A-Fa-f:\[])(" + "|".join(re.escape(a) for a in KNOWN) + r"):\d")
URL = re.compile(r"\b(?:https?|rsync|tcp)://[^\s'\"\\,;()]+")


def v6_inventory(directory: Path, text_edit=None) -> Path:
    """prod's inventory with IPv6 node addresses and admin network (fd00:10::/64); returns the .yaml path."""
    text = (ROOT / "inventories/prod.yaml").read_text()
    for old, new in V4_TO_V6.items():
        assert f"address: {old}\n" in text
        text = text.replace(f"address: {old}\n", f"address: {new}\n")
    assert "[10.10.0.0/24]" in text
    text = text.replace("[10.10.0.0/24]", "[fd00:10::/64]")
    if text_edit:
        text = text_edit(text)
    path = directory / "prod6.yaml"
    path.write_text(text)
    (directory / "prod6.py").write_text((ROOT / "inventories/prod.py").read_text())
    return path


DECODE_HCAS = "[mlx5_0, mlx5_1, mlx5_2, mlx5_5, mlx5_6, mlx5_7, mlx5_8, mlx5_9]"
# One spare per serving node (blue/green needs them all; a replacement one), the decode's with its HCAs.
SPARES = "".join(
    f"  - name: spare-{n}\n    address: fd00:10::{21 + n}\n" + (f"    hcas: {DECODE_HCAS}\n" if n >= 2 else "")
    for n in range(4)
)


def with_spares(text: str) -> str:
    anchor = f"    hcas: {DECODE_HCAS}\n\n# Serving instances."
    assert anchor in text
    return text.replace(anchor, anchor.replace("\n\n", "\n" + SPARES + "\n", 1))


@pytest.fixture(scope="module")
def v6(tmp_path_factory):
    path = v6_inventory(tmp_path_factory.mktemp("v6"))
    cluster = load_cluster(path)
    spared = v6_inventory(tmp_path_factory.mktemp("v6spares"), with_spares)
    return {"path": path, "cluster": cluster, "plan": plan(cluster), "spared": spared}


def bare(text: str) -> list[str]:
    return [text[max(0, m.start() - 30) : m.end() + 10] for m in BARE.finditer(text)]


def everything(v6) -> dict[str, str]:
    """Every rendered file and every command line, URL and address-with-port the code builds, by name."""
    serving, cluster = v6["plan"], v6["cluster"]
    out = {
        f"{host}:{path}": rendered.content
        for host, paths in render(serving).items()
        for path, rendered in paths.items()
    }
    for spec in serving.servers:
        out[f"argv {spec.host}"] = " ".join(spec.argv)
        out[f"precompile argv {spec.host}"] = " ".join(spec.precompile_argv)
        out[f"env {spec.host}"] = json.dumps(spec.env)
        out[f"urls {spec.host}"] = f"{spec.url} {spec.local_url}"
        if spec.nnodes > 1:
            out[f"peer watch {spec.host}"] = " ".join(serving.peer_watch_argv(spec.host))
        source = serving.deep_gemm_source(spec.host)
        if source:
            address = cluster.node(source).address
            out[f"deepgemm copy {spec.host}"] = copy_script(
                spec.deep_gemm_dir, "/k", source, address, cluster.share_port, 60, True, 30
            )
        for name in serving.deep_gemm_peers(spec.host):
            out[f"deepgemm peer {spec.host} {name}"] = cache_url(
                cluster.node(name).address, cluster.share_port, spec.deep_gemm_dir
            )
    router = serving.router
    out["router"] = " ".join([*router.argv, router.url, router.local_url, *(w.url for w in router.workers)])
    for node in cluster.nodes:
        out[f"stager peers {node.name}"] = " ".join(Peer(**p).url for p in peers(cluster, node.name))
    out["targets"] = " ".join(t.address for t in targets(cluster))
    bench = benchplan.plan(cluster, serving, benchplan.options("all"), "run-1")
    out["bench"] = json.dumps({"url": bench.router_url, "argv": [r.argv for r in bench.runs], "env": bench.env})
    spared = v6["spared"]
    out["replace"] = plan_replacement(load_cluster(spared), spared, "decode-1", "spare-2", True).router_url
    out["blue/green"] = plan_blue_green(load_cluster(spared), spared, "0.5.6.post2").router_url
    return out


def test_an_ipv6_inventory_passes_the_check_and_shows_bracketed_endpoints(v6):
    result = subprocess.run(
        [*PDFLEET, "check", str(v6["path"].with_suffix(".py"))], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "[fd00:10::13]:5757" in result.stdout
    assert "http://[fd00:10::11]:8000" in result.stdout
    assert not bare(result.stdout), bare(result.stdout)


def test_no_ipv6_address_meets_a_port_without_brackets(v6):
    found = {name: bare(text) for name, text in everything(v6).items()}
    assert {name: hits for name, hits in found.items() if hits} == {}


def test_every_url_parses_to_a_node_address_and_a_port(v6):
    seen = set()
    for name, text in everything(v6).items():
        for url in URL.findall(text):
            parts = urlsplit(url)
            port = parts.port  # raises on a bare IPv6 host whose tail is not a port; else reads a wrong port
            if ":" in (parts.hostname or ""):
                assert isinstance(port, int), (name, url)
                assert parts.hostname in V6 | {"::1"}, (name, url)
                assert parts.netloc.startswith(f"[{parts.hostname}]:"), (name, url)
                seen.add((parts.scheme, parts.hostname, parts.port))
    # the workers, the peers' health, the router, its local URL, the shares
    assert {("http", a, 8055) for a in V6} <= seen
    assert {("http", "fd00:10::11", 8000), ("http", "::1", 8000), ("http", "::1", 8055)} <= seen
    assert {("rsync", a, 8730) for a in V6} & seen


def test_the_expected_ipv6_strings(v6):
    files = {host: {p: f.content for p, f in paths.items()} for host, paths in render(v6["plan"]).items()}
    for host in ("decode-0", "decode-1"):
        unit = files[host]["/etc/systemd/system/sglang-decode.service"]
        assert '--dist-init-addr "[fd00:10::13]:5757" \\\n' in unit  # systemd quotes the brackets
        assert "--host :: \\\n" in unit
        assert "http://[::1]:8055/health;" in unit  # the start check, on the loopback of the server's family
    assert (
        '--peer "http://[fd00:10::13]:8055/health"'
        in files["decode-1"]["/etc/systemd/system/sglang-decode-peer-watch.service"]
    )
    members = json.loads(files["prefill-0"]["/etc/pdfleet/router-members.json"])
    assert members["router"] == "http://[::1]:8000"
    assert sorted(w["spec"]["url"] for w in members["workers"]) == [
        "http://[fd00:10::11]:8055",
        "http://[fd00:10::12]:8055",
        "http://[fd00:10::13]:8055",
    ]
    router_unit = files["prefill-0"]["/etc/systemd/system/pdfleet-router.service"]
    assert "--host :: \\\n" in router_unit and "--prometheus-host :: \\\n" in router_unit
    assert "serving http://[fd00:10::11]:8000\n" in router_unit
    sglang_targets = json.loads(files["prefill-0"]["/etc/prometheus/targets/sglang.json"])
    assert sorted(t for group in sglang_targets for t in group["targets"]) == [f"[{a}]:8055" for a in sorted(V6)]
    assert json.loads(files["prefill-0"]["/etc/prometheus/targets/smg.json"])[0]["targets"] == ["[fd00:10::11]:29000"]
    assert "worker: http://[fd00:10::13]:8055\n" in files["prefill-0"]["/etc/prometheus/rules/pdfleet.rules.yml"]
    # rsyncd takes the bare address to listen on and the bare peers to answer
    share = files["decode-0"]["/etc/pdfleet/rsyncd.conf"]
    assert "\naddress = fd00:10::13\n" in share and "\nhosts allow = fd00:10::11 fd00:10::12 fd00:10::14\n" in share
    env = files["decode-1"]["/etc/pdfleet/decode.env"]
    assert "\nSGLANG_HOST_IP=fd00:10::14\n" in env and "\nNCCL_SOCKET_FAMILY=AF_INET6\n" in env
    bench = benchplan.plan(v6["cluster"], v6["plan"], benchplan.options(), "run-1")
    assert bench.router_url == "http://[::1]:8000" and "::1" in bench.env["NO_PROXY"].split(",")
    # an IPv4 cluster gets neither (its rendered files are the golden ones)
    prod = plan(load(ROOT / "inventories/prod.py"))
    assert not {"SGLANG_HOST_IP", "NCCL_SOCKET_FAMILY"} & {k for s in prod.servers for k in s.env}
    assert "--host" in prod.router.router_args and "::" not in prod.router.router_args


def test_the_helpers():
    assert netaddr.host_port("10.0.0.1", 80) == "10.0.0.1:80"
    assert netaddr.host_port("node-1", 80) == "node-1:80"
    assert netaddr.host_port("fd00::1", 80) == "[fd00::1]:80"
    assert netaddr.host_port("[fd00::1]", 80) == "[fd00::1]:80"
    assert netaddr.url("fd00::1", 80, "/health") == "http://[fd00::1]:80/health"
    assert (netaddr.wildcard("fd00::1"), netaddr.loopback("fd00::1")) == ("::", "::1")
    assert (netaddr.wildcard("10.0.0.1"), netaddr.loopback("10.0.0.1")) == ("0.0.0.0", "127.0.0.1")


@pytest.mark.parametrize(
    ("old", "new", "found", "expected"),
    [
        (
            "address: fd00:10::14\n",
            "address: 10.10.0.14\n",
            "found IPv4 address '10.10.0.14' (node 'prefill-0' has IPv6 address 'fd00:10::11')",
            "expected every node's address of one family, IPv6 like node 'prefill-0'",
        ),
        (
            "address: fd00:10::14\n",
            "address: fe80::14\n",
            "found 'fe80::14'",
            "expected a global or unique-local IPv6 address (fd00::/8 ...), not a link-local or scoped one",
        ),
    ],
)
def test_mixed_families_and_link_local_addresses_are_refused(tmp_path, old, new, found, expected):
    path = v6_inventory(tmp_path, lambda text: text.replace(old, new))
    with pytest.raises(InventoryError) as caught:
        load_cluster(path)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "name: decode-1" in text)
    assert str(caught.value).startswith(f"{path}:{line}: node 'decode-1': field 'address': {found}, {expected}")


# ---------------------------------------------------------------------------------------------------------------
# the real consumers


def distinit(version: str, values: list[str]) -> dict:
    python, site = PARSERS / "venv/bin/python", PARSERS / f"sglang-{version}"
    _need(python)
    _need(site)
    result = subprocess.run(
        [str(python), str(ROOT / "tests/tools/sglang_distinit.py")],
        input=json.dumps(values),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(site)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert out["sglang_version"] == version
    return out["results"]


@pytest.mark.parsers
@pytest.mark.parametrize("version", ["0.5.6.post2", "0.5.23"])
def test_sglang_reads_the_rendered_dist_init_addr(v6, version):
    cluster = v6["cluster"].with_sglang_version(version)
    serving = plan(cluster)
    decode = [s for s in serving.servers if s.instance == "decode"]
    rendered = {s.server_args[s.server_args.index("--dist-init-addr") + 1] for s in decode}
    assert rendered == {"[fd00:10::13]:5757"}
    results = distinit(version, [*rendered, "fd00:10::13:5757", "[::1]:5757"])
    good = results["[fd00:10::13]:5757"]
    assert good["ok"], good
    assert good["host"].strip("[]") == "fd00:10::13" and good["port"] == 5757
    assert good["tokenizer_ipc_name"] == "tcp://[fd00:10::13]:5758"  # the ZMQ endpoint SGLang derives
    assert results["[::1]:5757"]["ok"]
    assert not results["fd00:10::13:5757"]["ok"]  # what the render wrote before: SGLang cannot read it
    # and the whole command line through the version's own argparse parser
    parsed = sglang_parse(version, [{"id": s.host, "kind": "server", "args": list(s.server_args)} for s in decode])
    for result in parsed.values():
        assert result["ok"], result["error"]
        assert result["namespace"]["dist_init_addr"] == "[fd00:10::13]:5757"
        assert result["namespace"]["host"] == "::"


@pytest.mark.parsers
def test_smg_parses_the_ipv6_router_arguments(v6):
    result = smg_parse([{"id": "router", "args": list(v6["plan"].router.router_args)}])["router"]
    assert result["ok"], result


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def v6_cluster(v6, standin, tmp_path_factory):  # noqa: F811
    if not _ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (::1)")
    yield from run_cluster(standin, tmp_path_factory.mktemp("prod6"), v6["plan"], "::1")


@pytest.mark.parsers
def test_the_real_smg_router_on_ipv6_loopback_serves_through_bracketed_worker_urls(v6_cluster, standin):  # noqa: F811
    smg = standin["smg"]
    _need(smg)
    router, port, body = start_router(v6_cluster, smg, "router-v6")
    try:
        assert json.loads(body)["healthy_workers"] == 3
        workers = json.loads(http("GET", port, "/workers", host="::1")[1])["workers"]
        urls = sorted(w["url"] for w in workers)
        assert len(urls) == 3 and all(re.fullmatch(r"http://\[::1\]:\d+", u) for u in urls), urls
        log = v6_cluster["log"]
        before = len(events(log, "request"))
        chat = {"model": "DeepSeek-V3.2", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8}
        status, answer = http("POST", port, "/v1/chat/completions", chat, host="::1")
        assert status == 200, answer
        assert json.loads(answer)["choices"][0]["message"]["content"]
        deadline = time.monotonic() + 5
        while len(events(log, "request")) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        decode_side = [r for r in events(log, "request")[before:] if r["role"] == "decode"]
        assert decode_side and decode_side[0]["status"] == 200
        # smg names the prefill's bootstrap server by its URL's host; the decode reached it there
        assert decode_side[0]["bootstrap_host"] == "[::1]", decode_side[0]
        assert events(log, "bootstrap_request")
    finally:
        stop(router)


@pytest.mark.parametrize(
    ("addr", "message"),
    [
        ("::1:5757", "--dist-init-addr '::1:5757': an IPv6 address must be in brackets, [::1]:5757"),
        ("[::1]5757", "--dist-init-addr '[::1]5757' is not [IPV6]:PORT"),
    ],
)
def test_the_stand_in_refuses_an_unbracketed_ipv6_dist_init_addr_as_sglang_does(tmp_path, standin, addr, message):  # noqa: F811
    if not _ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (::1)")
    args = ["--model-path", "m", "--host", "::1", "--port", str(free_port("::1")), "--nnodes", "2", "--node-rank", "1"]
    result = subprocess.run(
        [str(standin["python"]), "-m", "sglang.launch_server", *args, "--dist-init-addr", addr],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(SGLANG_STANDIN_LOG=str(tmp_path / "log.jsonl"), SGLANG_STANDIN_REQUIRE_MODEL_PATH="0"),
    )
    assert result.returncode == 1 and f"[sglang stand-in] ERROR: {message}" in result.stderr, result.stderr
