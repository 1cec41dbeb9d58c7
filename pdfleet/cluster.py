"""The cluster model: one validated, immutable description of nodes, serving instances, router and pins.

`load_cluster(path)` reads `inventories/NAME.yaml` and either returns a `Cluster` or raises `InventoryError`
listing every problem, one line each, before any host is contacted. Every knob not marked required has a
default; the default and what it does are written next to where it is read, and repeated in
`inventories/prod.yaml` and README.md.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path, PurePosixPath

from pdfleet import dialects, pastedsecrets
from pdfleet.errors import InventoryError, Problem
from pdfleet.hostconfig import HostConfig, read_host_config
from pdfleet.monitoringconfig import Monitoring, read_monitoring_config
from pdfleet.reader import NAME_RE, Problems, Section, show
from pdfleet.securityconfig import Security, read_security_config
from pdfleet.verifyconfig import VerifyConfig, read_verify_config
from pdfleet.yamlsource import load_yaml

ROLES = ("prefill", "decode")
RUNTIME_KINDS = ("venv", "container")
DOCKER_SOURCES = ("docker-repo", "os-archive")
PROFILES = ("deepseek-v3.2",)
ROUTER_POLICIES = ("random", "round_robin", "cache_aware", "power_of_two")
HCA_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
IFACE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
DIGEST_RE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$")
REVISION_RE = re.compile(r"^[0-9a-f]{40}$")
# A hub endpoint: scheme, host, optional port and path; no user:password (tokens go in token_env / token_file).
ENDPOINT_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$")
HUB_ENDPOINT = "https://huggingface.co"
VERSION_RE = re.compile(r"^[0-9][0-9A-Za-z.+-]*$")
# With --dist-init-addr HOST:PORT, SGLang binds PORT (torch.distributed) and the next ports for its own
# sockets on node rank 0 (PORT+1..+5 in 0.5.6.post2, PORT+1..+6 in 0.5.23: PortArgs in sglang/srt/server_args.py),
# and the DP-attention handshake on PORT+13 (a constant in both: DP_ATTENTION_HANDSHAKE_PORT_DELTA).
DIST_INIT_PORT_OFFSETS = (0, 1, 2, 3, 4, 5, 6, 13)
# Per-library overrides of the RoCE traffic class and GID index, and the environment variables that set them.
NETWORK_LIBRARIES = {
    "nccl": ("NCCL_IB_TC", "NCCL_IB_GID_INDEX"),
    "nvshmem": ("NVSHMEM_IB_TRAFFIC_CLASS", "NVSHMEM_IB_GID_INDEX"),
    "mooncake": ("MC_IB_TC", "MC_GID_INDEX"),
}


@dataclass(frozen=True)
class Node:
    name: str
    address: str
    gpus: int
    gpu_model: str
    management_interface: str
    hcas: tuple[str, ...]
    nvswitch: bool = True
    line: int | None = None


@dataclass(frozen=True)
class Member:
    """A node's place in a serving instance."""

    node: str
    rank: int


@dataclass(frozen=True)
class Ports:
    http: int
    bootstrap: int
    dist_init: int


@dataclass(frozen=True)
class Instance:
    name: str
    role: str
    members: tuple[Member, ...]  # sorted by rank; rank 0 serves the HTTP API
    tp: int
    dp: int
    ep: int
    ports: Ports
    env: dict = field(default_factory=dict, hash=False)
    extra_args: tuple[str, ...] = ()
    line: int | None = None

    @property
    def nnodes(self) -> int:
        return len(self.members)

    @property
    def head(self) -> str | None:
        """The node of rank 0: the HTTP API, the bootstrap server and the dist-init address live there."""
        return self.members[0].node if self.members else None


@dataclass(frozen=True)
class Network:
    traffic_class: int
    gid_index: int


@dataclass(frozen=True)
class RouterHealth:
    """The router's probes of every worker's /health (smg --health-*)."""

    interval_secs: int
    timeout_secs: int
    failure_threshold: int
    success_threshold: int


@dataclass(frozen=True)
class CircuitBreaker:
    """Per role: smg records a PD request's failure against both its prefill and its decode worker, so a breaker
    on the decode opens when a prefill dies (docs/router-resilience.md)."""

    prefill: bool
    decode: bool
    failure_threshold: int
    timeout_secs: int


@dataclass(frozen=True)
class Retries:
    attempts: int  # smg's --retry-max-retries counts the first attempt: 1 = no retry
    initial_backoff_ms: int
    max_backoff_ms: int


@dataclass(frozen=True)
class Router:
    node: str
    port: int
    prometheus_port: int
    version: str
    prefill_policy: str
    decode_policy: str
    worker_startup_timeout_secs: int
    venv: str
    health: RouterHealth
    circuit_breaker: CircuitBreaker
    retries: Retries
    request_timeout_secs: int
    shutdown_grace_secs: int
    drain_timeout_secs: int
    membership_interval_secs: int


@dataclass(frozen=True)
class Model:
    profile: str
    repo: str
    revision: str
    path: str
    served_name: str
    endpoint: str
    token_env: str
    token_file: str | None
    checksums: bool
    seed: str | None
    download_workers: int
    free_margin_gb: int


@dataclass(frozen=True)
class Runtime:
    kind: str
    venvs: str
    keep: int
    image: str | None
    index_url: str | None
    docker_version: str
    containerd_version: str
    docker_source: str
    docker_mirror: str | None
    pull_retries: int
    image_size_gb: int
    wheels: dict = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Ssh:
    user: str
    port: int
    key: str | None
    known_hosts: str
    strict_host_keys: bool


