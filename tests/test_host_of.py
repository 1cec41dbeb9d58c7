"""roles.common.host_of: another node's pyinfra host, connected once however many operations ask for it at once."""

from __future__ import annotations

import gevent
import pytest
from pyinfra.api import OperationError
from pyinfra.context import ctx_state

from roles.common import host_of


class SlowHost:
    """A pyinfra host as host_of sees it, whose connect() yields to other greenlets as an SSH handshake does."""

    def __init__(self, node: str):
        self.data = {"pdfleet_node": node}
        self.connected = False
        self.connects = 0

    def connect(self, raise_exceptions: bool = False) -> None:
        self.connects += 1
        gevent.sleep(0.05)  # the network: the other greenlets run meanwhile
        self.connected = True


class Inventory:
    def __init__(self, *hosts: SlowHost):
        self.inventory = list(hosts)


def test_operations_of_several_hosts_asking_at_once_share_one_connection():
    router, other = SlowHost("prefill-0"), SlowHost("decode-1")
    with ctx_state.use(Inventory(other, router)):
        asking = [gevent.spawn(host_of, "prefill-0") for _ in range(3)]
        gevent.joinall(asking, raise_error=True)
    assert [g.value for g in asking] == [router] * 3
    assert router.connects == 1 and router.connected
    assert other.connects == 0


def test_a_node_outside_the_run_is_named():
    with ctx_state.use(Inventory(SlowHost("decode-1"))), pytest.raises(OperationError, match="node prefill-0 is not"):
        host_of("prefill-0")
