#!/usr/bin/env python3
"""Extract SGLang's command-line options into the data table the stand-in `sglang` parses with.

The sandbox's stand-in engine (pdfleet/sandbox/standins/sglang) must accept exactly what the pinned SGLang accepts
and reject the rest, with argparse's own messages (unknown flags, ambiguous abbreviations, bad choices, bad
numbers). It cannot import SGLang (GPU-only dependencies), so it rebuilds the parser from a table of facts taken
from the real one. This script writes that table. Run it by hand when the pinned SGLang version changes, with the
parser environment that `.ci/install-parsers.sh` builds (the real wheel's Python files on the path)::

    PYTHONPATH=.cache/parsers/sglang-0.5.23 .cache/parsers/venv/bin/python \\
        pdfleet/sandbox/standins/tools/extract_sglang_flags.py \\
        > pdfleet/sandbox/standins/sglang/sglang/_flags_0_5_23.json

How the parsers are obtained: the same way tests/tools/sglang_argcheck.py does it (imported from there, so both
agree): `python -m sglang.launch_server` = `argparse.ArgumentParser(<prepare_server_args's literal kwargs>)` +
`ServerArgs.add_cli_args`; `python -m sglang.compile_deep_gemm` = the replay of that module's `__main__` block
(`ServerArgs.add_cli_args` then `CompileArgs.add_cli_args`). The walk over `parser._actions` records, per option:
option strings (in order: the first is the one argparse names in messages), dest, the action kind, nargs, the type
as a name, choices, const, required, metavar, and the default where it is a plain JSON value other than the
action's implicit one (None for valued options, False for store_true). Types are recorded by their `__name__`
because argparse names them that way in "invalid <type> value" messages; an action or type this script does not
know makes it fail, so a new SGLang release cannot silently produce a table the stand-in misreads. The output is
reproducible byte for byte (it re-runs itself with PYTHONHASHSEED=0: a few choices lists come from sets);
tests/test_standin_sglang.py regenerates it and compares when the parser environment is there.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
ARGCHECK = REPO / "tests" / "tools" / "sglang_argcheck.py"

# type callables the stand-in re-implements (sglang/_argtable.py), by __name__
KNOWN_TYPES = {
    "str",
    "int",
    "float",
    "human_readable_int",  # sglang.srt.utils.common: 1k, 2Mi, ...
    "nullable_str",  # "" / "None" -> None
    "loads",  # json.loads
    "json_list_type",  # orjson.loads with an ArgumentTypeError on bad JSON
    "parse_cuda_graph_backend_arg",  # rejects "tc_piecewise" before the choices check
    "parse_cuda_graph_config_arg",  # JSON object of phase -> settings, keys checked
}

# argparse.Action subclasses by class name -> the kind the stand-in implements
KNOWN_ACTIONS = {
    "_HelpAction": "help",
    "_StoreAction": "store",
    "_StoreTrueAction": "store_true",
    "_StoreFalseAction": "store_false",
    "_StoreConstAction": "store_const",
    "_AppendAction": "append",
    "BooleanOptionalAction": "boolean_optional",
    "DeprecatedStoreTrueAction": "deprecated_store_true",
    "DeprecatedStoreConstAction": "deprecated_store_const",
    "LoRAPathAction": "lora_paths",
}


def _fail(message: str) -> None:
    print(f"extract_sglang_flags: {message}", file=sys.stderr)
    sys.exit(2)


def _load_argcheck():
    spec = importlib.util.spec_from_file_location("_pdfleet_sglang_argcheck", ARGCHECK)
    if spec is None or spec.loader is None:
        _fail(f"cannot load {ARGCHECK}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _plain(value):
    """value if JSON can hold it exactly, else a marker the caller drops."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(v is None or isinstance(v, (bool, int, float, str)) for v in value):
        return list(value)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        inner = {k: _plain(v) for k, v in value.items()}
        if not any(v is _DROP for v in inner.values()):
            return inner
    return _DROP


_DROP = object()


def _type_name(action: argparse.Action) -> str | None:
    if action.type is None:
        return None
    name = getattr(action.type, "__name__", None)
    if name not in KNOWN_TYPES:
        _fail(f"{action.option_strings}: unknown type {action.type!r}; teach the stand-in (sglang/_argtable.py)")
    return name