@dataclass(frozen=True)
class PeerWatch:
    """How the ranks of a multi-node instance notice a lost peer (pdfleet/onhost/peer_watch.py)."""

    interval_secs: int
    failures: int
    timeout_secs: int


@dataclass(frozen=True)
class Cluster:
    name: str
    source: str
    nodes: tuple[Node, ...]
    instances: tuple[Instance, ...]
    router: Router
    model: Model
    sglang_version: str
    debug_logging: bool
    runtime: Runtime
    network: Network
    ssh: Ssh
    deep_gemm_cache: str
    share_port: int
    share_silent_timeout: int
    share_copies_per_source: int
    precompile_timeout: int
    start_timeout: int
    peer_watch: PeerWatch
    host: HostConfig
    verify: VerifyConfig  # the preflight's thresholds (`verify:`, pdfleet/verifyconfig.py)
    monitoring: Monitoring  # exporters, Prometheus, Grafana (`monitoring:`, pdfleet/monitoringconfig.py)
    security: Security  # firewall and API keys (`security:`, pdfleet/securityconfig.py)
    env: dict = field(default_factory=dict, hash=False)

    @cached_property
    def _nodes_by_name(self) -> dict[str, Node]:
        return {node.name: node for node in self.nodes}

    @cached_property
    def _placements(self) -> dict[str, tuple[Instance, int]]:
        return {m.node: (instance, m.rank) for instance in self.instances for m in instance.members}

    @cached_property
    def _ports_by_node(self) -> dict[str, list[int]]:
        ports: dict[str, set[int]] = {}
        for owner, port, *_ in port_claims(self):
            if port is not None:
                ports.setdefault(owner, set()).add(port)
        return {owner: sorted(found) for owner, found in ports.items()}

    def node(self, name: str) -> Node:
        return self._nodes_by_name[name]

    @property
    def monitoring_node(self) -> str | None:
        """The node running Prometheus and Grafana (monitoring.node, else the router's), None when monitoring is off."""
        if not self.monitoring.enabled:
            return None
        return self.monitoring.node or self.router.node

    def placement(self, node_name: str) -> tuple[Instance, int] | None:
        """The instance a node serves in and its rank there, or None for a spare node."""
        return self._placements.get(node_name)

    def with_sglang_version(self, version: str) -> Cluster:
        if version not in dialects.DIALECTS:
            expected = f"one of {', '.join(dialects.DIALECTS)}"
            raise InventoryError([Problem(self.source, None, "sglang", "version", repr(version), expected)])
        return replace(self, sglang_version=version)


HOST_NAME_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")


def _address_problem(value) -> tuple[str, str] | None:
    """None for an IP address (v4 or v6), else (found, expected). Node addresses must be addresses, not host
    names: the firewall's rules, SGLang's dist-init address and the router's worker URLs are written with them."""
    if not isinstance(value, str):
        return show(value), "an IP address (v4 or v6) like 10.10.0.11"
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    if "/" in value:
        return repr(value), "an IP address without a /prefix (a node address is one host, like 10.10.0.11)"
    host, _, port = value.rpartition(":")
    if port.isdigit() and re.match(r"^[0-9.]+$", host) or (host.startswith("[") and host.endswith("]")):
        return repr(value), "an IP address without a port, like 10.10.0.11 (ssh.port sets the SSH port)"
    if re.match(r"^[0-9.]+$", value):
        return repr(value), "an IPv4 address: four numbers from 0 to 255, like 10.10.0.11"
    if ":" in value:
        return repr(value), "an IPv6 address like fd00::11"
    if HOST_NAME_RE.match(value):
        return (
            f"{value!r} (a host name)",
            "an IP address (v4 or v6), not a host name: the firewall, dist-init and worker URLs need addresses",
        )
    return repr(value), "an IP address (v4 or v6) like 10.10.0.11"


def _absolute(value: str) -> bool:
    return PurePosixPath(value).is_absolute() and ".." not in PurePosixPath(value).parts


def load_cluster(path: str | Path, display_name: str | None = None) -> Cluster:
    """Read and validate an inventory YAML file. Raises InventoryError with every problem found."""
    path = Path(path)
    name = display_name or str(path)
    data = load_yaml(path, name)
    problems = Problems(name)
    cluster = _read_cluster(Section(data, "inventory", problems), problems, name)
    secrets, secret_lines, secret_texts = pastedsecrets.find(data, name)
    if secrets:
        # Problems on a secret's line follow from it (an unknown `token:`, a token where a name belongs) and
        # might quote it: the secret's own problem replaces them.
        problems.items = [
            p for p in problems.items if p.line not in secret_lines and not any(text in str(p) for text in secret_texts)
        ] + secrets
    if problems.items:
        raise InventoryError(problems.items)
    assert cluster is not None
    return cluster


