"""Secrets pasted into an inventory: refused, and never repeated in the message that refuses them.

The inventory is a file people commit, diff and paste into tickets; tokens and keys belong in this machine's
environment or a root-only file (`model.token_env` / `token_file`, `security.*_keys_env` / `*_key_file`). A value
that looks like a Hugging Face token or an API key, or any value under a key named like a secret, is reported as
"found a ... (not shown)". Other problems on the same line follow from it (an unknown `token:` field, a token
where a variable's name belongs) and are withdrawn, so the secret's text appears in no message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pdfleet.errors import Problem
from pdfleet.yamlsource import describe

HF_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{20,}")
API_KEY_RE = re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")
# Keys named like a secret (HF_TOKEN, OPENAI_API_KEY, token, client_keys, password); the fields that name where
# a secret lives (token_env, client_keys_file, ssh.key: a key file's path, api_keys: on or off) are not secrets.
SECRET_NAME_RE = re.compile(r"(?i)(^|_)(token|secret|password|passwd|api_?key|key|keys)$")
NOT_SECRETS = {("ssh", "key"), ("security", "api_keys")}

HUB_FIELDS = "model.token_env or model.token_file (the token stays on this machine, out of the inventory)"
KEY_FIELDS = (
    "security.client_keys_env / client_keys_file or security.engine_key_env / engine_key_file "
    "(keys stay on this machine, out of the inventory)"
)


def _walk(node: Any, path: tuple) -> Iterator[tuple[tuple, Any, int | None]]:
    """(path, value, line) of every scalar and of every mapping entry."""
    if isinstance(node, dict):
        lines = getattr(node, "lines", {})
        for key, value in node.items():
            yield (*path, key), value, lines.get(key)
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        lines = getattr(node, "lines", [None] * len(node))
        for index, value in enumerate(node):
            if not isinstance(value, (dict, list)):
                yield (*path, index), value, lines[index]
            yield from _walk(value, (*path, index))


def find(data: Any, file: str) -> tuple[list[Problem], set[int], list[str]]:
    """The pasted secrets of a loaded inventory: (problems, their lines, the secret texts)."""
    problems: list[Problem] = []
    lines: set[int] = set()
    texts: list[str] = []
    seen: set[tuple] = set()
    for path, value, line in _walk(data, ()):
        if isinstance(path[-1], str) and (HF_TOKEN_RE.search(path[-1]) or API_KEY_RE.search(path[-1])):
            # pasted where a key belongs: the field's name is the secret, so the message names its parent
            where, field = describe(data, path[:-1]) if len(path) > 1 else ("inventory", "-")
            found = "a Hugging Face token (not shown)" if HF_TOKEN_RE.search(path[-1]) else "an API key (not shown)"
            problems.append(
                Problem(
                    file,
                    line,
                    where,
                    field,
                    f"{found} as a key",
                    HUB_FIELDS if "token" in found.lower() else KEY_FIELDS,
                )
            )
            texts.append(path[-1])
            if line:
                lines.add(line)
            continue
        texts_here = [v for v in _strings(value)]
        found = expected = None
        if any(HF_TOKEN_RE.search(v) for v in texts_here):
            found, expected = "a Hugging Face token (not shown)", HUB_FIELDS
        elif any(API_KEY_RE.search(v) for v in texts_here):
            found, expected = "an API key (not shown)", KEY_FIELDS
        elif (
            isinstance(path[-1], str)
            and SECRET_NAME_RE.search(path[-1])
            and tuple(path[-2:]) not in NOT_SECRETS
            and texts_here
            and any(v.strip() for v in texts_here)
        ):
            name = path[-1].lower()
            if "token" in name:
                found, expected = "a token (not shown)", HUB_FIELDS
            elif "key" in name:
                found, expected = "an API key (not shown)", KEY_FIELDS
            else:
                found, expected = "a secret (not shown)", f"{HUB_FIELDS}, or {KEY_FIELDS}"
        if found is None:
            continue
        texts.extend(v for v in texts_here if v.strip())
        if any(path[: len(p)] == p for p in seen):
            continue  # inside a mapping or list already reported
        seen.add(path)
        where, field = describe(data, path)
        problems.append(Problem(file, line, where, field, found, expected))
        if line:
            lines.add(line)
    return problems, lines, texts


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []
