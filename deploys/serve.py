"""The serving layer: a node that passed the host layer to a running part of the PD deployment: the runtime, the
weights (staged once over the WAN, copied inside the cluster), the units (env, DeepGEMM key, precompile, server;
the router on its node), the DeepGEMM cache compiled once per key and copied. Never reboots.

    pyinfra inventories/prod.py deploys/serve.py
"""

from roles import prefetch, speedups
from roles.layers import SERVING_LAYER, apply

speedups.install()  # pyinfra's operation order without reading source lines (roles/speedups.py)
prefetch.install("serve")  # facts of a converged host in one round trip (roles/prefetch.py)
apply(SERVING_LAYER)  # runtime, weights, units (DeepGEMM cache and restarts included)
