"""Record what a converged sandbox host answers to every command deploys/host.py's roles ask while planning, for
the @fake tests (tests/test_host_converged.py): real answers, from real apt, systemd and files.

    pdfleet sandbox up && pyinfra -y inventories/sandbox.py deploys/host.py
    python tests/tools/record_host_answers.py decode-0 > tests/fixtures/converged-host/decode-0.json

Planning only (nothing is executed on the host beyond the facts' own read-only commands).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.context import ctx_state

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pdfleet.cluster import load_cluster  # noqa: E402
from pdfleet.inventory import host_data  # noqa: E402
from roles.layers import HOST_LAYER  # noqa: E402


def record(node: str, inventory_yaml: Path = ROOT / "inventories/sandbox.yaml") -> dict[str, dict]:
    cluster = load_cluster(inventory_yaml)
    data = host_data(cluster, node, inventory_yaml)
    state = State(Inventory(([(data["ssh_hostname"], data)], {})), Config())
    answers: dict[str, dict] = {}
    with ctx_state.use(state):
        connect_all(state)
        [host] = list(state.inventory)
        real = host.connector.run_shell_command

        def recording(command, **kwargs):
            status, output = real(command, **kwargs)
            text = command if isinstance(command, str) else command.get_masked_value()
            answers[text] = {"stdout": output.stdout_lines, "stderr": output.stderr_lines, "success": status}
            return status, output

        host.connector.run_shell_command = recording
        for role in HOST_LAYER:
            add_deploy(state, role)
    return answers


if __name__ == "__main__":
    json.dump(record(sys.argv[1]), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
