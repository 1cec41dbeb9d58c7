"""The DeepGEMM kernel cache: compiled once per distinct key in the cluster, copied to the other nodes of that key.

The key (`/etc/pdfleet/<instance>.deepgemm-key`: SGLang version, runtime, model revision, serving arguments, GPU
architecture) is what a cache is good for. The first instance holding a key compiles it: its precompile unit runs
`compile_deep_gemm` when the server (re)starts and the cache's stamp differs from the key, on all ranks of a
multi-node instance together. Nodes of later instances with the same key do not compile: this role waits until
the compiling node's cache carries their key, copies it through that node's share and stamps it, so their own
precompile unit finds it current. A rebooted or replaced node gets its cache the same way before it serves; when
the compiling node is itself down, a single-node instance compiles its own instead of waiting (copy_script).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import shlex

from pyinfra import host, logger
from pyinfra.api import FactBase, FunctionCommand, StringCommand, operation
from pyinfra.facts.files import Sha1File

from pdfleet import netaddr
from pdfleet.runtimeplan import sets_to_remove
from pdfleet.weightsplan import CACHE_MODULE, CACHE_STAMP

# A key's cache directory under the cache root (pdfleet.serving.deep_gemm_dir): 16 hex digits of the key's digest.
KEY_DIR = re.compile(r"^[0-9a-f]{16}$")
# How often a copying node asks the compiling node whether its cache is ready.
POLL_SECONDS = 2
# rsync's exit codes for "no daemon answered": socket I/O error (refused, unreachable), connection timeout.
_SILENT_CODES = "10|35"
# rsync's exit codes for "the daemon answered, the file is not there yet": partial transfer, vanished file.
_NOT_YET_CODES = "23|24"


def cache_url(address: str, port: int, cache: str) -> str:
    """A peer's cache for the same key, through its share: the same directory name under the share's root."""
    return f"rsync://{netaddr.host_port(address, port)}/{CACHE_MODULE}/{posixpath.basename(cache.rstrip('/'))}/"


def copy_script(
    cache: str,
    key_path: str,
    source: str,
    address: str,
    port: int,
    timeout: int,
    compile_alone: bool,
    silent_seconds: int,
    scratch: str = "/run/pdfleet",
) -> str:
    """Wait for the source's cache to carry this key, copy it, then stamp ours (a copy cut short has no stamp).

    A source that answers but is still compiling is waited for, up to `timeout`. A source whose share stays
    silent for `silent_seconds` (a dead or unreachable node, as when this node replaces a peer at night)
    is not: a single-node instance (`compile_alone`) leaves its cache unstamped and exits 0, so its own
    precompile unit compiles; a multi-node instance fails at once, since its ranks must compile together.
    Anything else the share says (access refused, no such module) fails with rsync's message. `scratch` holds
    the source's stamp as last seen and rsync's last error.
    """
    url = cache_url(address, port, cache)
    q = shlex.quote
    seen = f"{scratch}/deep-gemm-{source}.key"
    error = f"{scratch}/deep-gemm-copy.err"
    where = f"the DeepGEMM cache's source {source} ({netaddr.host_port(address, port)})"
    silent_for = f"{where} did not answer for {silent_seconds} s"
    if compile_alone:
        message = q(f"pdfleet: {silent_for}; this node compiles its own cache when its server starts")
        silent = f"echo {message} >&2; logger -t pdfleet {message}; exit 0"
    else:
        message = q(f"pdfleet: {silent_for}; this instance's nodes compile together, so bring {source} back first")
        silent = f"echo {message} >&2; exit 1"
    return (
        f"mkdir -p {q(scratch)} {q(cache)} && now=$(date +%s) && deadline=$((now + {timeout})) && heard=$now && "
        f"while :; do "
        f"rsync -q --contimeout=5 --timeout=30 {q(url + CACHE_STAMP)} {q(seen)} 2>{q(error)}; "
        f"code=$?; now=$(date +%s); "
        f"case $code in "
        f"0) cmp -s {q(seen)} {q(key_path)} && break; heard=$now ;; "
        f"{_NOT_YET_CODES}) heard=$now ;; "
        f"{_SILENT_CODES}) [ $((now - heard)) -ge {silent_seconds} ] && {{ {silent}; }} ;; "
        f"*) echo {q(f'pdfleet: {where} refused the copy:')} >&2; cat {q(error)} >&2; exit 1 ;; "
        f"esac; "
        f'if [ "$now" -ge "$deadline" ]; then '
        f"echo {q(f'pdfleet: the DeepGEMM cache on {source} was not built for this key within {timeout} s')} >&2; "
        f"exit 1; fi; sleep {POLL_SECONDS}; done && "
        f"rm -f {q(f'{cache}/{CACHE_STAMP}')} && "
        f"rsync -a --exclude=/{CACHE_STAMP} {q(url)} {q(cache + '/')} && "
        f"install -m 0644 {q(key_path)} {q(f'{cache}/{CACHE_STAMP}')}"
    )


@operation()
def cache_copied(
    cache: str,
    key_path: str,
    key_text: str,
    source: str | None,
    address: str,
    port: int,
    timeout: int,
    compile_alone: bool,
    silent_seconds: int,
):
    """
    This node's DeepGEMM cache copied from the node that compiled it for the same key.

    + cache: this key's cache directory (`ServerSpec.deep_gemm_dir`, under `sglang.deep_gemm_cache`)
    + key_path / key_text: this node's key file and its text
    + source: the compiling node, or None when this node compiles its own
    + address / port: the source's share
    + timeout: seconds to wait for the source to finish compiling
    + compile_alone: whether this node's instance has one node, so it may compile its own cache when the
      source's share stays silent (copy_script)
    + silent_seconds: how long the source's share may stay silent (`share.silent_timeout`)
    """
    if source is None:
        host.noop("DeepGEMM: this node compiles its own cache (first instance of its key)")
        return
    if host.get_fact(Sha1File, path=f"{cache}/{CACHE_STAMP}") == hashlib.sha1(key_text.encode()).hexdigest():
        host.noop(f"DeepGEMM cache built for this key (copied from {source})")
        return
    script = copy_script(cache, key_path, source, address, port, timeout, compile_alone, silent_seconds)
    yield FunctionCommand(_copy_and_report, (script,), {})


def peer_script(
    cache: str, key_path: str, peers: list[tuple[str, str]], port: int, scratch: str = "/run/pdfleet"
) -> str:
    """Copy the cache from the first peer whose cache carries this node's key; when none does, say so and leave
    the cache unstamped (the precompile unit compiles). A peer that does not answer within 5 s is passed over."""
    q = shlex.quote
    seen = f"{scratch}/deep-gemm-peer.key"
    tries = []
    for name, address in peers:
        url = cache_url(address, port, cache)
        tries.append(
            f"if rsync -q --contimeout=5 --timeout=30 {q(url + CACHE_STAMP)} {q(seen)} 2>/dev/null "
            f"&& cmp -s {q(seen)} {q(key_path)}; then "
            f"rm -f {q(f'{cache}/{CACHE_STAMP}')} && rsync -a --exclude=/{CACHE_STAMP} {q(url)} {q(cache + '/')} && "
            f"install -m 0644 {q(key_path)} {q(f'{cache}/{CACHE_STAMP}')} && "
            f"echo {q(f'pdfleet: copied from {name}, which holds it for the same key')} && exit 0; fi"
        )
    none = q(f"pdfleet: no peer holds a cache for this key ({', '.join(n for n, _ in peers)}); compiled when its "
             "server starts")  # fmt: skip
    return f"mkdir -p {q(scratch)} {q(cache)}; " + "; ".join(tries) + f"; echo {none}; exit 0"


@operation()
def cache_from_peer(cache: str, key_path: str, key_text: str, peers: list[tuple[str, str]], port: int):
    """
    A compiling node's DeepGEMM cache taken from a peer that holds it for the same key, before its instance
    starts: a replaced or re-imaged compiling node does not compile what the cluster already has.

    + cache: this key's cache directory (`ServerSpec.deep_gemm_dir`)
    + key_path / key_text: this node's key file and its text
    + peers: (name, address) of the nodes with the same key, in the order to try them; empty when this node does
      not compile (it copies in cache_copied) or no other node has its key
    + port: the peers' share port
    """
    if not peers:
        host.noop("DeepGEMM: no peer with this node's key to take the cache from")
        return
    if host.get_fact(Sha1File, path=f"{cache}/{CACHE_STAMP}") == hashlib.sha1(key_text.encode()).hexdigest():
        host.noop("DeepGEMM cache built for this key")
        return
    yield FunctionCommand(_copy_and_report, (peer_script(cache, key_path, peers, port),), {})


class CacheDirs(FactBase):
    """The DeepGEMM caches under the cache root, one directory per key: {name: when its stamp was written}."""

    def command(self, root: str) -> str:
        return f'for d in {shlex.quote(root)}/*/{CACHE_STAMP}; do [ -e "$d" ] && stat -c "%Y %n" "$d"; done; true'

    def process(self, output: list[str]) -> dict[str, float]:
        found = {}
        for line in output:
            mtime, _, path = line.strip().partition(" ")
            name = path.rsplit("/", 2)[-2] if path.count("/") >= 2 else ""
            if KEY_DIR.match(name):
                found[name] = float(mtime)
        return found

    @staticmethod
    def default() -> dict:
        return {}


@operation()
def old_caches_removed(root: str, current: str, keep: int):
    """
    The DeepGEMM caches of keys beyond `keep` deleted: this node's key stays, and the newest others (the version
    before, for a rollback that compiles nothing).

    + root: `sglang.deep_gemm_cache`
    + current: this node's key directory name (`ServerSpec.deep_gemm_dir`'s last part)
    + keep: how many key directories stay, the current one included (`runtime.keep`)
    """
    doomed = sets_to_remove(host.get_fact(CacheDirs, root=root), current, set(), keep)
    if not doomed:
        host.noop(f"DeepGEMM caches within runtime.keep ({keep})")
        return
    yield StringCommand("rm", "-rf", *(f"{root.rstrip('/')}/{name}" for name in doomed))


def _copy_and_report(state, host, script: str) -> bool:
    """Run the copy. What it says is shown (a warning when it compiles instead of copying, since the node then
    takes longer to serve; an error when it fails) and kept out of pyinfra's own output otherwise."""
    ok, output = host.run_shell_command(StringCommand(script), print_output=False)
    for line in output.stdout_lines:
        if line.startswith("pdfleet: "):
            logger.info(f"{host.print_prefix}DeepGEMM | {line.removeprefix('pdfleet: ')}")
    for line in output.stderr_lines:
        if ok and line.startswith("pdfleet: "):
            logger.warning(f"{host.print_prefix}DeepGEMM | {line.removeprefix('pdfleet: ')}")
        elif not ok:
            logger.error(f"{host.print_prefix}DeepGEMM | {line.removeprefix('pdfleet: ')}")
    return ok
