"""Stand-in for SGLang in pdfleet's sandbox: NOT the real engine.

A pure-Python package with the real name and version so that `python3 -m sglang.launch_server ...` and
`python3 -m sglang.compile_deep_gemm ...` run on hosts without GPUs. It parses its command line with a table
extracted from SGLang's own parser (same options, same argparse errors), answers the HTTP endpoints the PD router
and health checks use, and logs what it was started with. See README.md next to this package.
"""

__version__ = "0.5.23"
__version_tuple__ = (0, 5, 23)
STANDIN = True
