#!/usr/bin/env python3
"""Check SGLang command lines with the installed SGLang's own argparse parser.

Run with the parser venv and one SGLang version on the path::

    PYTHONPATH=.cache/parsers/sglang-0.5.23 \\
        .cache/parsers/venv/bin/python tests/tools/sglang_argcheck.py < cases.json

stdin: a JSON list ``[{"id": "...", "kind": "server" | "compile_deep_gemm", "args": ["--model-path", ...]}]``;
``args`` are the arguments without the program (what follows ``python -m sglang.launch_server`` or
``python -m sglang.compile_deep_gemm``).

stdout: a JSON list, in input order, of::

    {"id", "ok": bool, "error": str | null, "namespace": {dest: value} | null, "sglang_version": str,
     "warnings": [str], "abbreviations": [{"given", "resolved"}], "explicit": [dest]}

* ``error``: the argparse message verbatim (``unrecognized arguments: ...``, ``ambiguous option: --x could
  match ...``, ``argument --x: invalid choice: ...``), or ``ExceptionType: message`` when an action raised.
* ``warnings``: what parsing logged or warned, e.g. SGLang's ``DeprecatedStoreTrueAction`` messages
  ("'--enable-dp-attention' is deprecated ..."), ANSI colours stripped.
* ``abbreviations``: options accepted only through argparse's prefix matching (``--tp`` -> ``--tp-size``): they
  parse today and turn ambiguous as soon as a release adds another flag with that prefix.
* ``explicit``: the dests the command line set (a second parse with every default replaced by a sentinel).
* ``namespace``: the parsed namespace; for versions whose ``ServerArgs.from_cli_args`` renames dests before building
  ``ServerArgs`` (0.5.6.post2: ``args.tp_size = args.tensor_parallel_size`` ...), those ``args.X = args.Y`` lines of
  that very method are applied too, so ``tp_size``/``dp_size`` are there in every version. Values JSON cannot hold
  are given as ``repr()``.

How the parsers are built (what the entry points do, without starting anything):

* ``server``: ``python -m sglang.launch_server`` calls ``prepare_server_args(argv)``, which builds
  ``argparse.ArgumentParser(...)``, calls ``ServerArgs.add_cli_args(parser)`` and ``parser.parse_args(argv)``. The
  keyword arguments of that ``ArgumentParser(...)`` call (``prog="sglang serve"`` in 0.5.23) are read from the
  function's source. ``ServerArgs.from_cli_args`` is not called: building ``ServerArgs`` needs a GPU.
* ``compile_deep_gemm``: the module's ``if __name__ == "__main__":`` block builds a parser and calls
  ``ServerArgs.add_cli_args(parser)`` then ``CompileArgs.add_cli_args(parser)``. Importing the module pulls in the
  HTTP server and GPU kernels, so its source is read instead: the ``X.add_cli_args(parser)`` calls of that block are
  replayed in order, ``ServerArgs`` being the imported one and every other class being the module's own class
  definition, executed alone. Any other statement touching the parser makes the check fail loudly rather than guess.

Exit status: 0 when every case was checked (whatever the verdicts), 2 on bad input or when SGLang cannot be
imported; with ``--strict``, 1 when a case did not parse.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import inspect
import json
import logging
import re
import sys
import textwrap
import types
import warnings
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
KINDS = ("server", "compile_deep_gemm")


class ParseFailure(Exception):
    """argparse called error() or exit(): the message it would have printed."""


class CapturingParser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing and exiting."""

    def error(self, message: str):  # argparse: "ambiguous option", "unrecognized arguments", invalid choice ...
        raise ParseFailure(message)

    def exit(self, status: int = 0, message: str | None = None):  # --help, --version, actions that exit
        raise ParseFailure(f"argparse exit (status {status}){': ' + message.strip() if message else ''}")


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


UNSET = _Unset()


def _fail(message: str) -> None:
    print(f"sglang_argcheck: {message}", file=sys.stderr)
    sys.exit(2)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=repr)
    return repr(value)


def _literal_kwargs(call: ast.Call, where: str) -> dict[str, Any]:
    kwargs = {}
    for kw in call.keywords:
        if kw.arg is None:
            _fail(f"{where}: ArgumentParser(**...) cannot be reproduced")
        try:
            kwargs[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            _fail(f"{where}: ArgumentParser({kw.arg}=...) is not a literal")
    if call.args:
        _fail(f"{where}: ArgumentParser() with positional arguments cannot be reproduced")
    return kwargs


def _is_argument_parser_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "ArgumentParser"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "argparse"
    )


