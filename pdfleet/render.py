"""Every file a host must hold, as text, from the serving plan and templates/.

`render(plan)` returns {host: {absolute path: RenderedFile}}. The same text is what the pyinfra roles upload,
what `pdfleet render` writes for review and what `pdfleet diff` compares, so the offline render and the dry-run
diff can never disagree. Output is deterministic (sorted, no timestamps) and holds no secrets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from pdfleet.options import option_lines
from pdfleet.serving import DOCKER, ROUTER_UNIT, UNIT_DIR, ServingPlan

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"

_SAFE_ARG = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


@dataclass(frozen=True)
class RenderedFile:
    content: str
    mode: str = "0644"


def systemd_quote(arg: str) -> str:
    """Quote one argument for an Exec*= line: systemd expands %-specifiers and $VARS even in plain words."""
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
    router_ctx = {**common, "router": plan.router, "version": cluster.router.version}
    files[plan.router.host][f"{UNIT_DIR}/{ROUTER_UNIT}"] = RenderedFile(
        env.get_template("pdfleet-router.service.j2").render(router_ctx)
    )
    return {host: dict(sorted(paths.items())) for host, paths in sorted(files.items())}


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
