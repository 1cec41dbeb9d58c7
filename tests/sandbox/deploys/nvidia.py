"""roles.nvidia alone, for the sandbox tests (deploys/host.py runs it with the other host roles)."""

from roles.nvidia import nvidia

nvidia()
