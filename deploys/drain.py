"""Drain or undrain one instance, on the router's node (`pdfleet drain` and `pdfleet undrain` run this).

    pyinfra inventories/prod.py deploys/drain.py --limit ROUTER_NODE \
        --data pdfleet_drain=prefill-1 --data pdfleet_drain_action=drain [--data pdfleet_drain_reason=...]

Host data: pdfleet_drain (the instance), pdfleet_drain_action (drain or undrain), pdfleet_drain_reason,
pdfleet_drain_timeout (seconds; default router.drain_timeout_secs for a drain, sglang.start_timeout for an undrain).
"""

from pyinfra import host
from pyinfra.api import DeployError

from roles import common
from roles.drain import instance_membership

serving = common.serving_plan()
if serving.router.host == common.node_name():
    cluster = serving.cluster
    instance = host.data.get("pdfleet_drain")
    known = [w.instance for w in serving.router.workers]
    if instance not in known:
        expected = f"an instance of {cluster.source}: {', '.join(known)}"
        raise DeployError(f"pdfleet_drain: found {instance!r}, expected {expected}")
    action = host.data.get("pdfleet_drain_action", "drain")
    default = cluster.router.drain_timeout_secs if action == "drain" else cluster.start_timeout
    instance_membership(
        name=f"{action} {instance}",
        action=action,
        instance=instance,
        reason=str(host.data.get("pdfleet_drain_reason") or ""),
        timeout=int(host.data.get("pdfleet_drain_timeout") or default),
    )
