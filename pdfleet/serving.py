"""The serving plan: for each node the exact command and environment, for the router its command.

This is the only place a command line is assembled. `plan(cluster)` returns a `ServingPlan` whose specs feed
the systemd units, the DeepGEMM precompile unit, the offline render, `pdfleet plan` and the tests that run every
argv through SGLang's and smg's own parsers. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from pdfleet import apikeys, dialects, netaddr
from pdfleet.cluster import Cluster, Instance, Node
from pdfleet.profiles import PD_ENV, PROFILES, fabric_env
from pdfleet.runtimeplan import serving_venv

# Compiled DeepGEMM kernels are specific to the GPU architecture they were built for.
GPU_ARCH = {"H100": "sm_90a", "H200": "sm_90a", "H800": "sm_90a", "H20": "sm_90a", "B200": "sm_100a"}

ENV_DIR = "/etc/pdfleet"
UNIT_DIR = "/etc/systemd/system"
ROUTER_UNIT = "pdfleet-router.service"
# The router's membership: every instance's worker spec and the drained ones, which pdfleet-router-members
# (pdfleet/onhost/router_members.py) keeps the router's worker list equal to.
MEMBERS_UNIT = "pdfleet-router-members.service"
MEMBERS_FILE = f"{ENV_DIR}/router-members.json"
MEMBERS_AGENT = "/usr/local/lib/pdfleet/pdfleet-router-members.py"
# Beside each rank of a multi-node instance: restarts the rank when another rank is lost (pdfleet/onhost/peer_watch.py).
PEER_WATCH = "/usr/local/lib/pdfleet/pdfleet-peer-watch.py"
DOCKER = "/usr/bin/docker"


def unit_name(instance: str) -> str:
    return f"sglang-{instance}.service"


def precompile_unit_name(instance: str) -> str:
    return f"sglang-{instance}-precompile.service"


def peer_watch_unit_name(instance: str) -> str:
    return f"sglang-{instance}-peer-watch.service"


@dataclass(frozen=True)
class ServerSpec:
    """Everything one node runs for its serving instance."""

    host: str
    address: str
    role: str
    instance: str
    rank: int
    nnodes: int
    http_port: int
    server_args: tuple[str, ...]  # SGLang flags in the pinned version's dialect
    launcher: tuple[str, ...]  # how the runtime starts `python3 -m sglang.launch_server`
    precompile_launcher: tuple[str, ...]  # same for `python3 -m sglang.compile_deep_gemm`
    precompile_timeout: int
    env: dict = field(hash=False)
    env_file: str = ""
    deep_gemm_key: str = ""  # what a DeepGEMM cache built for this node depends on (JSON text)
    deep_gemm_dir: str = ""  # its cache: one directory per key under sglang.deep_gemm_cache, kept for a rollback
    # the API key's arguments: `--config FILE`, a root-only YAML file holding `api-key` (pdfleet/apikeys.py)
    key_args: tuple[str, ...] = ()

    @property
    def argv(self) -> tuple[str, ...]:
        return self.launcher + self.server_args + self.key_args

    @property
    def precompile_args(self) -> tuple[str, ...]:
        """compile_deep_gemm takes exactly the serving arguments plus its own --timeout."""
        return self.server_args + ("--timeout", str(self.precompile_timeout))

    @property
    def precompile_argv(self) -> tuple[str, ...]:
        return self.precompile_launcher + self.precompile_args

    @property
    def unit(self) -> str:
        return unit_name(self.instance)

    @property
    def precompile_unit(self) -> str:
        return precompile_unit_name(self.instance)

    @property
    def peer_watch_unit(self) -> str:
        return peer_watch_unit_name(self.instance)

    @property
    def url(self) -> str:
        """This node's HTTP port as other nodes reach it."""
        return netaddr.url(self.address, self.http_port)

    @property
    def local_url(self) -> str:
        """The same port as this node's own probes reach it: the loopback of its address's family (the server
        listens on that family's wildcard)."""
        return netaddr.url(netaddr.loopback(self.address), self.http_port)

    @property
    def serves_api(self) -> bool:
        """Only node rank 0 runs the tokenizer and HTTP API; other ranks answer a health stub on the same port."""
        return self.rank == 0


