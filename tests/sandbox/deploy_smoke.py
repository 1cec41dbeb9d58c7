"""A small real deploy for the sandbox tests: a package from the offline repository, a template, a systemd unit,
a per-namespace sysctl. Idempotent: a second run changes nothing. `--data smoke_greeting=...` changes the template.
"""

from io import StringIO

from pyinfra import host
from pyinfra.operations import apt, files, server, systemd

greeting = host.data.get("smoke_greeting", "hello")

apt.packages(name="Smoke | install jq from the offline repository", packages=["jq"], update=True, cache_time=3600)

files.directory(name="Smoke | create /etc/pdfleet-smoke", path="/etc/pdfleet-smoke", mode="755")

config = files.template(
    name="Smoke | render /etc/pdfleet-smoke/smoke.env",
    src=__file__.rsplit("/", 1)[0] + "/templates/smoke.env.j2",
    dest="/etc/pdfleet-smoke/smoke.env",
    greeting=greeting,
    peers=[h.name for h in host.inventory],
)

unit = files.put(
    name="Smoke | install pdfleet-smoke.service",
    src=StringIO(
        "[Unit]\nDescription=pdfleet sandbox smoke service\n\n"
        "[Service]\nEnvironmentFile=/etc/pdfleet-smoke/smoke.env\n"
        "ExecStart=/bin/sh -c 'echo \"$GREETING from $(hostname)\" > /run/pdfleet-smoke; exec sleep infinity'\n"
        "Restart=always\n\n[Install]\nWantedBy=multi-user.target\n"
    ),
    dest="/etc/systemd/system/pdfleet-smoke.service",
)

systemd.service(
    name="Smoke | pdfleet-smoke.service enabled and running",
    service="pdfleet-smoke.service",
    running=True,
    enabled=True,
    daemon_reload=unit.will_change,
)

systemd.service(
    name="Smoke | restart pdfleet-smoke.service when its config changed",
    service="pdfleet-smoke.service",
    restarted=True,
    _if=config.did_change,
)

server.sysctl(
    name="Smoke | net.core.somaxconn (per network namespace)", key="net.core.somaxconn", value=1024, persist=True
)
