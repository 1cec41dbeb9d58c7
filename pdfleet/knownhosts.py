"""The pinned SSH host keys (`ssh.known_hosts` of the inventory): read, and replace one node's entries.

A re-imaged node comes back with a new host key. pdfleet checks host keys strictly, so the replacement runbook
pins the new key, and only after a guard: the person sees the old and the new fingerprint and confirms. Pure text
edits here; scanning the key is the CLI's (ssh-keyscan).
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def _names(address: str, name: str, port: int) -> set[str]:
    """How known_hosts may name the node: its address and its name, `[host]:port` off port 22."""
    plain = {address, name}
    return plain if port == 22 else {f"[{n}]:{port}" for n in plain}


def entries(text: str, address: str, name: str, port: int = 22) -> list[tuple[str, str]]:
    """The (key type, base64 key) pairs pinned for the node (plain, unhashed entries)."""
    wanted = _names(address, name, port)
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#") and wanted & set(fields[0].split(",")):
            found.append((fields[1], fields[2]))
    return found


def replaced(text: str, address: str, name: str, port: int, key_type: str, key: str) -> str:
    """`text` with every entry of the node dropped and one line per name pinning (key_type, key) added."""
    wanted = _names(address, name, port)
    kept = [
        line
        for line in text.splitlines(keepends=True)
        if line.startswith("#") or not (len(line.split()) >= 3 and wanted & set(line.split()[0].split(",")))
    ]
    if kept and not kept[-1].endswith("\n"):
        kept[-1] += "\n"
    pinned = [f"{n} {key_type} {key}\n" for n in sorted(wanted)]
    return "".join(kept + pinned)


def _hashed_match(pattern: str, names: set[str]) -> bool:
    """Whether a hashed known_hosts name (`|1|salt|hash`, what `HashKnownHosts yes` writes) is one of `names`."""
    try:
        _, kind, salt, digest = pattern.split("|")
        if kind != "1":
            return False
        key, wanted = base64.b64decode(salt), base64.b64decode(digest)
    except ValueError:
        return False
    return any(hmac.compare_digest(hmac.new(key, n.encode(), hashlib.sha1).digest(), wanted) for n in names)


def is_pinned(text: str, address: str, port: int = 22) -> bool:
    """Whether known_hosts `text` holds a key for the node's address, in plain or hashed form (ssh looks the node up
    by the address pyinfra connects to). Revoked (`@revoked`) lines pin nothing."""
    names = {address} if port == 22 else {f"[{address}]:{port}"}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3 or line.startswith("#") or fields[0].startswith("@"):  # @revoked, @cert-authority
            continue
        patterns = fields[0].split(",")
        if names & set(patterns) or any(p.startswith("|1|") and _hashed_match(p, names) for p in patterns):
            return True
    return False


def fingerprint(key: str) -> str:
    """OpenSSH's SHA256 fingerprint of a base64 public key (what `ssh-keygen -lf` prints)."""
    digest = hashlib.sha256(base64.b64decode(key)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def scanned(output: str) -> tuple[str, str] | None:
    """The first (key type, key) in ssh-keyscan's output, or None when it printed none."""
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#"):
            return fields[1], fields[2]
    return None