@dataclass(frozen=True)
class RouterWorker:
    """One instance as the router sees it: rank 0's API, registered through smg's worker API."""

    instance: str
    role: str
    url: str
    load_path: str  # where rank 0 reports its queues (the pinned SGLang's dialect)
    spec: dict = field(hash=False)  # the body of `POST /workers`

    def to_dict(self) -> dict:
        return {"instance": self.instance, "role": self.role, "load_path": self.load_path, "spec": self.spec}


@dataclass(frozen=True)
class RouterSpec:
    host: str
    argv: tuple[str, ...]
    url: str
    router_args: tuple[str, ...]  # smg's own arguments (without the program and subcommand)
    local_url: str = ""  # the router's endpoint as its own node reaches it
    workers: tuple[RouterWorker, ...] = ()  # the membership: every instance, drained or not
    stop_timeout: int = 210  # the unit's TimeoutStopSec: the shutdown grace and 30 s more
    # with API keys: `--api-key ${VAR}`, the variable coming from the unit's root-only EnvironmentFile
    key_args: tuple[str, ...] = ()
    key_env_file: str = ""  # that EnvironmentFile ("" without API keys)


@dataclass(frozen=True)
class ServingPlan:
    cluster: Cluster
    sglang_version: str
    servers: tuple[ServerSpec, ...]
    router: RouterSpec

    def server(self, host: str) -> ServerSpec | None:
        for spec in self.servers:
            if spec.host == host:
                return spec
        return None

    def ranks(self, instance: str) -> tuple[ServerSpec, ...]:
        """The specs of one instance, rank 0 first."""
        return tuple(sorted((s for s in self.servers if s.instance == instance), key=lambda s: s.rank))

    def peer_watch_argv(self, host: str) -> tuple[str, ...]:
        """The peer watch of a rank of a multi-node instance: the other ranks' /health, probed from here."""
        spec = self.server(host)
        peers = [f"{s.url}/health" for s in self.ranks(spec.instance) if s.host != host]
        watch = self.cluster.peer_watch
        argv = ["/usr/bin/python3", PEER_WATCH, "--unit", spec.unit]
        for peer in peers:
            argv += ["--peer", peer]
        argv += [
            "--interval",
            str(watch.interval_secs),
            "--failures",
            str(watch.failures),
            "--timeout",
            str(watch.timeout_secs),
        ]
        return tuple(argv)

    def deep_gemm_source(self, host: str) -> str | None:
        """The node whose DeepGEMM cache this node copies, or None when this node compiles its own.

        Compiled once per distinct key: the first instance (inventory order) holding a key compiles it, all its
        ranks together as compile_deep_gemm requires; the nodes of later instances with the same key copy the
        cache from the compiling instance's node of the same rank (rank 0 when it has fewer ranks).
        """
        spec = self.server(host)
        if spec is None:
            return None
        compiler = next(s.instance for s in self.servers if s.deep_gemm_key == spec.deep_gemm_key)
        if compiler == spec.instance:
            return None
        ranks = self.ranks(compiler)
        return (ranks[spec.rank] if spec.rank < len(ranks) else ranks[0]).host

    def deep_gemm_peers(self, host: str) -> list[str]:
        """The other nodes whose DeepGEMM cache is built for this node's key: the same rank of other instances
        first, then the other ranks (a multi-node instance's ranks hold the same kernels). A compiling node that
        was replaced takes its cache from them instead of compiling."""
        spec = self.server(host)
        if spec is None:
            return []
        same = [s for s in self.servers if s.deep_gemm_key == spec.deep_gemm_key and s.host != host]
        return [s.host for s in sorted(same, key=lambda s: s.rank != spec.rank)]


def plan(cluster: Cluster) -> ServingPlan:
    dialect = dialects.DIALECTS[cluster.sglang_version]
    servers = []
    for instance in cluster.instances:
        for member in instance.members:
            servers.append(_server_spec(cluster, dialect, instance, member.rank, cluster.node(member.node)))
    return ServingPlan(cluster, dialect.version, tuple(servers), _router_spec(cluster))