def server_parser_factory(server_args_module):
    """What prepare_server_args builds: ArgumentParser(<its literal kwargs>) + ServerArgs.add_cli_args."""
    ServerArgs = server_args_module.ServerArgs
    source = textwrap.dedent(inspect.getsource(server_args_module.prepare_server_args))
    calls = [n for n in ast.walk(ast.parse(source)) if _is_argument_parser_call(n)]
    if not calls:
        _fail("prepare_server_args builds no argparse.ArgumentParser: this SGLang layout is not supported")
    kwargs_seen = [_literal_kwargs(c, "prepare_server_args") for c in calls]
    kwargs = kwargs_seen[-1]  # the parser whose parse_args(argv) result becomes ServerArgs
    added = {
        ast.unparse(n.func.value)
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "add_cli_args"
    }
    if added != {"ServerArgs"}:
        _fail(f"prepare_server_args adds arguments from {sorted(added)}, not only ServerArgs: not supported")

    def build() -> argparse.ArgumentParser:
        parser = CapturingParser(**kwargs)
        ServerArgs.add_cli_args(parser)
        return parser

    return build


def compile_parser_factory(server_args_module):
    """What `python -m sglang.compile_deep_gemm` builds, replayed from its __main__ block."""
    spec = importlib.util.find_spec("sglang.compile_deep_gemm")
    if spec is None or not spec.origin:
        _fail("sglang.compile_deep_gemm not found")
    with open(spec.origin, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    main = None
    for node in tree.body:
        if (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Compare)
            and ast.unparse(node.test).replace("'", '"') == '__name__ == "__main__"'
        ):
            main = node
    if main is None:
        _fail(f"{spec.origin}: no `if __name__ == '__main__':` block")
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}

    parser_name, parser_kwargs, groups = None, None, []
    for stmt in main.body:
        if isinstance(stmt, ast.Assign) and _is_argument_parser_call(stmt.value):
            if parser_name is not None or len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
                _fail(f"{spec.origin}: unexpected parser construction: {ast.unparse(stmt)}")
            parser_name = stmt.targets[0].id
            parser_kwargs = _literal_kwargs(stmt.value, "compile_deep_gemm")
            continue
        if parser_name is None:
            continue
        mentions = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)}
        if parser_name not in mentions:
            continue
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "add_cli_args"
            and isinstance(call.func.value, ast.Name)
            and [ast.unparse(a) for a in call.args] == [parser_name]
            and not call.keywords
        ):
            groups.append(call.func.value.id)
            continue
        # `args = parser.parse_args()` ends the construction; anything else touching the parser is unknown.
        if (
            isinstance(stmt, ast.Assign)
            and isinstance(stmt.value, ast.Call)
            and ast.unparse(stmt.value.func) == f"{parser_name}.parse_args"
        ):
            break
        _fail(f"{spec.origin}: the __main__ block does something this check does not replay: {ast.unparse(stmt)}")
    if parser_name is None or not groups:
        _fail(f"{spec.origin}: no parser built in the __main__ block")

    adders = []
    for name in groups:
        if name == "ServerArgs":
            imported = [
                n
                for n in tree.body
                if isinstance(n, ast.ImportFrom)
                and n.module == "sglang.srt.server_args"
                and any(a.name == "ServerArgs" and a.asname is None for a in n.names)
            ]
            if not imported:
                _fail(f"{spec.origin}: ServerArgs does not come from sglang.srt.server_args")
            adders.append(server_args_module.ServerArgs.add_cli_args)
        elif name in classes:
            # The module's own class definition, executed alone in a stand-in module (dataclasses looks the
            # class's module up in sys.modules), with the two stdlib modules such a class body uses.
            replay = types.ModuleType(f"_sglang_argcheck_replay_{name}")
            replay.__dict__.update(argparse=argparse, dataclasses=dataclasses)
            sys.modules[replay.__name__] = replay
            code = ast.Module(body=[classes[name]], type_ignores=[])
            try:
                exec(compile(code, spec.origin, "exec"), replay.__dict__)
            except Exception as exc:  # noqa: BLE001
                _fail(f"{spec.origin}: class {name} cannot be built on its own: {type(exc).__name__}: {exc}")
            adders.append(replay.__dict__[name].add_cli_args)
        else:
            _fail(f"{spec.origin}: {name}.add_cli_args comes from elsewhere: not supported")

    def build() -> argparse.ArgumentParser:
        parser = CapturingParser(**parser_kwargs)
        for add in adders:
            add(parser)
        return parser

    build.groups = groups
    return build


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(_ANSI.sub("", record.getMessage()))


def _abbreviations(parser: argparse.ArgumentParser, args: list[str]) -> list[dict[str, str]]:
    known = parser._option_string_actions  # noqa: SLF001 - argparse keeps no public view of this
    found = []
    for token in args:
        if token == "--":
            break
        if not token.startswith("--") or len(token) < 3:
            continue
        option = token.split("=", 1)[0]
        if option in known:
            continue
        candidates = [o for o in known if o.startswith(option)]
        if len(candidates) == 1:
            found.append({"given": option, "resolved": candidates[0]})
    return found