def _read_cluster(top: Section, problems: Problems, file: str) -> Cluster | None:
    meta = top.section("cluster", "cluster", required=True)
    cluster_name = meta.name("name", required=True)
    meta.finish()

    ssh_s = top.section("ssh", "ssh")
    ssh = Ssh(
        user=ssh_s.string("user", "root"),  # account pyinfra logs in as
        port=ssh_s.port("port", 22),  # sshd port on every node
        key=ssh_s.string("key", None),  # private key file; None = ssh-agent / default keys
        known_hosts=ssh_s.string("known_hosts", "~/.ssh/known_hosts"),  # the pinned host keys (`pdfleet trust-host`)
        # true: a node whose key is not pinned is refused; false: pinned at first contact (ssh's accept-new).
        # A key that differs from its pin is refused either way (a re-imaged node: `pdfleet replace-node`).
        strict_host_keys=ssh_s.boolean("strict_host_keys", True),
    )
    ssh_s.finish()

    defaults = top.section("defaults", "defaults")
    default_gpus = defaults.integer("gpus", 8, lo=1, hi=64)  # GPUs per node
    default_gpu_model = defaults.string("gpu_model", "H200")  # what preflight expects nvidia-smi to report
    default_iface = defaults.get(  # interface for NCCL/Gloo/NVSHMEM bootstrap sockets (the management network)
        "management_interface", str, None, expected="an interface name", check=lambda v: bool(IFACE_RE.match(v))
    )
    default_hcas = defaults.string_list(  # RDMA HCAs for Mooncake, NCCL and NVSHMEM, in GPU order
        "hcas",
        None,
        check=lambda v: bool(HCA_RE.match(v)),
        expected="a list of HCA names like mlx5_0",
        item="an HCA name like mlx5_0",
        unique="HCA",
    )
    if default_hcas is None and not defaults.has("hcas"):
        default_hcas = ()  # None: given but unreadable (reported), so nodes' HCAs are not checked again
    default_nvswitch = defaults.boolean("nvswitch", True)  # HGX boards: the fabric manager must run
    defaults.finish()

    nodes, nodes_complete = _read_nodes(
        top, problems, default_gpus, default_gpu_model, default_iface, default_hcas, default_nvswitch
    )
    node_by_name = {n.name: n for n in nodes}
    # A reference to a node that is not there is its own problem only when every node could be read.
    known = node_by_name if nodes_complete else None

    net_s = top.section("network", "network", required=True)
    network = Network(
        traffic_class=net_s.integer("traffic_class", required=True, lo=0, hi=255),  # RoCE TC of the lossless class
        gid_index=net_s.integer("gid_index", required=True, lo=0, hi=255),  # RoCEv2 GID index on every HCA
    )
    overrides: dict[str, dict[str, tuple[int | None, int | None]]] = {}
    for library in NETWORK_LIBRARIES:
        lib_s = net_s.section(library)
        overrides[library] = {
            "traffic_class": (lib_s.integer("traffic_class", None, lo=0, hi=255), lib_s.line_of("traffic_class")),
            "gid_index": (lib_s.integer("gid_index", None, lo=0, hi=255), lib_s.line_of("gid_index")),
        }
        lib_s.finish()
    net_s.finish()

    cluster_env = top.string_map("env")  # extra environment for every serving process

    instances = _read_instances(top, problems, node_by_name, known)

    model_s = top.section("model", "model", required=True)
    model_path = model_s.string("path", required=True)
    if model_path is not None and not _absolute(model_path):
        model_s.error("path", repr(model_path), "an absolute path without '..' (the same on every node)")
    revision = model_s.string("revision", required=True)
    if revision is not None and not REVISION_RE.match(revision):
        model_s.error("revision", repr(revision), "a pinned commit: 40 lowercase hex characters, not a branch")
    endpoint = model_s.string("endpoint", HUB_ENDPOINT)  # the hub, or a mirror speaking its API
    if endpoint is not None and not ENDPOINT_RE.match(endpoint):
        model_s.error("endpoint", repr(endpoint), "an http(s) URL without credentials, like https://huggingface.co")
    endpoint = endpoint.rstrip("/") if endpoint else endpoint
    verify_mode = model_s.get(  # sizes: every file present at its size; checksums: also sha256 of every shard
        "verify", str, "sizes", expected="sizes or checksums", check=lambda v: v in ("sizes", "checksums")
    )
    seed = model_s.string("seed", nodes[0].name if nodes else None)  # the one node that downloads from the hub
    if seed is not None and known and seed not in node_by_name:
        model_s.error("seed", repr(seed), f"a node listed under nodes: {', '.join(n.name for n in nodes)}")
    model = Model(
        profile=model_s.get(  # serving recipe: flags and environment for this model
            "profile", str, "deepseek-v3.2", expected=f"one of {', '.join(PROFILES)}", check=lambda v: v in PROFILES
        ),
        repo=model_s.string("repo", required=True),  # hub repository id
        revision=revision,
        path=model_path,
        served_name=model_s.string("served_name", "DeepSeek-V3.2"),  # model name clients send
        endpoint=endpoint,
        token_env=model_s.env_name("token_env", "HF_TOKEN"),  # environment variable holding the hub token, if any
        token_file=model_s.string("token_file", None),  # or a root-only file holding it (relative to this file)
        checksums=verify_mode == "checksums",
        seed=seed,
        download_workers=model_s.integer("download_workers", 8, lo=1, hi=64),  # parallel downloads on the seed
        free_margin_gb=model_s.integer("free_margin_gb", 20, lo=0),  # GB left free on the disk after staging
    )
    model_s.finish()

    sg = top.section("sglang", "sglang", required=True)
    version = sg.string("version", required=True)
    if version is not None and version not in dialects.DIALECTS:
        sg.error("version", repr(version), f"a version pdfleet has a flag dialect for: {', '.join(dialects.DIALECTS)}")
    debug_logging = sg.boolean("debug_logging", False)  # the recipe's request logging / histograms / cache report
    deep_gemm_cache = sg.string("deep_gemm_cache", "/var/cache/pdfleet/deep_gemm")  # persistent DeepGEMM kernels
    if deep_gemm_cache is not None and not _absolute(deep_gemm_cache):
        sg.error("deep_gemm_cache", repr(deep_gemm_cache), "an absolute path")
    precompile_timeout = sg.integer("precompile_timeout", 3600, lo=60)  # seconds for compile_deep_gemm
    start_timeout = sg.integer("start_timeout", 3600, lo=60)  # seconds from start to a healthy /health
    pw = sg.section("peer_watch")
    # Ranks of a multi-node instance probe each other's /health; a lost peer restarts them all (sglang #3099).
    peer_watch = PeerWatch(
        interval_secs=pw.integer("interval_secs", 2, lo=1, hi=600),  # seconds between probes of the other ranks
        failures=pw.integer("failures", 3, lo=1, hi=100),  # failed probes in a row that mean a peer is lost
        # A rank 0 /health runs a one-token generation (about a second).
        timeout_secs=pw.integer("timeout_secs", 5, lo=2, hi=600),  # seconds a probe may take
    )
    pw.finish()
    sg.finish()

    share_s = top.section("share", "share")
    # Each node's read-only rsync daemon: peers copy weights and DeepGEMM caches inside the cluster.
    share_port = share_s.port("port", 8730)
    # Seconds a node waits on a peer's share that does not answer (a DeepGEMM copy then compiles its own).
    share_silent_timeout = share_s.integer("silent_timeout", 60, lo=5)
    # Copies of the weights one node serves at once; nodes copy in waves fanning out from the seed.
    share_copies_per_source = share_s.integer("copies_per_source", 3, lo=1)
    share_s.finish()

    runtime = _read_runtime(top)
    router = _read_router(top, node_by_name, known)
    host = read_host_config(top)
    verify = read_verify_config(top)
    monitoring = read_monitoring_config(top, tuple(known or ()))
    security = read_security_config(top)

    top.finish()
    # Cross-field checks run even when some fields were invalid, so one pass reports as much as it can;
    # each check skips what could not be read.
    cluster = Cluster(
        name=cluster_name,
        source=problems.file,
        nodes=nodes,
        instances=instances,
        router=router,
        model=model,
        sglang_version=version,
        debug_logging=debug_logging,
        runtime=runtime,
        network=network,
        ssh=ssh,
        deep_gemm_cache=deep_gemm_cache,
        share_port=share_port,
        share_silent_timeout=share_silent_timeout,
        share_copies_per_source=share_copies_per_source,
        precompile_timeout=precompile_timeout,
        start_timeout=start_timeout,
        peer_watch=peer_watch,
        host=host,
        verify=verify,
        monitoring=monitoring,
        security=security,
        env=cluster_env,
    )
    if monitoring.enabled and monitoring.dcgm_exporter == "container" and runtime.kind != "container":
        problems.add(
            _place(top.data, "monitoring", "dcgm_exporter", cluster)[0],
            "monitoring",
            "dcgm_exporter",
            f"container with runtime kind {runtime.kind!r} (no container engine on the nodes)",
            "package, or runtime kind container",
        )
    _check_topology(cluster, problems, top.line_of("instances"))
    _check_network(cluster, overrides, problems, top.data)
    _check_ports(cluster, problems, top.data)
    _check_address_families(cluster, problems)
    return cluster