def _server_spec(cluster: Cluster, dialect: dialects.Dialect, instance: Instance, rank: int, node: Node) -> ServerSpec:
    opts = PROFILES[cluster.model.profile](cluster, instance, rank, node)
    server_args = tuple(dialect.spell(opts)) + instance.extra_args
    env_file = f"{ENV_DIR}/{instance.name}.env"
    key = _deep_gemm_key(cluster, dialect, node, server_args)
    cache_dir = deep_gemm_dir(cluster, key)
    env = {
        **fabric_env(cluster, node),
        **PD_ENV,
        **dialect.cache_env(cache_dir),
        **cluster.env,
        **instance.env,
    }
    launcher, precompile_launcher = _launchers(cluster, instance, env_file)
    key_args = ("--config", apikeys.ENGINE_CONFIG) if cluster.security.api_keys else ()
    return ServerSpec(
        host=node.name,
        address=node.address,
        role=instance.role,
        instance=instance.name,
        rank=rank,
        nnodes=instance.nnodes,
        http_port=instance.ports.http,
        server_args=server_args,
        launcher=launcher,
        precompile_launcher=precompile_launcher,
        precompile_timeout=cluster.precompile_timeout,
        env=dict(sorted(env.items())),
        env_file=env_file,
        deep_gemm_key=key,
        deep_gemm_dir=cache_dir,
        key_args=key_args,
    )


def deep_gemm_dir(cluster: Cluster, key: str) -> str:
    """Where the cache of one key lives: a new version's kernels compile beside the old ones, so a rollback
    finds its cache still there and compiles nothing."""
    return f"{cluster.deep_gemm_cache.rstrip('/')}/{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _launchers(cluster: Cluster, instance: Instance, env_file: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    runtime = cluster.runtime
    if runtime.kind == "venv":
        python = f"{serving_venv(cluster)}/bin/python3"
        return (python, "-m", "sglang.launch_server"), (python, "-m", "sglang.compile_deep_gemm")

    # SGLang reads its API key from a file (`--config`) that the container must see
    keys = (f"--volume={apikeys.ENGINE_CONFIG}:{apikeys.ENGINE_CONFIG}:ro",) if cluster.security.api_keys else ()

    def docker_run(name: str) -> tuple[str, ...]:
        model = cluster.model.path
        cache = cluster.deep_gemm_cache
        return (
            DOCKER,
            "run",
            "--rm",
            f"--name={name}",
            # RDMA and NVLink need the host's network, IPC namespace and devices; memlock unlimited for
            # registering GPU memory with the NICs (Mooncake and SGLang's multi-node docker docs).
            "--network=host",
            "--ipc=host",
            "--privileged",
            "--gpus=all",
            "--ulimit=memlock=-1",
            "--ulimit=stack=67108864",
            "--shm-size=32g",
            f"--env-file={env_file}",
            f"--volume={model}:{model}:ro",
            f"--volume={cache}:{cache}",
            *keys,
            runtime.image,
            "python3",
            "-m",
        )

    return (
        docker_run(f"sglang-{instance.name}") + ("sglang.launch_server",),
        docker_run(f"sglang-{instance.name}-precompile") + ("sglang.compile_deep_gemm",),
    )


# Flags that differ between nodes of one key without changing which kernels get compiled.
_NODE_LOCAL_FLAGS = {
    "--host",
    "--port",
    "--node-rank",
    "--dist-init-addr",
    "--disaggregation-ib-device",
    "--disaggregation-bootstrap-port",
}


def _deep_gemm_key(cluster: Cluster, dialect: dialects.Dialect, node: Node, server_args: tuple[str, ...]) -> str:
    """What a compiled DeepGEMM cache depends on. Nodes with equal keys can share one cache."""
    shape_args: list[str] = []
    dropping = False
    for arg in server_args:
        if arg.startswith("--"):
            dropping = arg in _NODE_LOCAL_FLAGS
        if not dropping:
            shape_args.append(arg)
    runtime = cluster.runtime
    key = {
        "sglang": dialect.version,
        "runtime": runtime.image if runtime.kind == "container" else {"venv": dict(sorted(runtime.wheels.items()))},
        "model": {"repo": cluster.model.repo, "revision": cluster.model.revision},
        "gpu_arch": GPU_ARCH.get(node.gpu_model, node.gpu_model),
        "server_args": shape_args,
    }
    text = json.dumps(key, indent=1, sort_keys=True)
    return text + "\n" + "sha256: " + hashlib.sha256(text.encode()).hexdigest() + "\n"


