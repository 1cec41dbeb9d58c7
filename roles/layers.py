"""The order the roles run in, once: deploys/host.py, deploys/serve.py, deploys/pd.py and the @fake tests use it."""

from collections.abc import Callable, Iterable

from pyinfra import host

from roles.base import base
from roles.deepep import deepep_driver_options
from roles.firewall import firewall
from roles.monitoring import monitoring
from roles.nvidia import nvidia
from roles.rdma import rdma
from roles.reboot import rolling
from roles.restarts import restarts
from roles.router import router
from roles.runtime import runtime
from roles.tuning import tuning
from roles.units import units
from roles.weights import weights

# base, NVIDIA driver set, DeepEP driver options, RDMA and GPUDirect, tuning, the firewall, then rolling reboots
# (last: a reboot loads the confirmed rules at boot).
HOST_LAYER = (base, nvidia, deepep_driver_options, rdma, tuning, firewall, rolling)
# The runtime and the weights before the units; the router and its membership before the restarts that drain;
# monitoring last (it reads what the others serve, and restarts none of them).
SERVING_LAYER = (runtime, weights, router, units, restarts, monitoring)


def apply(roles: Iterable[Callable[[], None]]) -> None:
    """Call each role in order, each in its own place of pyinfra's operation order.

    pyinfra orders operations by the line numbers of their callers alone, without file names, so two roles
    called from one line would give an operation at line N of one module and one at line N of another the same
    place: one operation, merged across hosts, and a "cycle detected" error. `host.loop` adds the role's
    position to the order, as pyinfra's docs advise for loops.
    """
    for role in host.loop(roles):
        role()
