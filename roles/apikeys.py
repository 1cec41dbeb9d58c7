"""The API keys on the nodes (pdfleet/apikeys.py reads them on the machine running pdfleet): each file written
0600 in the root-only /etc/pdfleet/keys, compared by its hash (`roles.weights.secret_file`), so a converged node
changes nothing and no key reaches a diff, a command line or a log. With `security.api_keys: false` the same
operations remove the files an earlier run with keys left (and change nothing where there are none)."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import DeployError
from pyinfra.api.operation import OperationMeta

from pdfleet.apikeys import ApiKeyError, ApiKeys, read_api_keys
from roles import common
from roles.weights import secret_file


def keys() -> ApiKeys | None:
    """The keys, None when API keys are off; a clear DeployError when they are missing or unusable."""
    try:
        return read_api_keys(common.cluster())
    except ApiKeyError as exc:
        raise DeployError(str(exc)) from None


def put(wanted: dict[str, str | None]) -> list[OperationMeta]:
    """One secret_file per path (content None: removed); the operations, for a restart after their change."""
    placed = []
    for path in host.loop(sorted(wanted)):
        name = f"API key file {path} (0600, compared by hash)"
        placed.append(secret_file(name=name, path=path, secret=wanted[path], label="API key"))
    return placed