def _explicit_dests(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    saved_actions = [(a, a.default) for a in parser._actions]  # noqa: SLF001
    saved_defaults = dict(parser._defaults)  # noqa: SLF001
    try:
        for action, _ in saved_actions:
            if action.default is not argparse.SUPPRESS:
                action.default = UNSET
        for key in parser._defaults:  # noqa: SLF001
            parser._defaults[key] = UNSET  # noqa: SLF001
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.disable(logging.CRITICAL)
            try:
                namespace = parser.parse_args(args)
            finally:
                logging.disable(logging.NOTSET)
        return sorted(k for k, v in vars(namespace).items() if v is not UNSET)
    finally:
        for action, default in saved_actions:
            action.default = default
        parser._defaults.clear()  # noqa: SLF001
        parser._defaults.update(saved_defaults)  # noqa: SLF001


def dest_aliases(server_args_module) -> list[tuple[str, str]]:
    """`args.X = args.Y` statements at the top of ServerArgs.from_cli_args (0.5.6.post2: tp_size <- tensor_...)."""
    source = textwrap.dedent(inspect.getsource(server_args_module.ServerArgs.from_cli_args))
    func = ast.parse(source).body[0]
    params = [a.arg for a in func.args.args]
    if len(params) < 2:
        return []
    args_name = params[1]  # (cls, args)
    aliases = []
    for stmt in func.body:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Attribute)
            and isinstance(stmt.targets[0].value, ast.Name)
            and stmt.targets[0].value.id == args_name
            and isinstance(stmt.value, ast.Attribute)
            and isinstance(stmt.value.value, ast.Name)
            and stmt.value.value.id == args_name
        ):
            aliases.append((stmt.targets[0].attr, stmt.value.attr))
    return aliases


def check(parser: argparse.ArgumentParser, args: list[str], aliases: list[tuple[str, str]]) -> dict[str, Any]:
    records = _Records()
    root = logging.getLogger()
    root.addHandler(records)
    error, namespace = None, None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                parsed = parser.parse_args(args)
            except ParseFailure as exc:
                error = str(exc)
            except Exception as exc:  # noqa: BLE001 - an Action raising is a verdict too
                error = f"{type(exc).__name__}: {exc}"
            else:
                for target, source in aliases:
                    if hasattr(parsed, source) and not hasattr(parsed, target):
                        setattr(parsed, target, getattr(parsed, source))
                namespace = {k: _jsonable(v) for k, v in sorted(vars(parsed).items())}
    finally:
        root.removeHandler(records)
    messages = records.messages + [_ANSI.sub("", str(w.message)) for w in caught]
    ok = error is None
    return {
        "ok": ok,
        "error": error,
        "namespace": namespace,
        "warnings": messages,
        "abbreviations": _abbreviations(parser, args) if ok else [],
        "explicit": _explicit_dests(parser, args) if ok else [],
    }


def read_cases(text: str) -> list[dict[str, Any]]:
    try:
        cases = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"stdin is not JSON: {exc}")
    if not isinstance(cases, list):
        _fail("stdin must be a JSON list of cases")
    for index, case in enumerate(cases):
        if not isinstance(case, dict) or not isinstance(case.get("id"), str):
            _fail(f"case {index}: needs a string 'id'")
        if case.get("kind") not in KINDS:
            _fail(f"case {case['id']!r}: 'kind' must be one of {KINDS}, got {case.get('kind')!r}")
        args = case.get("args")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            _fail(f"case {case['id']!r}: 'args' must be a list of strings")
    return cases


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--strict", action="store_true", help="exit 1 when a case does not parse")
    options = cli.parse_args()
    cases = read_cases(sys.stdin.read())

    out = sys.stdout
    # Whatever SGLang prints while importing or parsing must not end up in the JSON on stdout.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            import sglang
            import sglang.srt.server_args as server_args_module
        except Exception as exc:  # noqa: BLE001
            _fail(f"cannot import sglang.srt.server_args ({type(exc).__name__}: {exc}); is PYTHONPATH set?")
        version = getattr(sglang, "__version__", None)
        try:
            meta_version = importlib.metadata.version("sglang")
        except importlib.metadata.PackageNotFoundError:
            meta_version = None
        if version is None:
            version = meta_version
        elif meta_version is not None and meta_version != version:
            print(f"sglang_argcheck: sglang.__version__={version} but metadata says {meta_version}", file=sys.stderr)

        factories = {"server": server_parser_factory(server_args_module)}
        if any(c["kind"] == "compile_deep_gemm" for c in cases):
            factories["compile_deep_gemm"] = compile_parser_factory(server_args_module)
        aliases = dest_aliases(server_args_module)
        parsers = {}
        results = []
        for case in cases:
            kind = case["kind"]
            if kind not in parsers:
                parsers[kind] = factories[kind]()
            result = check(parsers[kind], case["args"], aliases)
            results.append(
                {
                    "id": case["id"],
                    "ok": result["ok"],
                    "error": result["error"],
                    "namespace": result["namespace"],
                    "sglang_version": version,
                    "warnings": result["warnings"],
                    "abbreviations": result["abbreviations"],
                    "explicit": result["explicit"],
                }
            )

    json.dump(results, out, indent=1)
    out.write("\n")
    if options.strict and not all(r["ok"] for r in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
