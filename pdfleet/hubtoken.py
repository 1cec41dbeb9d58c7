"""The hub token, read on the machine running pdfleet: from the environment variable `model.token_env` (default
HF_TOKEN) or the file `model.token_file`. A file must be readable by its owner only. The token is never part of
the cluster model, a rendered file, a plan, a diff or a log line; the weights role writes it to the seed alone,
0600 in a 0700 directory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pdfleet.cluster import Cluster


class TokenError(Exception):
    """A token file that cannot be used; the message names the file, the field, found and expected."""


def token_file_path(cluster: Cluster) -> Path | None:
    if cluster.model.token_file is None:
        return None
    path = Path(cluster.model.token_file).expanduser()
    return path if path.is_absolute() else Path(cluster.source).resolve().parent / path


def read_owner_only(path: Path, where: str, holding: str, error: type[Exception]) -> str:
    """The text of a secret's file, refused (`error`, naming `where`) unless it is a regular file only its owner can
    read; `holding` says what it should hold ("the token")."""
    try:
        info = path.stat()
    except OSError as exc:
        raise error(f"{where}: found {path} ({exc.strerror}), expected a readable file holding {holding}") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{where}: found {path}, not a regular file, expected a file holding {holding}")
    if info.st_mode & 0o077:
        raise error(
            f"{where}: found {path} with mode {stat.S_IMODE(info.st_mode):04o}, "
            "expected a file only its owner can read (chmod 600)"
        )
    return path.read_text(encoding="utf-8")


def read_hub_token(cluster: Cluster, environ=os.environ) -> str | None:
    """The token, or None when neither the file nor the environment variable gives one (public repositories)."""
    path = token_file_path(cluster)
    if path is not None:
        where = f"{cluster.source}: model: field 'token_file'"
        text = read_owner_only(path, where, "the token", TokenError)
        token = text.strip()
        if not token:
            raise TokenError(f"{where}: found an empty file {path}, expected the token on its first line")
        return token.splitlines()[0].strip()
    token = environ.get(cluster.model.token_env, "").strip()
    return token or None