def _read_nodes(top, problems, gpus, gpu_model, iface, hcas, nvswitch) -> tuple[tuple[Node, ...], bool]:
    """The nodes whose name could be read, once each, and whether that is every node the file lists (when it is
    not, a reference to an unknown node may be to a refused one: it is not reported as a problem of its own)."""
    if not top.has("nodes"):
        top.raw("nodes", required=True)
        return (), False
    raw = top.raw("nodes")
    if not isinstance(raw, list) or not raw:
        top.error("nodes", show(raw), "a non-empty list of nodes")
        return (), False
    nodes: list[Node] = []
    complete = True
    seen_names: dict[str, int | None] = {}
    seen_addresses: dict[object, str] = {}
    for index, item in enumerate(raw):
        label = item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else f"#{index}"
        s = Section(item, f"node '{label}'", problems, raw.lines[index], field=f"nodes[{index}]")
        name = s.name("name", required=True)
        address = s.raw("address", required=True)
        if s.has("address"):
            wrong = _address_problem(address)
            if wrong:
                s.error("address", *wrong)
                address = None
        own_hcas = s.string_list(
            "hcas",
            None,
            check=lambda v: bool(HCA_RE.match(v)),
            expected="a list of HCA names like mlx5_0",
            item="an HCA name like mlx5_0",
            unique="HCA",
        )
        node = Node(
            name=name,
            address=address,
            gpus=s.integer("gpus", gpus, lo=1, hi=64),
            gpu_model=s.string("gpu_model", gpu_model),
            management_interface=s.get(
                "management_interface",
                str,
                iface,
                expected="an interface name",
                check=lambda v: bool(IFACE_RE.match(v)),
            ),
            hcas=own_hcas if s.has("hcas") else hcas,  # None: could not be read (reported once already)
            nvswitch=s.boolean("nvswitch", nvswitch),
            line=s.line,
        )
        if node.management_interface is None and s.ok:
            s.error("management_interface", "nothing", "an interface name here or in defaults")
        s.finish()
        if name in seen_names:
            s.error("name", repr(name), f"a unique node name (also used on line {seen_names[name]})")
            complete = False
            continue
        if not name:
            complete = False
            continue
        seen_names[name] = s.line
        if address:
            same = ipaddress.ip_address(address)
            mapped = getattr(same, "ipv4_mapped", None)
            if mapped:  # ::ffff:10.0.0.1 is node 10.0.0.1 written as IPv6: its servers would listen on the wrong family
                s.error("address", repr(address), f"the IPv4 address itself ('{mapped}'), not IPv4-mapped IPv6")
                nodes.append(node)
                continue
            if same in seen_addresses:
                s.error("address", repr(address), f"a unique address (node '{seen_addresses[same]}' has it)")
            else:
                seen_addresses[same] = name
        nodes.append(node)
    return tuple(nodes), complete


