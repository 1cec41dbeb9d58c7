"""The order the roles run in, once: deploys/host.py, deploys/serve.py, deploys/pd.py and the @fake tests use it."""

from roles.base import base
from roles.deepep import deepep_driver_options
from roles.nvidia import nvidia
from roles.rdma import rdma
from roles.reboot import rolling
from roles.runtime import runtime
from roles.tuning import tuning
from roles.units import units
from roles.weights import weights

# base, NVIDIA driver set, DeepEP driver options, RDMA and GPUDirect, tuning, then rolling reboots (last).
HOST_LAYER = (base, nvidia, deepep_driver_options, rdma, tuning, rolling)
# The runtime and the weights before the units that start them.
SERVING_LAYER = (runtime, weights, units)
