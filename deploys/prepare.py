"""Ahead of an upgrade's window, while the old version serves: the inventory's new serving runtime installed beside
the running one (its own venv under `runtime.venvs`, or the image pulled by digest). Nothing the running units
read is touched: no unit, env or key file, no restart, not the router. The window's converge then finds it
installed (docs/runbooks/upgrade.md).

    pyinfra inventories/prod.py deploys/prepare.py
"""

from roles import prefetch, speedups
from roles.layers import apply
from roles.runtime import serving_runtime

speedups.install()  # pyinfra's operation order without reading source lines (roles/speedups.py)
prefetch.install("prepare")  # facts of a converged host in one round trip (roles/prefetch.py)
apply((serving_runtime,))
