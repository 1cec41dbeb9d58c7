"""The order of the host layer's reboots (roles/reboot.py carries it out). Pure.

A reboot that takes down a serving instance costs its clients; one that takes down a host serving nothing (a
first bring-up, a spare) costs nobody. So:

- hosts serving nothing reboot first, together, at most `host.reboot.parallel` at a time: a cold bring-up takes
  one wave whether the cluster has 4 nodes or 32;
- then each serving instance in its own wave, in the inventory's order, every node of a multi-node instance in the
  same wave (it goes down once, not once per rank), never two instances at once (so never two of a role): drained
  out of the router first, back in after its health gate;
- the last serving instance of its role is an outage: its wave needs the switch (`pdfleet_allow_outage`, as for a
  restart); without it the wave does not reboot and its hosts are listed as still needing one.
"""

from __future__ import annotations

from dataclasses import dataclass

from pdfleet.cluster import Cluster


@dataclass(frozen=True)
class Wave:
    nodes: tuple[str, ...]
    instance: str | None = None  # the serving instance these nodes carry (all its nodes); None: they serve nothing
    role: str | None = None
    last_of_role: bool = False  # no other instance of its role serves: rebooting it is an outage

    @property
    def label(self) -> str:
        what = f"{self.instance} ({', '.join(self.nodes)})" if self.instance else ", ".join(self.nodes)
        return what if self.instance else f"{what} (serving nothing)"


def reboot_waves(cluster: Cluster, serving: frozenset[str], parallel: int) -> list[Wave]:
    """Every node of the cluster in one wave, in the order above.

    + serving: the instances that serve now (any of their ranks running); the rest of the nodes serve nothing
    + parallel: how many hosts serving nothing may reboot at once
    """
    carrying = {m.node for i in cluster.instances if i.name in serving for m in i.members}
    idle = [n.name for n in cluster.nodes if n.name not in carrying]
    waves = [Wave(tuple(idle[i : i + parallel])) for i in range(0, len(idle), parallel)]
    for instance in cluster.instances:
        if instance.name not in serving:
            continue
        others = [i for i in cluster.instances if i.role == instance.role and i.name != instance.name]
        waves.append(
            Wave(
                nodes=tuple(m.node for m in instance.members),
                instance=instance.name,
                role=instance.role,
                last_of_role=not any(i.name in serving for i in others),
            )
        )
    return waves
