"""Everything: the host layer, the serving layer, then the health gate through the router.

pyinfra inventories/prod.py deploys/pd.py
pyinfra inventories/prod.py deploys/pd.py --dry --diff
"""

from roles import prefetch
from roles.base import base
from roles.deepep import deepep_driver_options
from roles.health import health_gate
from roles.nvidia import nvidia
from roles.rdma import rdma
from roles.reboot import rolling
from roles.runtime import runtime
from roles.tuning import tuning
from roles.units import units

prefetch.install("pd")  # facts of a converged host in one round trip (roles/prefetch.py)
base()
nvidia()
deepep_driver_options()
rdma()
tuning()
rolling()
runtime()
units()
health_gate()
