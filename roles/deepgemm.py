"""The DeepGEMM kernel cache: compiled once per distinct key in the cluster, copied to the other nodes of that key.

The key (`/etc/pdfleet/<instance>.deepgemm-key`: SGLang version, runtime, model revision, serving arguments, GPU
architecture) is what a cache is good for. The first instance holding a key compiles it: its precompile unit runs
`compile_deep_gemm` when the server (re)starts and the cache's stamp differs from the key, on all ranks of a
multi-node instance together. Nodes of later instances with the same key do not compile: this role waits until
the compiling node's cache carries their key, copies it through that node's share and stamps it, so their own
precompile unit finds it current. A rebooted or replaced node gets its cache the same way before it serves.
"""

from __future__ import annotations

import hashlib
import shlex

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.facts.files import Sha1File

from pdfleet.weightsplan import CACHE_MODULE, CACHE_STAMP

# How often a copying node asks the compiling node whether its cache is ready.
POLL_SECONDS = 2


def copy_script(cache: str, key_path: str, source: str, address: str, port: int, timeout: int) -> str:
    """Wait for the source's cache to carry this key, copy it, then stamp ours (a copy cut short has no stamp)."""
    url = f"rsync://{address}:{port}/{CACHE_MODULE}/"
    q = shlex.quote
    seen = f"/run/pdfleet/deep-gemm-{source}.key"
    return (
        f"mkdir -p /run/pdfleet {q(cache)} && deadline=$(( $(date +%s) + {timeout} )) && "
        f"until rsync -q {q(url + CACHE_STAMP)} {q(seen)} 2>/dev/null && cmp -s {q(seen)} {q(key_path)}; do "
        f'if [ "$(date +%s)" -ge "$deadline" ]; then '
        f"echo {q(f'pdfleet: the DeepGEMM cache on {source} was not built for this key within {timeout} s')} >&2; "
        f"exit 1; fi; sleep {POLL_SECONDS}; done && "
        f"rm -f {q(f'{cache}/{CACHE_STAMP}')} && "
        f"rsync -a --exclude=/{CACHE_STAMP} {q(url)} {q(cache + '/')} && "
        f"install -m 0644 {q(key_path)} {q(f'{cache}/{CACHE_STAMP}')}"
    )


@operation()
def cache_copied(cache: str, key_path: str, key_text: str, source: str | None, address: str, port: int, timeout: int):
    """
    This node's DeepGEMM cache copied from the node that compiled it for the same key.

    + cache: the cache directory (`sglang.deep_gemm_cache`)
    + key_path / key_text: this node's key file and its text
    + source: the compiling node, or None when this node compiles its own
    + address / port: the source's share
    + timeout: seconds to wait for the source to finish compiling
    """
    if source is None:
        host.noop("DeepGEMM: this node compiles its own cache (first instance of its key)")
        return
    if host.get_fact(Sha1File, path=f"{cache}/{CACHE_STAMP}") == hashlib.sha1(key_text.encode()).hexdigest():
        host.noop(f"DeepGEMM cache built for this key (copied from {source})")
        return
    yield StringCommand(copy_script(cache, key_path, source, address, port, timeout))