def _read_instances(top, problems, node_by_name, known) -> tuple[Instance, ...]:
    if not top.has("instances"):
        top.raw("instances", required=True)
        return ()
    raw = top.raw("instances")
    if not isinstance(raw, list) or not raw:
        top.error("instances", show(raw), "a non-empty list of serving instances")
        return ()
    instances: list[Instance] = []
    owner: dict[str, str] = {}
    names: dict[str, int | None] = {}
    for index, item in enumerate(raw):
        label = item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else f"#{index}"
        s = Section(item, f"instance '{label}'", problems, raw.lines[index], field=f"instances[{index}]")
        name = s.name("name", required=True)
        if name in names:
            s.error("name", repr(name), f"a unique instance name (also used on line {names[name]})")
        elif name:
            names[name] = s.line
        role = s.get("role", str, required=True, expected="prefill or decode", check=lambda v: v in ROLES)
        members, complete = _read_members(s, node_by_name, known, owner, name)
        gpus = {node_by_name[m.node].gpus for m in members if m.node in node_by_name}
        per_node = min(gpus) if gpus else 0
        if len(gpus) > 1:
            s.error("nodes", f"nodes with {sorted(gpus)} GPUs", "the same GPU count on every node of an instance")
        total = per_node * max(len(members), 1)
        # TP over every GPU of the instance; DP attention over every TP rank; EP = TP (DeepEP and Mooncake
        # support only ep_size == tp_size: SGLang docs/advanced_features/expert_parallelism.md).
        tp = s.integer("tp", total, lo=1)
        dp = s.integer("dp", tp, lo=1)
        ep = s.integer("ep", tp, lo=1)
        ports_s = s.section("ports")
        ports = Ports(
            http=ports_s.port("http", 8055),  # HTTP API (rank 0) / health stub (other ranks)
            bootstrap=ports_s.port("bootstrap", 8998),  # PD bootstrap server on prefill rank 0
            # torch.distributed rendezvous on rank 0; SGLang binds the next ports too (DIST_INIT_PORT_OFFSETS)
            dist_init=ports_s.get(
                "dist_init",
                int,
                5757,
                expected=f"an integer from 1 to {65535 - max(DIST_INIT_PORT_OFFSETS)} (SGLang also binds "
                f"dist_init+1 to +6 and +{max(DIST_INIT_PORT_OFFSETS)})",
                check=lambda v: 1 <= v <= 65535 - max(DIST_INIT_PORT_OFFSETS),
            ),
        )
        if ports.dist_init == 5757 and ports_s.has("dist_init") and ports_s.data["dist_init"] != 5757:
            ports = replace(ports, dist_init=None)  # refused: its default would only bring collisions of its own
        ports_s.finish()
        instance = Instance(
            name=name,
            role=role,
            members=members,
            tp=tp,
            dp=dp,
            ep=ep,
            ports=ports,
            env=s.string_map("env"),  # extra environment for this instance's processes
            extra_args=s.string_list("extra_args", ()),  # appended verbatim to the launch flags
            line=s.line,
        )
        s.finish()
        if complete and members and per_node and tp is not None and dp is not None and ep is not None:
            n = len(members)
            if tp % n or tp // n > per_node:
                s.error("tp", str(tp), f"a multiple of {n} node(s) using at most {per_node} GPUs each (<= {total})")
            if tp % dp:
                s.error("dp", str(dp), f"a DP-attention size that divides tp={tp}")
            if ep != tp:
                s.error("ep", str(ep), f"ep = tp = {tp} (DeepEP and Mooncake support only ep_size == tp_size)")
        instances.append(instance)
    return tuple(instances)


def _read_members(
    s: Section, node_by_name, known, owner: dict[str, str], instance_name: str
) -> tuple[tuple[Member, ...], bool]:
    """The instance's members by rank, and whether every entry could be read (else rank and TP checks, which
    would only repeat the problem, are skipped)."""
    if not s.has("nodes"):
        s.raw("nodes", required=True)
        return (), False
    raw = s.raw("nodes")
    if not isinstance(raw, list) or not raw:
        s.error("nodes", show(raw), "a non-empty list of node names (or {node, rank} mappings)")
        return (), False
    members: list[Member] = []
    complete = True
    mine: dict[str, int] = {}
    for index, item in enumerate(raw):
        line = raw.lines[index]
        if isinstance(item, str):
            node, rank = item, index
        else:
            m = Section(item, s.where, s.problems, line, prefix=f"nodes[{index}].", field=f"nodes[{index}]")
            node = m.string("node", required=True)
            rank = m.integer("rank", index, lo=0)
            m.finish()
            if node is None or rank is None:
                complete = False
                continue
        if node not in node_by_name:
            complete = False
            if known is not None:
                listed = ", ".join(node_by_name) or "(none)"
                s.error(f"nodes[{index}]", repr(node), f"a node listed under nodes: {listed}", line)
            continue
        if node in mine:
            s.error(f"nodes[{index}]", f"node {node!r} again (already nodes[{mine[node]}])", "each node once", line)
            complete = False
            continue
        if node in owner:
            s.error(
                f"nodes[{index}]",
                f"node {node!r}, already in instance '{owner[node]}'",
                "each node in at most one instance",
                line,
            )
            complete = False
            continue
        owner[node] = instance_name
        mine[node] = index
        members.append(Member(node, rank))
    ranks = sorted(m.rank for m in members)
    if complete and members and ranks != list(range(len(members))):
        s.error("nodes", f"ranks {ranks}", f"ranks 0..{len(members) - 1}, each once")
    return tuple(sorted(members, key=lambda m: m.rank)), complete