def _router_spec(cluster: Cluster) -> RouterSpec:
    """The router's command line and its membership.

    Workers are not on the command line: pdfleet-router-members registers them through smg's worker API, where
    each can carry its own circuit breaker. smg counts a PD request's failure against both its prefill and its
    decode worker, so one breaker for all would open the healthy decode's when a prefill dies (a 503 for every
    request until it closes); file discovery (`--discovery-provider file`) takes no per-worker settings.
    """
    router = cluster.router
    host = cluster.node(router.node)
    health, breaker, retries = router.health, router.circuit_breaker, router.retries
    args: list[str] = [
        "--pd-disaggregation",
        "--host",
        netaddr.wildcard(host.address),
        "--port",
        str(router.port),
        "--prefill-policy",
        router.prefill_policy,
        "--decode-policy",
        router.decode_policy,
        "--worker-startup-timeout-secs",
        str(router.worker_startup_timeout_secs),
        "--health-check-interval-secs",
        str(health.interval_secs),
        "--health-check-timeout-secs",
        str(health.timeout_secs),
        "--health-failure-threshold",
        str(health.failure_threshold),
        "--health-success-threshold",
        str(health.success_threshold),
        "--retry-max-retries",
        str(retries.attempts),
        "--retry-initial-backoff-ms",
        str(retries.initial_backoff_ms),
        "--retry-max-backoff-ms",
        str(retries.max_backoff_ms),
    ]
    # The router-wide breaker applies to workers registered without their own threshold (pdfleet gives each its
    # role's): as off as a role that has none.
    if breaker.prefill and breaker.decode:
        threshold = breaker.failure_threshold
    else:
        threshold = BREAKER_NEVER_OPENS
    args += ["--cb-failure-threshold", str(threshold), "--cb-timeout-duration-secs", str(breaker.timeout_secs)]
    args += [
        "--request-timeout-secs",
        str(router.request_timeout_secs),
        "--shutdown-grace-period-secs",
        str(router.shutdown_grace_secs),
        "--prometheus-host",
        netaddr.wildcard(host.address),
        "--prometheus-port",
        str(router.prometheus_port),
    ]
    load_path = dialects.DIALECTS[cluster.sglang_version].load_path
    workers = tuple(_router_worker(cluster, instance, load_path) for instance in _router_order(cluster))
    # smg takes the client key only as an argument: the unit's root-only EnvironmentFile gives the variable
    keys = cluster.security.api_keys
    key_args = ("--api-key", f"${{{apikeys.ROUTER_KEY_VAR}}}") if keys else ()
    return RouterSpec(
        host=host.name,
        argv=(f"{router.venv}/bin/smg", "launch", *args, *key_args),
        key_args=key_args,
        key_env_file=apikeys.ROUTER_ENV if keys else "",
        url=netaddr.url(host.address, router.port),
        router_args=tuple(args),
        local_url=netaddr.url(netaddr.loopback(host.address), router.port),
        workers=workers,
        stop_timeout=router.shutdown_grace_secs + 30,
    )


# A role without a circuit breaker: smg 1.13.0 ignores a worker's own `disable_circuit_breaker` (measured: the
# decode's breaker opened at the router-wide threshold when a prefill died) but honours its own threshold, so a
# threshold no run reaches turns the breaker off for that worker.
BREAKER_NEVER_OPENS = 1_000_000_000


def _router_order(cluster: Cluster) -> list[Instance]:
    return [i for i in cluster.instances if i.role == "prefill"] + [i for i in cluster.instances if i.role == "decode"]


def _router_worker(cluster: Cluster, instance: Instance, load_path: str) -> RouterWorker:
    head = cluster.node(instance.head)
    breaker = cluster.router.circuit_breaker
    url = netaddr.url(head.address, instance.ports.http)
    # Only rank 0 serves the API; higher ranks answer a health stub and must never receive traffic.
    spec: dict = {"url": url, "worker_type": instance.role}
    # smg pairs a prefill and a decode only when their explicit protocols agree: two SGLang versions (whose KV
    # bootstrap differs) can both be registered, as blue/green's switch does, without a mixed pair ever built
    spec["pairing_protocol"] = f"sglang-{cluster.sglang_version}"
    if instance.role == "prefill":
        spec["bootstrap_port"] = instance.ports.bootstrap
    threshold = breaker.failure_threshold if getattr(breaker, instance.role) else BREAKER_NEVER_OPENS
    spec["resilience"] = {"cb_failure_threshold": threshold, "cb_timeout_secs": breaker.timeout_secs}
    return RouterWorker(instance.name, instance.role, url, load_path, spec)
