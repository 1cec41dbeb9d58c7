"""roles.tuning alone, for the sandbox tests (deploys/host.py will run it with the other host roles)."""

from roles.tuning import tuning

tuning()