def describe(action: argparse.Action) -> dict:
    cls = type(action).__name__
    kind = KNOWN_ACTIONS.get(cls)
    if kind is None:
        _fail(f"{action.option_strings}: unknown action class {cls}; teach the stand-in (sglang/_argtable.py)")
    if not action.option_strings:
        _fail(f"positional argument {action.dest!r}: not supported by the stand-in")
    entry: dict = {"flags": list(action.option_strings), "dest": action.dest, "action": kind}
    if kind == "help":
        return entry
    if action.nargs is not None and kind in ("store", "append", "lora_paths"):
        entry["nargs"] = action.nargs
    type_name = _type_name(action)
    if type_name is not None:
        entry["type"] = type_name
    if action.choices is not None:
        entry["choices"] = [c for c in action.choices]
        if _plain(entry["choices"]) is _DROP:
            _fail(f"{action.option_strings}: choices are not plain values: {action.choices!r}")
    if kind in ("store", "store_const", "append") and action.const is not None:
        entry["const"] = _plain(action.const)
        if entry["const"] is _DROP:
            _fail(f"{action.option_strings}: const is not a plain value: {action.const!r}")
    if kind == "deprecated_store_const":
        # nargs=0: an old boolean; nargs=None with choices: a retired valued flag (argparse_actions.py)
        entry["nargs"] = action.nargs
        entry["const_value"] = _plain(getattr(action, "const_value", None))
    if kind.startswith("deprecated_") and getattr(action, "new_flag", None):
        entry["new_flag"] = action.new_flag
    if action.required:
        entry["required"] = True
    if action.metavar is not None:
        entry["metavar"] = action.metavar
    implicit = False if kind in ("store_true", "deprecated_store_true") else None
    default = action.default
    if default is not implicit and not (default is None and implicit is None):
        plain = _plain(default)
        if plain is not _DROP and default != argparse.SUPPRESS:
            entry["default"] = plain
        elif default == argparse.SUPPRESS:
            entry["default_suppress"] = True
        else:
            entry["default_repr"] = repr(default)  # not reproduced; only for the record
    return entry


def _dump(table: dict) -> str:
    """JSON with one option per line: small, and a new SGLang release diffs option by option."""

    def one(value) -> str:
        return json.dumps(value, separators=(", ", ": "))

    lines = ["{"]
    keys = list(table)
    for index, key in enumerate(keys):
        comma = "," if index < len(keys) - 1 else ""
        value = table[key]
        if key == "options":
            lines.append(f"  {one(key)}: [")
            lines += [f"    {one(o)}{',' if i < len(value) - 1 else ''}" for i, o in enumerate(value)]
            lines.append(f"  ]{comma}")
        elif key == "parsers":
            lines.append(f"  {one(key)}: {{")
            names = list(value)
            for i, name in enumerate(names):
                lines.append(f"    {one(name)}: {one(value[name])}{',' if i < len(names) - 1 else ''}")
            lines.append(f"  }}{comma}")
        else:
            lines.append(f"  {one(key)}: {one(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    if os.environ.get("PYTHONHASHSEED") != "0":
        # Some SGLang choices lists are built from sets (--sampling-backend): their order follows the string hash
        # seed. A fixed seed makes the table byte-for-byte reproducible, so regenerating it diffs cleanly.
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    argcheck = _load_argcheck()
    try:
        import sglang
        import sglang.srt.server_args as server_args_module
    except Exception as exc:  # noqa: BLE001
        _fail(f"cannot import SGLang ({type(exc).__name__}: {exc}); is PYTHONPATH set to the parser tree?")
    try:  # 0.5.23 and later: --cuda-graph-config's phases and keys (0.5.6.post2 has no such option)
        from sglang.srt.model_executor import cuda_graph_config
    except ImportError:
        cuda_graph_config = None

    sentinel = "__argparse_default_prog__"
    saved_argv0 = sys.argv[0]
    sys.argv[0] = sentinel
    try:
        server = argcheck.server_parser_factory(server_args_module)()
        compile_ = argcheck.compile_parser_factory(server_args_module)()
    finally:
        sys.argv[0] = saved_argv0

    server_actions = [describe(a) for a in server._actions]
    compile_actions = [describe(a) for a in compile_._actions]
    if compile_actions[: len(server_actions)] != server_actions:
        _fail("compile_deep_gemm's parser does not start with exactly the server's options")
    for parser in (server, compile_):
        if parser._mutually_exclusive_groups:  # noqa: SLF001
            _fail("mutually exclusive groups are not supported by the stand-in")
        if parser._defaults:  # noqa: SLF001
            _fail(f"parser-level defaults are not supported by the stand-in: {parser._defaults}")  # noqa: SLF001
        if parser.prefix_chars != "-" or parser.fromfile_prefix_chars or not parser.allow_abbrev:
            _fail("unexpected parser settings (prefix_chars / fromfile_prefix_chars / allow_abbrev)")

    table = {
        "comment": "Generated by pdfleet/sandbox/standins/tools/extract_sglang_flags.py from SGLang's own parser; "
        "do not edit by hand.",
        "sglang_version": sglang.__version__,
        "python": ".".join(map(str, sys.version_info[:2])),  # argparse abbreviation rules vary by minor version
        "parsers": {
            "launch_server": {"prog": None if server.prog == sentinel else server.prog},
            "compile_deep_gemm": {
                "prog": None if compile_.prog == sentinel else compile_.prog,
                "extra": compile_actions[len(server_actions) :],
            },
        },
        "types": {
            "parse_cuda_graph_config_arg": {
                "phases": list(cuda_graph_config.Phase.ALL),
                "allowed_keys": {k: list(v) for k, v in cuda_graph_config.ALLOWED_KEYS_PER_PHASE.items()},
            }
        }
        if cuda_graph_config
        else {},
        "options": server_actions,
    }
    sys.stdout.write(_dump(table))
    print(
        f"extract_sglang_flags: SGLang {sglang.__version__}: {len(server_actions)} server options, "
        f"{len(table['parsers']['compile_deep_gemm']['extra'])} extra for compile_deep_gemm",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
