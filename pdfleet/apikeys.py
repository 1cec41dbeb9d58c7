"""The API keys, read on the machine running pdfleet like the hub token (pdfleet/hubtoken.py): the client keys from
`security.client_keys_env` (comma-separated) or `security.client_keys_file` (one key per line), the engine key from
`security.engine_key_env` or `security.engine_key_file`. A file must be readable by its owner only. The keys are
never part of the cluster model, a rendered file, a plan, a diff or a log line: the roles write them 0600 into
root-only files (`engine_files`, `router_files`; roles/apikeys.py), compared by their hash, and every process
reads them there.

smg 1.13.0 in PD mode forwards the client's `Authorization` header to the prefill and decode engines unchanged
(measured on loopback; its worker `api_key` is sent only on its own calls: health checks, /v1/models,
/server_info, loads), and SGLang takes a single `--api-key`. A request passes the engines only when the client's key
is the engine's key, so pdfleet takes exactly one client key, and it must be the engine key (docs/security.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pdfleet.cluster import Cluster
from pdfleet.hubtoken import read_owner_only

# On every node, a root-only directory (0700) of files each holding the key in the form one reader needs.
KEYS_DIR = "/etc/pdfleet/keys"
# SGLang's --config file (YAML): `api-key: <key>`; SGLang merges it into its arguments (not in argv, not in ps).
ENGINE_CONFIG = f"{KEYS_DIR}/engine-api-key.yaml"
# The key alone: the membership agent, drain, status.
KEY_FILE = f"{KEYS_DIR}/api-key"
# curl's header file (`curl -H @FILE`), on every node: the health gate's calls through the router, on-host checks.
CURL_HEADER = f"{KEYS_DIR}/curl-authorization"
# The router unit's EnvironmentFile: smg takes its key only as an argument (`--api-key ${ROUTER_KEY_VAR}`).
ROUTER_ENV = f"{KEYS_DIR}/router.env"
ROUTER_KEY_VAR = "PDFLEET_ROUTER_API_KEY"


class ApiKeyError(Exception):
    """A key that cannot be used; the message names the source, the field, found and expected (never the key)."""


@dataclass(frozen=True)
class ApiKeys:
    client: str  # the key clients send to the router
    engine: str  # the key the engines take (smg 1.13.0: the same key)

    def __repr__(self) -> str:  # never print a key by accident
        return "ApiKeys(<hidden>)"


def _path(cluster: Cluster, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(cluster.source).resolve().parent / path


def _read_file(cluster: Cluster, field: str, path: Path) -> list[str]:
    where = f"{cluster.source}: security: field '{field}'"
    text = read_owner_only(path, where, "the key(s)", ApiKeyError)
    keys = [line.strip() for line in text.splitlines() if line.strip()]
    if not keys:
        raise ApiKeyError(f"{where}: found an empty file {path}, expected one key per line")
    return keys


def _check(where: str, key: str) -> str:
    if len(key) < 16 or any(c.isspace() or not c.isprintable() or c in "\"'\\$%" for c in key):
        raise ApiKeyError(
            f"{where}: found a key of {len(key)} characters (not shown), expected at least 16 printable characters "
            "without spaces, quotes, backslashes, '$' or '%' (e.g. `openssl rand -hex 32`)"
        )
    return key


def read_api_keys(cluster: Cluster, environ=os.environ) -> ApiKeys | None:
    """The keys, or None when `security.api_keys` is off; ApiKeyError when they are missing or unusable."""
    security = cluster.security
    if not security.api_keys:
        return None
    client_file = _path(cluster, security.client_keys_file)
    if client_file is not None:
        where = f"{cluster.source}: security: field 'client_keys_file' ({client_file})"
        clients = _read_file(cluster, "client_keys_file", client_file)
    else:
        where = f"environment variable {security.client_keys_env} (security: client_keys_env)"
        clients = [k.strip() for k in environ.get(security.client_keys_env, "").split(",") if k.strip()]
        if not clients:
            raise ApiKeyError(
                f"{where}: found nothing, expected the router's client key (or set security.client_keys_file, "
                "or security.api_keys: false)"
            )
    if len(clients) != 1:
        raise ApiKeyError(
            f"{where}: found {len(clients)} keys, expected exactly one: smg 1.13.0 forwards the client's key to "
            "the engines, which take a single key (docs/security.md)"
        )
    client = _check(where, clients[0])
    engine_file = _path(cluster, security.engine_key_file)
    if engine_file is not None:
        ewhere = f"{cluster.source}: security: field 'engine_key_file' ({engine_file})"
        engines = _read_file(cluster, "engine_key_file", engine_file)
    else:
        ewhere = f"environment variable {security.engine_key_env} (security: engine_key_env)"
        engines = [environ.get(security.engine_key_env, "").strip()]
        if not engines[0]:
            raise ApiKeyError(
                f"{ewhere}: found nothing, expected the engines' key (or set security.engine_key_file, "
                "or security.api_keys: false)"
            )
    if len(engines) != 1:
        raise ApiKeyError(f"{ewhere}: found {len(engines)} keys, expected exactly one")
    engine = _check(ewhere, engines[0])
    if engine != client:
        raise ApiKeyError(
            f"{ewhere}: found a key different from the client key, expected the same key: smg 1.13.0 forwards the "
            "client's Authorization header to the engines unchanged, so the engines would refuse every request "
            "(docs/security.md)"
        )
    return ApiKeys(client=client, engine=engine)


def engine_files(keys: ApiKeys | None) -> dict[str, str | None]:
    """The key files of an engine node: path -> content (None: removed). The curl header file too: on-host checks
    of the engine's endpoints (an operator's `curl -H @...`, the benchmarks) need no key on their command line."""
    return {
        ENGINE_CONFIG: f'api-key: "{keys.engine}"' if keys else None,
        CURL_HEADER: f"Authorization: Bearer {keys.engine}" if keys else None,
    }


def router_files(keys: ApiKeys | None) -> dict[str, str | None]:
    """The key files of the router's node: path -> content (None: removed)."""
    return {
        KEY_FILE: keys.engine if keys else None,
        CURL_HEADER: f"Authorization: Bearer {keys.client}" if keys else None,
        ROUTER_ENV: f"{ROUTER_KEY_VAR}={keys.client}" if keys else None,
    }