def _read_runtime(top: Section) -> Runtime:
    rt = top.section("runtime", "runtime")
    # venv: a pinned wheel set installed with uv; container: an image pinned by digest.
    kind = rt.get("kind", str, "venv", expected="venv or container", check=lambda v: v in RUNTIME_KINDS)
    # one venv per pinned wheel set under it (sglang-<version>-<digest>): a new set installs beside the serving one
    venvs = rt.string("venvs", "/opt/pdfleet/sglang")
    if venvs is not None and not _absolute(venvs):
        rt.error("venvs", repr(venvs), "an absolute path")
    # wheel sets and DeepGEMM caches (one per key) kept on disk, the current included: 2 keeps the previous one
    keep = rt.integer("keep", 2, lo=2)
    image = rt.string("image", None)  # container image pinned by digest: name@sha256:<64 hex>
    if kind == "container":
        if image is None:
            rt.error("image", "nothing", "an image pinned by digest (name@sha256:<64 hex>) for runtime kind container")
        elif not DIGEST_RE.match(image):
            rt.error("image", repr(image), "an image pinned by digest: name@sha256:<64 hex>, not a tag")
    wheels = rt.string_map(  # extra pinned wheels for the venv, name: version
        "wheels", r"^[A-Za-z0-9][A-Za-z0-9._-]*$", "a Python package name"
    )
    for package, version in wheels.items():
        if not VERSION_RE.match(version):
            rt.error(f"wheels.{package}", repr(version), "an exact version like 0.3.13.post1")
    runtime = Runtime(
        kind=kind,
        venvs=venvs,
        keep=keep,
        image=image,
        index_url=rt.string("index_url", None),  # Python package index mirror; None = the default index
        # kind container: the Docker engine (docker-ce and docker-ce-cli at this exact version), pinned and held
        docker_version=rt.string(
            "docker_version", "28.5.1", check=VERSION_RE.match, expected="an exact upstream version like 28.5.1"
        ),
        containerd_version=rt.string(  # containerd.io, pinned and held with the engine
            "containerd_version", "1.7.28", check=VERSION_RE.match, expected="an exact upstream version like 1.7.28"
        ),
        # docker-repo: Docker's apt repository and key; os-archive: the sources the host already has (a mirror)
        docker_source=rt.get(
            "docker_source", str, "docker-repo", expected="docker-repo or os-archive", check=DOCKER_SOURCES.__contains__
        ),
        docker_mirror=rt.string("docker_mirror", None),  # Docker repository URL (gpg key beside it); None = Docker's
        pull_retries=rt.integer("pull_retries", 3, lo=0, hi=10),  # retries of a failed image pull, waits doubling
        # GB the image takes in docker's data root; the pull needs this free plus a 10 GB margin (SGLang CUDA images)
        image_size_gb=rt.integer("image_size_gb", 40, lo=1),
        wheels=wheels,
    )
    rt.finish()
    return runtime


def _read_router(top: Section, node_by_name, known) -> Router:
    r = top.section("router", "router", required=True)
    node = r.string("node", required=True)
    if node is not None and node not in node_by_name and known is None:
        node = None  # perhaps a node that was refused: reported there
    elif node is not None and node not in node_by_name:
        r.error("node", repr(node), f"a node listed under nodes: {', '.join(node_by_name) or '(none)'}")
    policy = {"expected": f"one of {', '.join(ROUTER_POLICIES)}", "check": lambda v: v in ROUTER_POLICIES}
    # Measured under load (docs/router-resilience.md): these defaults keep a crashed prefill to the requests it
    # held and take a silent node out within 10 s.
    h = r.section("health")
    health = RouterHealth(
        interval_secs=h.integer("interval_secs", 2, lo=1, hi=3600),  # seconds between probes of a worker's /health
        # SGLang's /health runs a one-token generation and answers after about a second: never below 2.
        timeout_secs=h.integer("timeout_secs", 3, lo=2, hi=600),  # seconds a probe may take
        failure_threshold=h.integer("failure_threshold", 2, lo=1, hi=100),  # failed probes before not ready
        success_threshold=h.integer("success_threshold", 1, lo=1, hi=100),  # good probes before ready again
    )
    h.finish()
    cb = r.section("circuit_breaker")
    breaker = CircuitBreaker(
        prefill=cb.boolean("prefill", True),  # a failing prefill stops getting requests at once; retries go elsewhere
        decode=cb.boolean("decode", False),  # off: a prefill's failure is counted against its decode too
        failure_threshold=cb.integer("failure_threshold", 1, lo=1, hi=1000),  # failures that open a breaker
        timeout_secs=cb.integer("timeout_secs", 5, lo=1, hi=3600),  # seconds open before one request is tried
    )
    cb.finish()
    rt = r.section("retries")
    retries = Retries(
        attempts=rt.integer("attempts", 5, lo=1, hi=20),  # tries per request, the first included (1 = no retry)
        initial_backoff_ms=rt.integer("initial_backoff_ms", 50, lo=1, hi=60000),  # wait before the first retry
        max_backoff_ms=rt.integer("max_backoff_ms", 1000, lo=1, hi=600000),  # longest wait between retries
    )
    rt.finish()
    low, high = retries.initial_backoff_ms, retries.max_backoff_ms
    if low is not None and high is not None and high < low:
        rt.error(
            "max_backoff_ms",
            str(retries.max_backoff_ms),
            f"at least initial_backoff_ms ({retries.initial_backoff_ms})",
        )
    router = Router(
        node=node,
        port=r.port("port", 8000),  # the OpenAI-compatible endpoint clients use
        prometheus_port=r.port("prometheus_port", 29000),  # router metrics
        version=r.string(
            "version", "1.13.0", check=lambda v: bool(VERSION_RE.match(v)), expected="an exact smg version"
        ),  # smg (the SGLang PD router) release
        prefill_policy=r.get("prefill_policy", str, "cache_aware", **policy),  # how to pick a prefill instance
        decode_policy=r.get("decode_policy", str, "round_robin", **policy),  # how to pick a decode instance
        # Workers load ~690 GB of weights and warm DeepGEMM before /health answers: wait up to an hour.
        worker_startup_timeout_secs=r.integer("worker_startup_timeout_secs", 3600, lo=1),
        venv=r.string("venv", "/opt/pdfleet/router"),  # virtual environment holding smg
        health=health,
        circuit_breaker=breaker,
        retries=retries,
        # A request (prefill and decode legs) may take this long; a long generation must fit.
        request_timeout_secs=r.integer("request_timeout_secs", 1800, lo=10),
        # On stop, the router finishes in-flight requests this long (its unit's TimeoutStopSec is 30 s more).
        shutdown_grace_secs=r.integer("shutdown_grace_secs", 180, lo=0, hi=3600),
        # A drain waits this long for the instance's in-flight requests to reach zero.
        drain_timeout_secs=r.integer("drain_timeout_secs", 300, lo=1, hi=86400),
        # Seconds between two passes of the membership agent (router membership = the rendered worker list).
        membership_interval_secs=r.integer("membership_interval_secs", 2, lo=1, hi=300),
    )
    r.finish()
    return router


