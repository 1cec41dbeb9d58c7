"""`pdfleet sandbox up | down | purge | status | ssh HOST [CMD...]`."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import click

from pdfleet.errors import InventoryError
from pdfleet.sandbox import image
from pdfleet.sandbox.hosts import Sandbox, SandboxError
from pdfleet.sandbox.paths import DEFAULT_INVENTORY, HUB_PORT, SandboxPaths

inventory_option = click.option(
    "--inventory",
    "-i",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_INVENTORY,
    show_default="inventories/sandbox.yaml",
    help="The sandbox inventory (YAML or its .py).",
)


def _sandbox(inventory: Path) -> Sandbox:
    yaml_path = inventory.with_suffix(".yaml") if inventory.suffix == ".py" else inventory
    try:
        return Sandbox(yaml_path, SandboxPaths.default(), log=lambda line: click.echo(f"  {line}", err=True))
    except InventoryError as exc:
        click.echo(f"pdfleet: {yaml_path} is not a valid inventory:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(2)
    except SandboxError as exc:
        click.echo(f"pdfleet sandbox: {exc}", err=True)
        sys.exit(1)


@click.group()
def sandbox() -> None:
    """A simulated cluster on this machine: namespaces, overlay disks, systemd, sshd (needs root)."""


@sandbox.command()
@inventory_option
@click.option("--rebuild", is_flag=True, help="Rebuild the image even if the cached one is current.")
def up(inventory: Path, rebuild: bool) -> None:
    """Build (or reuse) the image and start every host not yet running."""
    sb = _sandbox(inventory)
    started_at = time.monotonic()
    running = [h.name for h in sb.hosts if sb.supervisor_pid(h)]
    try:
        if running and rebuild:
            raise SandboxError(f"hosts are running on the current image ({', '.join(running)}): run down first")
        if not running and image.build(sb.paths, log=sb.log, force=rebuild):
            click.echo(f"image built in {time.monotonic() - started_at:.1f} s", err=True)
        if running and not image.is_current(sb.paths):
            click.echo("note: the running hosts use an older image; down and up again to use the new one", err=True)
        started = sb.up()
    except (SandboxError, image.ImageError) as exc:
        click.echo(f"pdfleet sandbox: {exc}", err=True)
        sys.exit(1)
    took = time.monotonic() - started_at
    if started:
        click.echo(f"sandbox up in {took:.1f} s: {', '.join(started)} started")
    else:
        click.echo(f"sandbox already up ({len(sb.hosts)} hosts): nothing to do")
    click.echo(f"  pyinfra {os.path.relpath(sb.inventory.with_suffix('.py'))} exec -- hostname")
    click.echo(
        f"  stand-in hub: {sb.hub_endpoint} (token {os.path.relpath(sb.hub_token_file)},"
        f" log {os.path.relpath(sb.paths.hub / 'requests.jsonl')})"
    )


@sandbox.command()
@inventory_option
def down(inventory: Path) -> None:
    """Stop every host and remove what the sandbox made on this machine (the cached image stays)."""
    sb = _sandbox(inventory)
    started_at = time.monotonic()
    try:
        sb.down()
    except SandboxError as exc:
        click.echo(f"pdfleet sandbox: {exc}", err=True)
        sys.exit(1)
    click.echo(f"sandbox down in {time.monotonic() - started_at:.1f} s")


@sandbox.command()
@inventory_option
def purge(inventory: Path) -> None:
    """Down, then remove everything the sandbox keeps on this machine: the image, downloads, keys, the hub's token.
    The next up builds the image from scratch."""
    sb = _sandbox(inventory)
    started_at = time.monotonic()
    try:
        sb.down()
    except SandboxError as exc:
        click.echo(f"pdfleet sandbox: {exc}", err=True)
        sys.exit(1)
    root = sb.paths.root
    # Host disks are mounted in the hosts' own mount namespaces only; one visible here would be deleted through.
    mounted = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
               if line.split()[1].startswith(f"{root}/")]  # fmt: skip
    if mounted:
        click.echo(f"pdfleet sandbox: still mounted under {root}: {', '.join(mounted)}; nothing removed", err=True)
        sys.exit(1)
    if root.exists():
        shutil.rmtree(root)
    click.echo(f"sandbox purged in {time.monotonic() - started_at:.1f} s: {os.path.relpath(root)} removed")


@sandbox.command()
@inventory_option
@click.argument("host")
def reimage(inventory: Path, host: str) -> None:
    """Wipe HOST's disk and boot it fresh (a new SSH host key, nothing installed), as a re-imaged node comes back.
    The pinned host keys stay as they were: `pdfleet replace-node INVENTORY HOST HOST` pins the new one."""
    sb = _sandbox(inventory)
    started_at = time.monotonic()
    try:
        sb.reimage(host)
    except SandboxError as exc:
        click.echo(f"pdfleet sandbox: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{host} re-imaged and booted in {time.monotonic() - started_at:.1f} s")


@sandbox.command()
@inventory_option
def status(inventory: Path) -> None:
    """Each host's address, PID 1 and systemd state; the stand-in hub's address, PID and state."""
    sb = _sandbox(inventory)
    rows = [("HOST", "ADDRESS", "PID1", "STATE")]
    for host in sb.hosts:
        pid = sb.init_pid(host)
        rows.append((host.name, host.address, str(pid or "-"), sb.system_state(host)))
    hub_pid = sb.hub_pid()
    rows.append(("(hub)", f"{sb.hub_address}:{HUB_PORT}", str(hub_pid or "-"), "running" if hub_pid else "stopped"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    current = "current" if image.is_current(sb.paths) else "missing or out of date (rebuilt by the next up)"
    click.echo(f"image: {current}")


@sandbox.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@inventory_option
@click.argument("host")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(inventory: Path, host: str, command: tuple[str, ...]) -> None:
    """Log in to HOST (or run COMMAND there) over ssh, with the sandbox's key and pinned host keys."""
    sb = _sandbox(inventory)
    match = next((h for h in sb.hosts if h.name == host), None)
    if match is None:
        click.echo(f"pdfleet sandbox: no host {host!r}; hosts: {', '.join(h.name for h in sb.hosts)}", err=True)
        sys.exit(2)
    if sb.init_pid(match) is None:
        # Without its bridge the address would be routed off this machine: never connect then.
        click.echo(f"pdfleet sandbox: host {host!r} is not running (pdfleet sandbox up)", err=True)
        sys.exit(1)
    argv = [
        "ssh",
        "-i",
        str(sb.paths.client_key),
        "-o",
        f"UserKnownHostsFile={sb.paths.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=10",
        f"root@{match.address}",
        *command,
    ]
    os.execvp("ssh", argv)
