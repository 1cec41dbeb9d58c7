"""Monitoring alone: the exporters on every node, Prometheus and Grafana on the monitoring node (also part of
deploys/serve.py and deploys/pd.py). Restarts no engine and not the router.

    pyinfra inventories/prod.py deploys/monitoring.py
"""

from roles import prefetch, speedups
from roles.monitoring import monitoring

speedups.install()  # pyinfra's operation order without reading source lines (roles/speedups.py)
prefetch.install("monitoring")  # facts of a converged host in one round trip (roles/prefetch.py)
monitoring()
