"""Every file a host must hold, as text, from the serving plan and templates/.

`render(plan)` returns {host: {absolute path: RenderedFile}}. The same text is what the pyinfra roles upload,
what `pdfleet render` writes for review and what `pdfleet diff` compares, so the offline render and the dry-run
diff can never disagree. Output is deterministic (sorted, no timestamps) and holds no secrets.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from pdfleet import apikeys
from pdfleet import firewallplan as fw
from pdfleet import monitoringplan as mon
from pdfleet.alerts import rules_yaml
from pdfleet.dashboards import dashboards
from pdfleet.dcgmcounters import counters_csv
from pdfleet.hostplan import UNATTENDED_BLACKLIST, cuda_mirror, doca_mirror, nvidia_pins, rdma_pins, sysctls
from pdfleet.onhost.router_members import members_json
from pdfleet.options import option_lines
from pdfleet.runtimeplan import docker_codename, docker_mirror, docker_pins
from pdfleet.serving import DOCKER, MEMBERS_AGENT, MEMBERS_FILE, MEMBERS_UNIT, ROUTER_UNIT, UNIT_DIR, ServingPlan
from pdfleet.weightsplan import (
    CACHE_MODULE,
    SHARE_CONFIG,
    SHARE_UNIT,
    STAGER_CONFIG,
    WEIGHTS_MODULE,
    stager_config_text,
)

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"

_SAFE_ARG = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


@dataclass(frozen=True)
class RenderedFile:
    content: str
    mode: str = "0644"


_UNIT_VARIABLE = re.compile(r"\$\{[A-Z_][A-Z0-9_]*\}")


def systemd_quote(arg: str) -> str:
    """Quote one argument for an Exec*= line: systemd expands %-specifiers and $VARS even in plain words. A whole
    `${NAME}` is left for systemd to expand (a secret from the unit's EnvironmentFile, never in the file)."""
    if _UNIT_VARIABLE.fullmatch(arg):
        return arg
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if _SAFE_ARG.match(arg):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_lines(argv) -> str:
    """An argv as a systemd Exec*= value: one option and its values per line, so a diff shows the flag that moved."""
    lines = option_lines(argv)
    return " \\\n    ".join(" ".join(systemd_quote(a) for a in line) for line in lines)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["exec_lines"] = exec_lines
    return env


def key_file(instance: str) -> str:
    return f"/etc/pdfleet/{instance}.deepgemm-key"


def render(plan: ServingPlan) -> dict[str, dict[str, RenderedFile]]:
    cluster = plan.cluster
    env = _environment()
    common = {
        "source": Path(cluster.source).name,
        "cluster": cluster.name,
        "model": f"{cluster.model.repo}@{cluster.model.revision[:12]}",
        "docker": DOCKER,
        "container": cluster.runtime.kind == "container",
        "cache": cluster.deep_gemm_cache,
        "start_timeout": cluster.start_timeout,
    }
    files: dict[str, dict[str, RenderedFile]] = {node.name: {} for node in cluster.nodes}
    for spec in plan.servers:
        host = files[spec.host]
        ctx = {**common, "spec": spec, "key_file": key_file(spec.instance)}
        host[spec.env_file] = RenderedFile(env.get_template("serving.env.j2").render(ctx))
        host[key_file(spec.instance)] = RenderedFile(spec.deep_gemm_key)
        host[f"{UNIT_DIR}/{spec.unit}"] = RenderedFile(env.get_template("sglang-server.service.j2").render(ctx))
        host[f"{UNIT_DIR}/{spec.precompile_unit}"] = RenderedFile(
            env.get_template("sglang-precompile.service.j2").render(ctx)
        )
        if spec.nnodes > 1:
            watch_ctx = {**ctx, "argv": plan.peer_watch_argv(spec.host)}
            host[f"{UNIT_DIR}/{spec.peer_watch_unit}"] = RenderedFile(
                env.get_template("sglang-peer-watch.service.j2").render(watch_ctx)
            )
    shared = _host_context(cluster, common)
    for node in cluster.nodes:
        files[node.name].update(_host_files(env, cluster, shared, node.name))
        files[node.name].update(_share_files(env, cluster, common, node))
    router_ctx = {
        **common,
        "router": plan.router,
        "version": cluster.router.version,
        "members_file": MEMBERS_FILE,
        "members_agent": MEMBERS_AGENT,
    }
    router_files = files[plan.router.host]
    router_files[f"{UNIT_DIR}/{ROUTER_UNIT}"] = RenderedFile(
        env.get_template("pdfleet-router.service.j2").render(router_ctx)
    )
    router_files[f"{UNIT_DIR}/{MEMBERS_UNIT}"] = RenderedFile(
        env.get_template("pdfleet-router-members.service.j2").render(router_ctx)
    )
    router_files[MEMBERS_FILE] = members_file(plan)
    if cluster.monitoring.enabled:
        for node, paths in _monitoring_files(env, cluster, common).items():
            files[node].update(paths)
    if cluster.security.firewall:
        for node in cluster.nodes:
            files[node.name].update(_firewall_files(env, cluster, common, node.name))
    return {host: dict(sorted(paths.items())) for host, paths in sorted(files.items())}


def outgoing_name(instance: str, version: str) -> str:
    """An instance of the set blue/green is replacing, as the router's membership names it during the switch (the
    incoming set has the inventory's names)."""
    return f"{instance}@{version}"


def members_file(plan: ServingPlan, drained: dict | None = None, outgoing: ServingPlan | None = None) -> RenderedFile:
    """The router's membership (pdfleet-router-members keeps the router's worker list equal to it): every
    instance's worker spec, and the instances drained on the router's node (`pdfleet drain`, or a rolling restart
    under way), which a converge reads back and keeps. The offline render has none drained.

    + drained: instance -> {by, reason, since}, as the file on the router's node holds them
    + outgoing: during a blue/green switch, the set being replaced: its workers stay members too, named
      `outgoing_name` (the router pairs only workers of one SGLang version, so both sets serve side by side)
    """
    workers = [w.to_dict() for w in plan.router.workers]
    if outgoing is not None:
        incoming = {w.url for w in plan.router.workers}
        version = outgoing.cluster.sglang_version
        workers += [
            {**w.to_dict(), "instance": outgoing_name(w.instance, version)}
            for w in outgoing.router.workers
            if w.url not in incoming
        ]
    names = {w["instance"] for w in workers}
    router = plan.cluster.router
    document = {
        "router": plan.router.local_url,
        "interval_secs": router.membership_interval_secs,
        "drain_timeout_secs": router.drain_timeout_secs,
        "workers": workers,
        "drained": {name: record for name, record in sorted((drained or {}).items()) if name in names},
    }
    if plan.cluster.security.api_keys:
        # where the agent finds the API key (the path only: the agent reads the root-only file)
        document["key_file"] = apikeys.KEY_FILE
    return RenderedFile(members_json(document))


def instance_inputs(files: dict[str, dict[str, RenderedFile]], plan: ServingPlan, instance: str) -> str:
    """One digest of everything the ranks of an instance read (env files, DeepGEMM keys, units), over all ranks.

    Every rank holds the same digest, so a change on any one rank restarts all of them together: a multi-node
    instance cannot take one rank back alone.
    """
    digest = hashlib.sha256()
    for spec in plan.ranks(instance):
        for path in (
            spec.env_file,
            key_file(spec.instance),
            f"{UNIT_DIR}/{spec.precompile_unit}",
            f"{UNIT_DIR}/{spec.unit}",
        ):
            digest.update(f"{spec.host}\0{path}\0".encode())
            digest.update(files[spec.host][path].content.encode())
            digest.update(b"\0")
    return digest.hexdigest()


def _share_files(env: jinja2.Environment, cluster, common: dict, node) -> dict[str, RenderedFile]:
    """The weights stager's configuration and the share peers copy from (every node holds both)."""
    ctx = {
        **common,
        "address": node.address,
        "port": cluster.share_port,
        "allowed": [n.address for n in cluster.nodes if n.name != node.name],
        "max_connections": max(4, len(cluster.nodes)),
        "model_path": cluster.model.path,
        "weights_module": WEIGHTS_MODULE,
        "cache_module": CACHE_MODULE,
        "share_config": SHARE_CONFIG,
    }
    return {
        STAGER_CONFIG: RenderedFile(stager_config_text(cluster, node.name)),
        SHARE_CONFIG: RenderedFile(env.get_template("rsyncd.conf.j2").render(ctx)),
        f"{UNIT_DIR}/{SHARE_UNIT}": RenderedFile(env.get_template("pdfleet-share.service.j2").render(ctx)),
    }


# The host layer's files, and the container runtime's apt files (roles/container.py): (template under
# templates/host/, path on the host, mode, when).
HOST_FILES = (
    ("blacklist-nouveau.conf.j2", "/etc/modprobe.d/pdfleet-blacklist-nouveau.conf", "0644", None),
    ("deepep.conf.j2", "/etc/modprobe.d/pdfleet-deepep.conf", "0644", "deepep_driver_options"),
    ("gpudirect-modules.conf.j2", "/etc/modules-load.d/pdfleet-gpudirect.conf", "0644", None),
    ("sysctl.conf.j2", "/etc/sysctl.d/90-pdfleet.conf", "0644", None),
    ("chrony-sources.j2", "/etc/chrony/sources.d/pdfleet.sources", "0644", "ntp_servers"),
    ("limits.conf.j2", "/etc/security/limits.d/90-pdfleet.conf", "0644", None),
    ("cuda-repo.list.j2", "/etc/apt/sources.list.d/pdfleet-cuda.list", "0644", "cuda_repo"),
    ("nvidia-pin.pref.j2", "/etc/apt/preferences.d/pdfleet-nvidia.pref", "0644", None),
    ("doca-repo.list.j2", "/etc/apt/sources.list.d/pdfleet-doca.list", "0644", "doca_repo"),
    ("rdma-pin.pref.j2", "/etc/apt/preferences.d/pdfleet-rdma.pref", "0644", None),
    ("docker-repo.list.j2", "/etc/apt/sources.list.d/pdfleet-docker.list", "0644", "docker_repo"),
    ("docker-pin.pref.j2", "/etc/apt/preferences.d/pdfleet-docker.pref", "0644", "docker_engine"),
    ("unattended-upgrades.conf.j2", "/etc/apt/apt.conf.d/51pdfleet-unattended-upgrades", "0644", None),
    ("journald.conf.j2", "/etc/systemd/journald.conf.d/90-pdfleet.conf", "0644", None),
    ("grub-iommu.cfg.j2", "/etc/default/grub.d/90-pdfleet-iommu.cfg", "0644", "iommu_passthrough"),
    ("persistenced-override.conf.j2", "/etc/systemd/system/nvidia-persistenced.service.d/pdfleet.conf", "0644", None),
    ("host-tuning.sh.j2", "/usr/local/sbin/pdfleet-host-tuning", "0755", None),
    ("pdfleet-host-tuning.service.j2", f"{UNIT_DIR}/pdfleet-host-tuning.service", "0644", None),
)
# Switches that hold on serving nodes only: the Docker engine is installed where SGLang runs (roles/runtime.py).
SERVING_ONLY = frozenset({"docker_engine", "docker_repo"})


def _host_context(cluster, common: dict) -> tuple[dict, dict]:
    """What every node's host-layer files share: the template context and which optional files exist."""
    host = cluster.host
    container = cluster.runtime.kind == "container"
    switches = {
        "deepep_driver_options": host.deepep_driver_options,
        "iommu_passthrough": host.tuning.iommu_passthrough,
        "cuda_repo": host.nvidia.source == "cuda-repo",
        "doca_repo": host.rdma.stack == "doca-ofed" and host.rdma.source == "doca-repo",
        "ntp_servers": bool(host.base.ntp_servers),
        "docker_engine": container,
        "docker_repo": container and cluster.runtime.docker_source == "docker-repo",
    }
    ctx = {
        **common,
        "tuning": host.tuning,
        "rdma": host.rdma,
        "nvidia_pins": nvidia_pins(cluster),
        "rdma_pins": rdma_pins(cluster),
        "cuda_mirror": cuda_mirror(cluster),
        "doca_mirror": doca_mirror(cluster),
        "ntp_servers": host.base.ntp_servers,
        "unattended_blacklist": UNATTENDED_BLACKLIST,
        "docker_pins": docker_pins(cluster),
        "docker_mirror": docker_mirror(cluster),
        "docker_codename": docker_codename(cluster),
    }
    return ctx, switches


def _host_files(env: jinja2.Environment, cluster, shared: tuple[dict, dict], node: str) -> dict[str, RenderedFile]:
    ctx, switches = shared
    ctx = {**ctx, "sysctls": sysctls(cluster, node)}  # the per-node parts: its reserved serving ports
    serves = cluster.placement(node) is not None  # and whether it serves (SERVING_ONLY)
    out = {}
    for template, path, mode, switch in HOST_FILES:
        if switch is None or (switches[switch] and (serves or switch not in SERVING_ONLY)):
            out[path] = RenderedFile(env.get_template(f"host/{template}").render(ctx), mode)
    return out


def _monitoring_files(env: jinja2.Environment, cluster, common: dict) -> dict[str, dict[str, RenderedFile]]:
    """The exporters on every node, Prometheus and Grafana on the monitoring node (pdfleet/monitoringplan.py)."""
    monitoring = cluster.monitoring
    ctx = {**common, "docker": DOCKER}
    everywhere = {
        mon.NODE_EXPORTER_DEFAULTS: RenderedFile(
            env.get_template("monitoring/prometheus-node-exporter.default.j2").render(
                ctx, args=mon.node_exporter_args(cluster)
            )
        ),
        mon.MONITORING_PINS: RenderedFile(
            env.get_template("monitoring/monitoring-pin.pref.j2").render(ctx, pins=mon.monitoring_pins(cluster))
        ),
    }
    if monitoring.dcgm_exporter == "package":
        everywhere[mon.DCGM_COUNTERS] = RenderedFile(counters_csv())
        everywhere[mon.DCGM_DROP_IN] = RenderedFile(
            env.get_template("monitoring/dcgm-exporter-override.conf.j2").render(
                ctx, argv=["/usr/bin/dcgm-exporter", *mon.dcgm_exporter_argv(cluster)]
            )
        )
    else:
        everywhere[mon.DCGM_COUNTERS] = RenderedFile(counters_csv())
        everywhere[f"{UNIT_DIR}/{mon.DCGM_CONTAINER_UNIT}"] = RenderedFile(
            env.get_template("monitoring/pdfleet-dcgm-exporter.service.j2").render(
                ctx, image=monitoring.dcgm_exporter_image, argv=mon.dcgm_container_argv(cluster, DOCKER)
            )
        )
    out = {node.name: dict(everywhere) for node in cluster.nodes}
    home = out[cluster.monitoring_node]
    home[mon.PROMETHEUS_CONFIG] = RenderedFile(mon.prometheus_config(cluster))
    home[mon.PROMETHEUS_DEFAULTS] = RenderedFile(
        env.get_template("monitoring/prometheus.default.j2").render(ctx, args=mon.prometheus_args(cluster))
    )
    home[mon.RULES_FILE] = RenderedFile(rules_yaml(cluster))
    for job in mon.JOBS:
        home[f"{mon.TARGETS_DIR}/{job}.json"] = RenderedFile(mon.targets_file(cluster, job))
    home[mon.GRAFANA_INI] = RenderedFile(mon.grafana_ini(cluster))
    home[mon.GRAFANA_DATASOURCES] = RenderedFile(mon.grafana_datasources(cluster))
    home[mon.GRAFANA_PROVIDERS] = RenderedFile(mon.grafana_providers(cluster))
    for name, text in dashboards(cluster).items():
        home[f"{mon.DASHBOARDS_DIR}/{name}"] = RenderedFile(text)
    if monitoring.grafana_source == "grafana-repo":
        home[mon.GRAFANA_SOURCES] = RenderedFile(
            env.get_template("monitoring/grafana-repo.list.j2").render(ctx, key=mon.GRAFANA_KEY, repo=mon.GRAFANA_REPO)
        )
    return out


def _firewall_files(env: jinja2.Environment, cluster, common: dict, node: str) -> dict[str, RenderedFile]:
    """The node's nftables table, its boot-time unit and the safety net's rollback (pdfleet/firewallplan.py)."""
    ctx = {
        **common,
        "rules_file": fw.RULES_FILE,
        "table": fw.TABLE,
        "rollback_dir": fw.ROLLBACK_DIR,
        "rollback_unit": fw.ROLLBACK_UNIT,
    }
    return {
        fw.RULES_FILE: RenderedFile(fw.ruleset(cluster, node)),
        fw.ROLLBACK_SCRIPT: RenderedFile(
            env.get_template("firewall/pdfleet-firewall-rollback.sh.j2").render(ctx), "0755"
        ),
        f"{UNIT_DIR}/{fw.UNIT}": RenderedFile(env.get_template("firewall/pdfleet-firewall.service.j2").render(ctx)),
    }


def write_tree(files: dict[str, dict[str, RenderedFile]], out: Path) -> list[Path]:
    """Write the render under out/<host>/<absolute path>; returns the paths written."""
    written = []
    for host, paths in files.items():
        for path, rendered in paths.items():
            target = out / host / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(rendered.content)
            target.chmod(int(rendered.mode, 8))
            written.append(target)
    return written