def _check_topology(cluster: Cluster, problems: Problems, line: int | None) -> None:
    prefills = [i for i in cluster.instances if i.role == "prefill"]
    decodes = [i for i in cluster.instances if i.role == "decode"]
    roles_read = cluster.instances and all(i.role is not None for i in cluster.instances)
    if roles_read and (not prefills or not decodes):
        problems.add(
            line,
            "instances",
            "role",
            f"{len(prefills)} prefill and {len(decodes)} decode instances",
            "at least one prefill and one decode instance",
        )
    # SGLang: "Different tp size is supported only when one tp is multiple of the other" (server_args.py).
    for p in prefills:
        for d in decodes:
            if p.tp and d.tp and max(p.tp, d.tp) % min(p.tp, d.tp):
                problems.add(
                    p.line,
                    f"instance '{p.name}'",
                    "tp",
                    f"tp={p.tp} beside decode instance '{d.name}' tp={d.tp}",
                    "prefill and decode TP sizes where one is a multiple of the other",
                )
    for instance in cluster.instances:
        lengths = {m.node: len(cluster.node(m.node).hcas or ()) for m in instance.members}
        if any(cluster.node(m.node).hcas is None for m in instance.members):
            continue  # a list that could not be read, reported already
        for member in instance.members:
            node = cluster.node(member.node)
            if not node.hcas:
                problems.add(
                    node.line,
                    f"node '{node.name}'",
                    "hcas",
                    "no HCAs",
                    f"the RDMA HCAs instance '{instance.name}' transfers KV cache over (here or in defaults.hcas)",
                )
        if len(set(lengths.values()) - {0}) > 1:
            problems.add(
                instance.line,
                f"instance '{instance.name}'",
                "nodes",
                "HCA lists of different lengths: " + ", ".join(f"{n}={k}" for n, k in lengths.items()),
                "the same number of HCAs on every node of an instance",
            )


def _check_network(cluster: Cluster, overrides, problems: Problems, data) -> None:
    wanted = {"traffic_class": cluster.network.traffic_class, "gid_index": cluster.network.gid_index}
    if None in wanted.values():
        return
    for library, (tc_var, gid_var) in NETWORK_LIBRARIES.items():
        for key, var in (("traffic_class", tc_var), ("gid_index", gid_var)):
            value, line = overrides[library][key]
            if value is not None and value != wanted[key]:
                problems.add(
                    line,
                    "network",
                    f"{library}.{key}",
                    str(value),
                    f"{wanted[key]} (network.{key}): NCCL, NVSHMEM and Mooncake must use one value",
                )
            envs = [("inventory", cluster.env)] + [(f"instance '{i.name}'", i.env) for i in cluster.instances]
            for where, env in envs:
                if var in env and env[var] != str(wanted[key]):
                    problems.add(
                        _place(data, where, f"env.{var}", cluster)[0],
                        where,
                        f"env.{var}",
                        repr(env[var]),
                        f"{wanted[key]} (network.{key}): NCCL, NVSHMEM and Mooncake must use one value",
                    )


