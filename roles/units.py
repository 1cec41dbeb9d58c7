"""The serving units: each node's env file, DeepGEMM cache key, precompile unit and serving unit, and the router's
unit on its node; every unit checked with `systemd-analyze verify` before it replaces the installed one.

Units are enabled (a rebooted or replaced node precompiles, then serves, by itself) and started without waiting
(`--no-block`: the ranks of a multi-node instance must come up together, and /health can take an hour of weight
loading; the health gate waits for them).

A unit restarts only when something it reads changed: each instance has one digest over every rank's env file,
DeepGEMM key and units (`pdfleet.render.instance_inputs`), recorded on each rank when its unit is (re)started.
A differing digest restarts every rank of the instance in the same step; a run cut short before the restart
leaves the old digest, so the next run restarts. Instances whose DeepGEMM cache is copied (roles/deepgemm.py)
restart after the copy, the compiling ones before it.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, deploy, operation
from pyinfra.operations import systemd

from pdfleet.render import instance_inputs, key_file
from pdfleet.serving import ROUTER_UNIT
from roles import common
from roles.deepgemm import cache_copied
from roles.unitfiles import rendered_unit, service_current

# Per instance: the digest of the inputs its unit was last (re)started with (pdfleet.render.instance_inputs).
APPLIED_DIR = "/var/lib/pdfleet/applied"


class SystemdUnitState(FactBase):
    """`systemctl is-active UNIT`: active, activating, inactive, failed ..."""

    def command(self, unit: str) -> StringCommand:
        return StringCommand("systemctl", "is-active", unit, "|| true")

    def process(self, output: list[str]) -> str:
        return "".join(output).strip()


class AppliedInputs(FactBase):
    """The digest of the inputs an instance's unit was last (re)started with; None before the first start."""

    def command(self, instance: str) -> StringCommand:
        return StringCommand("cat", f"{APPLIED_DIR}/{instance}", "2>/dev/null", "|| true")

    def process(self, output: list[str]) -> str | None:
        return "".join(output).strip() or None


@operation()
def running_current(unit: str, instance: str, digest: str, here: bool, step: str):
    """
    A serving unit running with its current inputs: restarted when the instance's inputs digest differs from the
    one it was last started with (every rank holds the same digest, so ranks restart together), started when it
    is down, left alone otherwise. Never waits: the health gate does.

    + unit / instance: the serving unit and its instance
    + digest: `pdfleet.render.instance_inputs` of the instance
    + here: whether this node (re)starts in this step
    + step: which step this is, for messages
    """
    if not here:
        host.noop(f"{unit}: not in this step ({step})")
        return
    if host.get_fact(AppliedInputs, instance=instance) == digest:
        state = host.get_fact(SystemdUnitState, unit=unit)
        # In transition (starting, waiting to restart after a crash, stopping before that): Restart= owns it.
        if state in ("active", "activating", "reloading", "deactivating"):
            host.noop(f"{unit} is {state} with its current inputs")
            return
        yield StringCommand("systemctl", "reset-failed", unit, "2>/dev/null", "|| true")
        yield StringCommand("systemctl", "start", "--no-block", unit)
        return
    # A restart pulls the precompile unit first: it compiles when the cache's stamp differs from the key.
    yield StringCommand("systemctl", "restart", "--no-block", unit)
    yield StringCommand("mkdir", "-p", APPLIED_DIR)
    yield StringCommand(f"echo {digest} > {APPLIED_DIR}/{instance}")


@deploy("Units")
def units():
    serving = common.serving_plan()
    cluster = serving.cluster
    node = common.node_name()
    spec = serving.server(node)
    routes = serving.router.host == node
    if spec is None and not routes:
        return

    if spec is not None:
        common.put_rendered(spec.env_file, name="serving environment")
        common.put_rendered(key_file(spec.instance), name="DeepGEMM cache key")
        installed = [
            rendered_unit(name, name=f"{what} unit verified and installed")
            for what, name in (("precompile", spec.precompile_unit), ("serving", spec.unit))
        ]
        systemd.daemon_reload(name="reload units", _if=common.changed(*installed))
        # Enabled only: starting is the next steps' decision (after the weights, the cache and its copy).
        systemd.service(name="serving unit enabled", service=spec.unit, running=None, enabled=True)
        digest = instance_inputs(common.rendered_files(), serving, spec.instance)
        source = serving.deep_gemm_source(node)
        current = dict(unit=spec.unit, instance=spec.instance, digest=digest)
        # Ordered across the cluster: compiling instances (re)start first, copies wait for their caches, then
        # the instances that copied (re)start.
        running_current(
            name="running its current inputs (compiles its cache)", here=source is None, step="compiles", **current
        )
        source_node = cluster.node(source) if source else None
        cache_copied(
            name="DeepGEMM cache copied",
            cache=cluster.deep_gemm_cache,
            key_path=key_file(spec.instance),
            key_text=spec.deep_gemm_key,
            source=source,
            address=source_node.address if source_node else "",
            port=cluster.share_port,
            timeout=cluster.precompile_timeout,
            compile_alone=len(serving.ranks(spec.instance)) == 1,
            silent_seconds=cluster.share_silent_timeout,
        )
        running_current(
            name="running its current inputs (copied cache)",
            here=source is not None,
            step="copies its cache first",
            **current,
        )
    if routes:
        service_current(ROUTER_UNIT, "router")
