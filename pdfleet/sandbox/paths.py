"""Where the sandbox keeps its image, host state and keys, and what it names things on this machine."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_INVENTORY = REPO_ROOT / "inventories" / "sandbox.yaml"


@dataclass(frozen=True)
class SandboxPaths:
    """All on-disk state under one directory (default: <repo>/.cache/sandbox, or $PDFLEET_SANDBOX_DIR)."""

    root: Path

    @classmethod
    def default(cls) -> SandboxPaths:
        return cls(Path(os.environ.get("PDFLEET_SANDBOX_DIR", REPO_ROOT / ".cache" / "sandbox")).resolve())

    @property
    def image(self) -> Path:
        return self.root / "image"

    @property
    def rootfs(self) -> Path:
        return self.image / "rootfs"

    @property
    def image_stamp(self) -> Path:
        return self.image / "stamp.json"

    @property
    def downloads(self) -> Path:
        """Wheels and .debs fetched from the registries, kept between image builds."""
        return self.root / "downloads"

    @property
    def ssh(self) -> Path:
        return self.root / "ssh"

    @property
    def client_key(self) -> Path:
        return self.ssh / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh / "known_hosts"

    def host(self, name: str) -> Path:
        return self.root / "hosts" / name

    @property
    def hosts(self) -> Path:
        return self.root / "hosts"

    @property
    def hub(self) -> Path:
        """The stand-in hub's token (kept across downs), request log, fault knobs, PID and console."""
        return self.root / "hub"


# Names on this machine. Short: interface names are limited to 15 characters.
BRIDGE = "pdfsb0"
NETNS_PREFIX = "pdfsb-"
VETH_PREFIX = "vpdfsb"
CGROUP_NAME = "pdfleet-sandbox"
# The stand-in hub (pdfleet/sandbox/hub.py): its own namespace ("_" never occurs in a host name, so it cannot clash
# with NETNS_PREFIX + host), its veth, the port it listens on at the sandbox /24's second address.
HUB_NETNS = "pdfsb_hub"
HUB_VETH = f"{VETH_PREFIX}hub"
HUB_PORT = 8080

# The fields of inventories/sandbox.yaml holding paths relative to it: a copy elsewhere makes them absolute.
RELATIVE_PATHS = (
    ("ssh", "key"),
    ("ssh", "known_hosts"),
    ("model", "token_file"),
    ("security", "client_keys_file"),
    ("security", "engine_key_file"),
)
