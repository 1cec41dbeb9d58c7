"""The host layer: a bare Ubuntu 22.04/24.04 (or Debian 12) GPU server to a node that runs DeepEP,
NVSHMEM, NCCL and Mooncake at full speed. May reboot: hosts marked by a role reboot last, hosts serving nothing
together (`host.reboot.parallel` at a time), serving instances one at a time, drained first and put back after
their health gate (pdfleet/rebootplan.py); `--data pdfleet_defer_reboots=1` lists them instead.

    pyinfra inventories/prod.py deploys/host.py
    pyinfra inventories/prod.py deploys/host.py --dry --diff     # what would change, and no change made
"""

from roles import prefetch, speedups
from roles.layers import HOST_LAYER, apply

speedups.install()  # pyinfra's operation order without reading source lines (roles/speedups.py)
prefetch.install("host")  # facts of a converged host in one round trip (roles/prefetch.py)
apply(HOST_LAYER)  # base, nvidia, deepep, rdma, tuning, reboot
