"""roles.runtime for runtime.kind container alone, for the sandbox tests, with the one part of the host layer it
needs: the NVIDIA Container Toolkit (roles/nvidia.py installs it with the driver set for container runtimes)."""

from pyinfra.operations import apt

from roles.runtime import runtime

apt.packages(name="NVIDIA container toolkit (the host layer's)", packages=["nvidia-container-toolkit"])
runtime()
