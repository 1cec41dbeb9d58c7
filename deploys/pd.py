"""Everything: the host layer, the serving layer, then the health gate through the router.

pyinfra inventories/prod.py deploys/pd.py
pyinfra inventories/prod.py deploys/pd.py --dry --diff
"""

from roles import prefetch, speedups
from roles.health import health_gate
from roles.layers import HOST_LAYER, SERVING_LAYER, apply

speedups.install()  # pyinfra's operation order without reading source lines (roles/speedups.py)
prefetch.install("pd")  # facts of a converged host in one round trip (roles/prefetch.py)
apply((*HOST_LAYER, *SERVING_LAYER))
health_gate()
