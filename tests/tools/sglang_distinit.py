#!/usr/bin/env python3
"""Read --dist-init-addr values the way the installed SGLang's PortArgs.init_new reads them.

Run with the parser venv and one SGLang version on the path::

    PYTHONPATH=.cache/parsers/sglang-0.5.23 \\
        .cache/parsers/venv/bin/python tests/tools/sglang_distinit.py < addresses.json

stdin: a JSON list of --dist-init-addr values. stdout: a JSON object, value -> ``{"ok", "error", "host", "port",
"tokenizer_ipc_name", "how"}``: the host and port SGLang took from the value and the ZMQ endpoint it derives from
them (multi-node DP attention: ``tcp://HOST:PORT+1``), or the exception it raised.

* 0.5.6.post2: ``PortArgs.init_new`` itself, given a namespace with the fields it reads for a multi-node DP-attention
  node (the checks that the derived ports are free on this machine are skipped: they are not parsing).
* 0.5.23: its ``init_new`` reads many resolved settings, so the two statements it runs on the value are run here:
  ``NetworkAddress.parse(server_args.dist_init_addr)`` and ``NetworkAddress(host, port_base).to_tcp()``; the check
  fails when ``init_new`` no longer contains them.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import sys
import types


def main() -> int:
    values = json.loads(sys.stdin.read())
    with contextlib.redirect_stdout(sys.stderr):
        import sglang
        import sglang.srt.server_args as server_args_module

        port_args = server_args_module.PortArgs
        source = inspect.getsource(port_args.init_new)
        results = {}
        for value in values:
            try:
                if "NetworkAddress.parse(server_args.dist_init_addr)" in source:
                    network_address = server_args_module.NetworkAddress
                    parsed = network_address.parse(value)
                    tcp = network_address(parsed.host, parsed.port + 1).to_tcp()
                    host, port, how = parsed.host, parsed.port, "NetworkAddress.parse"
                elif "configure_ipv6(server_args.dist_init_addr)" in source:
                    server_args_module.wait_port_available = lambda *args, **kwargs: True
                    namespace = types.SimpleNamespace(
                        nccl_port=12345,
                        port=8055,
                        tokenizer_worker_num=1,
                        enable_dp_attention=True,
                        nnodes=2,
                        dist_init_addr=value,
                    )
                    made = port_args.init_new(namespace)
                    tcp = made.tokenizer_ipc_name
                    rest = tcp.removeprefix("tcp://")
                    host, port, how = rest.rpartition(":")[0], int(rest.rpartition(":")[2]) - 1, "PortArgs.init_new"
                else:
                    print("sglang_distinit: PortArgs.init_new reads dist_init_addr some other way", file=sys.stderr)
                    return 2
                results[value] = {"ok": True, "error": None, "host": host, "port": port, "tokenizer_ipc_name": tcp}
            except Exception as exc:  # noqa: BLE001 - SGLang's refusal is the verdict
                results[value] = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "how": None}
                continue
            results[value]["how"] = how
        version = sglang.__version__
    json.dump({"sglang_version": version, "results": results}, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