def port_claims(cluster: Cluster):
    """Every port a service of the plan listens on: (node, port, what, line, where, field)."""
    for instance in cluster.instances:
        where = f"instance '{instance.name}'"
        for member in instance.members:
            yield member.node, instance.ports.http, f"{where} http", instance.line, where, "ports.http"
        if instance.role == "prefill" and instance.head:
            yield instance.head, instance.ports.bootstrap, f"{where} bootstrap", instance.line, where, "ports.bootstrap"
        if instance.nnodes > 1 and instance.head and instance.ports.dist_init is not None:
            start = instance.ports.dist_init
            what = f"{where} dist_init ({start}-{start + 6} and {start + 13})"
            for offset in DIST_INIT_PORT_OFFSETS:
                yield instance.head, start + offset, what, instance.line, where, "ports.dist_init"
    for node in cluster.nodes:
        yield node.name, cluster.share_port, "the weights and cache share", None, "share", "port"
    router = cluster.router
    yield router.node, router.port, "router port", None, "router", "port"
    yield router.node, router.prometheus_port, "router prometheus_port", None, "router", "prometheus_port"
    monitoring = cluster.monitoring
    if monitoring.enabled:
        for node in cluster.nodes:
            yield (
                node.name,
                monitoring.node_exporter_port,
                "the node exporter",
                None,
                "monitoring",
                "node_exporter_port",
            )
            yield (
                node.name,
                monitoring.dcgm_exporter_port,
                "the DCGM exporter",
                None,
                "monitoring",
                "dcgm_exporter_port",
            )
        home = cluster.monitoring_node
        yield home, monitoring.prometheus_port, "Prometheus", None, "monitoring", "prometheus_port"
        yield home, monitoring.grafana_port, "Grafana", None, "monitoring", "grafana_port"


def node_ports(cluster: Cluster, node: str) -> list[int]:
    """The ports services of the plan listen on, on one node, sorted (the claims are listed once per cluster)."""
    return cluster._ports_by_node.get(node, [])


def _place(data, where: str, field_name: str, cluster: Cluster) -> tuple[int | None, bool]:
    """(line, written): where the inventory sets `field_name` of `where`, and whether it sets it at all (else the
    line is that of the nearest enclosing mapping, and the value is a default)."""
    if where.startswith("instance '"):
        name = where[len("instance '") : -1]
        index = next((i for i, instance in enumerate(cluster.instances) if instance.name == name), None)
        if index is None:
            return None, False
        path: list = ["instances", index, *field_name.split(".")]
    elif where == "inventory":
        path = field_name.split(".")
    else:
        path = [where, *field_name.split(".")]
    line, node = None, data
    for step in path:
        lines = getattr(node, "lines", None)
        if isinstance(node, dict) and step in node:
            line = lines.get(step, line)
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            line = lines[step]
        else:
            return line, False
        node = node[step]
    return line, True


def _check_ports(cluster: Cluster, problems: Problems, data) -> None:
    """Two services on one port of one node. The port a person wrote is blamed rather than a default it meets,
    and one setting that collides on several nodes is reported once."""
    bound: dict[str, dict[int, tuple[str, str, str]]] = {n.name: {} for n in cluster.nodes}
    reported: dict[tuple[str, str], list] = {}
    for node, port, what, _line, where, field_name in port_claims(cluster):
        if port is None or node not in bound:
            continue
        taken = bound[node]
        if port not in taken:
            taken[port] = (what, where, field_name)
            continue
        other_what, other_where, other_field = taken[port]
        if (other_where, other_field) == (where, field_name):
            continue  # one setting twice on a node (a single-node instance's head): not a collision
        line, written = _place(data, where, field_name, cluster)
        other_line, other_written = _place(data, other_where, other_field, cluster)
        if other_written and not written:  # the other was written, this one is a default: blame the written one
            (where, field_name, line, what), (other_where, other_field, other_line, other_what) = (
                (other_where, other_field, other_line, other_what),
                (where, field_name, line, what),
            )
            written, other_written = True, False
        if not other_written and not other_where.startswith("instance"):
            other_what = f"{other_what} ({other_where}.{other_field} by default)"  # what the person may change
        key = (where, field_name)
        if key in reported:
            reported[key][1] += 1
            continue
        reported[key] = [(line, where, field_name, port, node, other_what), 0]
    for (line, where, field_name, port, node, other_what), more in reported.values():
        also = f" (and on {more} more node{'s' if more > 1 else ''})" if more else ""
        problems.add(
            line,
            where,
            field_name,
            f"port {port} on node '{node}', already used by {other_what}{also}",
            "a port no other service of that node uses",
        )


def _check_address_families(cluster: Cluster, problems) -> None:
    """IPv4 and IPv6 node addresses do not mix: each node's servers listen on its own address's family only
    (SGLang and smg on 0.0.0.0 or ::, the share on the address itself) and every node reaches the others at the
    inventory's addresses (router to workers, decode to the prefill's bootstrap server, ranks to the dist-init
    address, NCCL with one NCCL_SOCKET_FAMILY, peers to the share). A link-local or scoped IPv6 address names a
    different place on every node: refused too."""
    first: Node | None = None
    for node in cluster.nodes:
        try:
            ip = ipaddress.ip_address(node.address)
        except ValueError:
            continue  # a host name: the validator said what it accepts
        where, expected = f"node '{node.name}'", "a global or unique-local IPv6 address (fd00::/8 ...)"
        if ip.version == 6 and ip.ipv4_mapped:
            continue  # refused where the node was read
        if ip.version == 6 and (ip.is_link_local or ip.scope_id):
            problems.add(node.line, where, "address", repr(node.address), expected + ", not a link-local or scoped one")
            continue
        if first is None:
            first = node
        elif ipaddress.ip_address(first.address).version != ip.version:
            problems.add(
                node.line,
                where,
                "address",
                f"IPv{ip.version} address {node.address!r} (node '{first.name}' has IPv{6 if ip.version == 4 else 4} "
                f"address {first.address!r})",
                f"every node's address of one family, IPv{6 if ip.version == 4 else 4} like node '{first.name}' "
                "(each node listens on its own family only)",
            )


__all__ = [
    "Cluster",
    "Instance",
    "Member",
    "Model",
    "Network",
    "Node",
    "Ports",
    "Router",
    "Runtime",
    "Ssh",
    "load_cluster",
    "node_ports",
    "port_claims",
    "NAME_RE",
]
