"""The serving plan: for each node the exact command and environment, for the router its command.

This is the only place a command line is assembled. `plan(cluster)` returns a `ServingPlan` whose specs feed
the systemd units, the DeepGEMM precompile unit, the offline render, `pdfleet plan` and the tests that run every
argv through SGLang's and smg's own parsers. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from pdfleet import dialects
from pdfleet.cluster import Cluster, Instance, Node
from pdfleet.profiles import PD_ENV, PROFILES, fabric_env

# Compiled DeepGEMM kernels are specific to the GPU architecture they were built for.
GPU_ARCH = {"H100": "sm_90a", "H200": "sm_90a", "H800": "sm_90a", "H20": "sm_90a", "B200": "sm_100a"}

ENV_DIR = "/etc/pdfleet"
UNIT_DIR = "/etc/systemd/system"
ROUTER_UNIT = "pdfleet-router.service"
DOCKER = "/usr/bin/docker"


def unit_name(instance: str) -> str:
    return f"sglang-{instance}.service"


def precompile_unit_name(instance: str) -> str:
    return f"sglang-{instance}-precompile.service"


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

    @property
    def argv(self) -> tuple[str, ...]:
        return self.launcher + self.server_args

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
    def serves_api(self) -> bool:
        """Only node rank 0 runs the tokenizer and HTTP API; other ranks answer a health stub on the same port."""
        return self.rank == 0


@dataclass(frozen=True)
class RouterSpec:
    host: str
    argv: tuple[str, ...]
    url: str
    router_args: tuple[str, ...]  # smg's own arguments (without the program and subcommand)


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
    env = {
        **fabric_env(cluster, node),
        **PD_ENV,
        **dialect.cache_env(cluster.deep_gemm_cache),
        **cluster.env,
        **instance.env,
    }
    launcher, precompile_launcher = _launchers(cluster, instance, env_file)
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
        deep_gemm_key=_deep_gemm_key(cluster, dialect, node, server_args),
    )


def _launchers(cluster: Cluster, instance: Instance, env_file: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    runtime = cluster.runtime
    if runtime.kind == "venv":
        python = f"{runtime.venv}/bin/python3"
        return (python, "-m", "sglang.launch_server"), (python, "-m", "sglang.compile_deep_gemm")

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
    router = cluster.router
    args: list[str] = ["--pd-disaggregation"]
    for instance in cluster.instances:
        head = cluster.node(instance.head)
        url = f"http://{head.address}:{instance.ports.http}"
        if instance.role == "prefill":
            args += ["--prefill", url, str(instance.ports.bootstrap)]
    for instance in cluster.instances:
        head = cluster.node(instance.head)
        if instance.role == "decode":
            # Only rank 0 serves the API; higher ranks answer a health stub and must never receive traffic.
            args += ["--decode", f"http://{head.address}:{instance.ports.http}"]
    args += [
        "--host",
        "0.0.0.0",
        "--port",
        str(router.port),
        "--prefill-policy",
        router.prefill_policy,
        "--decode-policy",
        router.decode_policy,
        "--worker-startup-timeout-secs",
        str(router.worker_startup_timeout_secs),
        "--prometheus-host",
        "0.0.0.0",
        "--prometheus-port",
        str(router.prometheus_port),
    ]
    host = cluster.node(router.node)
    return RouterSpec(
        host=host.name,
        argv=(f"{router.venv}/bin/smg", "launch", *args),
        url=f"http://{host.address}:{router.port}",
        router_args=tuple(args),
    )
