"""SGLang's argparse parsers, rebuilt from the option table extracted from the real one.

`_flags_0_5_23.json` is written by pdfleet/sandbox/standins/tools/extract_sglang_flags.py from SGLang 0.5.23's own
parser. This module turns it back into `argparse.ArgumentParser`s with the same option strings, order, nargs,
choices, consts and defaults, the same custom actions (deprecated flags, LoRA paths) and type callables of the same
`__name__` and behaviour, so argparse itself produces SGLang's verdicts: prefix abbreviations accepted when unique,
"ambiguous option" when not, "unrecognized arguments", "invalid choice", "invalid int value", "expected one
argument", "the following arguments are required: --model-path/--model", exit status 2.

Not reproduced: what ServerArgs.__post_init__ / from_cli_args check after parsing (cross-option rules, GPU
probing); `--config FILE` merging reads flat `name: scalar` YAML lines only (see `_merge_config`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from decimal import Decimal
from importlib import resources

from sglang import __version__

# The option table of this package's version (the wheel builder sets the version; one table per version).
TABLE_RESOURCE = f"_flags_{__version__.replace('.', '_')}.json"


def load_table() -> dict:
    return json.loads(resources.files("sglang").joinpath(TABLE_RESOURCE).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------------------
# type callables: same names as SGLang's (argparse quotes __name__ in "invalid <name> value: ..." messages)


def human_readable_int(value: str) -> int:
    """sglang.srt.utils.common.human_readable_int: 1k, 25.6k, 1M (SI) and 1Ki, 1Mi (IEC), case-sensitive."""
    value = value.strip()
    si_multiplier = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    iec_multiplier = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)", value)
    if match:
        number, suffix = match.groups()
        if suffix in iec_multiplier:
            if "." in number:
                raise argparse.ArgumentTypeError(
                    f"Decimals are not allowed with IEC suffixes like '{suffix}'. "
                    f"Use an integer IEC value such as '{int(Decimal(number))}{suffix}', "
                    f"or an SI value such as '{number}{suffix[0]}'."
                )
            return int(number) * iec_multiplier[suffix]
        return int(Decimal(number) * si_multiplier[suffix])
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"Invalid integer value: '{value}'. "
            "Use a plain integer, SI suffixes (1k, 1M), or IEC suffixes (1Ki, 1Mi). "
            "Suffixes are case-sensitive."
        ) from None


def nullable_str(val: str):
    if not val or val == "None":
        return None
    return val


def loads(s: str):
    """json.loads (SGLang passes it as the type; its ValueError reads "invalid loads value: ...")."""
    return json.loads(s)


def json_list_type(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(f"Invalid JSON list: {value}. Please provide a valid JSON list.") from None


def parse_cuda_graph_backend_arg(raw: str) -> str:
    if raw == "tc_piecewise":
        raise argparse.ArgumentTypeError("tc_piecewise was removed; select breakable, full, or disabled")
    return raw


def _cuda_graph_config_type(spec: dict):
    phases = tuple(spec["phases"])
    allowed_keys = {k: tuple(v) for k, v in spec["allowed_keys"].items()}

    def parse_cuda_graph_config_arg(raw: str) -> dict:
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as e:
            raise argparse.ArgumentTypeError(f"--cuda-graph-config must be JSON: {e}") from None
        if not isinstance(parsed, dict):
            raise argparse.ArgumentTypeError(f"--cuda-graph-config must be a JSON object, got {type(parsed).__name__}")
        result: dict = {}
        for phase, phase_settings in parsed.items():
            phase = str(phase)
            if phase not in phases:
                raise argparse.ArgumentTypeError(
                    f"--cuda-graph-config: unknown phase '{phase}', expected one of {phases}"
                )
            if not isinstance(phase_settings, dict):
                raise argparse.ArgumentTypeError(
                    f"--cuda-graph-config['{phase}'] must be a JSON object, got {type(phase_settings).__name__}"
                )
            if "backend" in phase_settings:
                parse_cuda_graph_backend_arg(phase_settings["backend"])
            allowed = allowed_keys[phase]
            result[phase] = {}
            for key, value in phase_settings.items():
                if key not in allowed:
                    raise argparse.ArgumentTypeError(
                        f"--cuda-graph-config['{phase}']: unknown key '{key}', expected one of {allowed}"
                    )
                result[phase][key] = value
        return result

    return parse_cuda_graph_config_arg


def _types(table: dict) -> dict:
    cuda_graph_config = table["types"].get("parse_cuda_graph_config_arg")  # 0.5.23 on; 0.5.6.post2 has none
    return {
        "str": str,
        "int": int,
        "float": float,
        "human_readable_int": human_readable_int,
        "nullable_str": nullable_str,
        "loads": loads,
        "json_list_type": json_list_type,
        "parse_cuda_graph_backend_arg": parse_cuda_graph_backend_arg,
        **({"parse_cuda_graph_config_arg": _cuda_graph_config_type(cuda_graph_config)} if cuda_graph_config else {}),
    }


# ---------------------------------------------------------------------------------------------------------------
# custom actions (sglang.srt.arg_groups.argparse_actions)


def print_deprecated_warning(message: str) -> None:
    # SGLang: logger.warning(f"\033[1;33m{message}\033[0m") before logging is configured -> stderr, message only
    print(f"\033[1;33m{message}\033[0m", file=sys.stderr)


class DeprecatedStoreTrueAction(argparse.Action):
    def __init__(self, option_strings, dest, new_flag=None, nargs=0, const=True, default=False, **kwargs):
        self.new_flag = new_flag
        super().__init__(option_strings, dest, nargs=nargs, const=const, default=default, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        replacement = f" Use '{self.new_flag}' instead." if self.new_flag else ""
        print_deprecated_warning(
            f"'{option_string}' is deprecated and will be removed in a future release.{replacement}"
        )
        setattr(namespace, self.dest, True)


class DeprecatedStoreConstAction(argparse.Action):
    def __init__(self, option_strings, dest, new_flag=None, const_value=None, nargs=0, default=None, **kwargs):
        self.new_flag = new_flag
        self.const_value = const_value
        super().__init__(option_strings, dest, nargs=nargs, default=default, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        replacement = f" Use '{self.new_flag}' instead." if self.new_flag else ""
        print_deprecated_warning(
            f"'{option_string}' is deprecated and will be removed in a future release.{replacement}"
        )
        setattr(namespace, self.dest, self.const_value)


class LoRAPathAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        lora_paths = []
        if values:
            assert isinstance(values, list), "Expected a list of LoRA paths."
            for lora_path in values:
                lora_path = lora_path.strip()
                if lora_path.startswith("{") and lora_path.endswith("}"):
                    obj = json.loads(lora_path)
                    assert "lora_path" in obj and "lora_name" in obj, (
                        f"{repr(lora_path)} looks like a JSON str, "
                        "but it does not contain 'lora_name' and 'lora_path' keys."
                    )
                    lora_paths.append(obj)
                else:
                    lora_paths.append(lora_path)
        setattr(namespace, self.dest, lora_paths)


_ACTIONS = {
    "store": "store",
    "store_true": "store_true",
    "store_false": "store_false",
    "store_const": "store_const",
    "append": "append",
    "boolean_optional": argparse.BooleanOptionalAction,
    "deprecated_store_true": DeprecatedStoreTrueAction,
    "deprecated_store_const": DeprecatedStoreConstAction,
    "lora_paths": LoRAPathAction,
}


def _add(parser: argparse.ArgumentParser, entry: dict, types: dict) -> None:
    kind = entry["action"]
    if kind == "help":
        return  # add_help=True already put -h/--help first, as in SGLang's parser
    if kind not in _ACTIONS:
        raise RuntimeError(f"sglang stand-in: option table has an unknown action {kind!r}: {entry}")
    kwargs: dict = {"dest": entry["dest"], "action": _ACTIONS[kind]}
    if kind == "boolean_optional":
        # BooleanOptionalAction builds the --no- spelling itself from the first flag
        flags = [f for f in entry["flags"] if not f.startswith("--no-")]
    else:
        flags = entry["flags"]
    if "nargs" in entry:
        kwargs["nargs"] = entry["nargs"]
    if "type" in entry:
        kwargs["type"] = types[entry["type"]]
    if "choices" in entry:
        kwargs["choices"] = entry["choices"]
    if "const" in entry:
        kwargs["const"] = entry["const"]
    if "metavar" in entry:
        kwargs["metavar"] = entry["metavar"]
    if entry.get("required"):
        kwargs["required"] = True
    if "default" in entry:
        kwargs["default"] = entry["default"]
    elif entry.get("default_suppress"):
        kwargs["default"] = argparse.SUPPRESS
    if kind.startswith("deprecated_"):
        kwargs["new_flag"] = entry.get("new_flag")
    if kind == "deprecated_store_const":
        kwargs["const_value"] = entry.get("const_value")
    action = parser.add_argument(*flags, **kwargs)
    if list(action.option_strings) != list(entry["flags"]):
        raise RuntimeError(f"sglang stand-in: rebuilt {action.option_strings} instead of {entry['flags']}")


def build_parser(kind: str, table: dict | None = None) -> argparse.ArgumentParser:
    """kind: "launch_server" or "compile_deep_gemm"."""
    table = table or load_table()
    spec = table["parsers"][kind]
    parser = argparse.ArgumentParser(prog=spec["prog"]) if spec["prog"] else argparse.ArgumentParser()
    types = _types(table)
    for entry in table["options"]:
        _add(parser, entry, types)
    for entry in spec.get("extra", []):
        _add(parser, entry, types)
    return parser


def _merge_config(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """SGLang's --config (server_args_config_parser.py): the YAML file's `name: value` pairs become `--name value`
    (true: the bare flag), placed before the other arguments, --config and its file dropped. The stand-in reads only
    flat `name: scalar` lines (no YAML library in the standard library); anything else is refused with exit 2."""
    at = argv.index("--config")
    if at + 1 >= len(argv):
        parser.error("argument --config: expected one argument")
    path = argv[at + 1]
    if not path.lower().endswith((".yaml", ".yml")):
        parser.error(f"Config file must be YAML format, got: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        parser.error(f"Config file not found: {path} ({exc.strerror})")
    merged: list[str] = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, sep, value = text.partition(":")
        value = value.strip()
        if not sep or not name.strip() or value[:1] in ("[", "{", "|", ">"):
            parser.error(f"--config {path}: the sglang stand-in reads only `name: scalar` lines, found {name!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if value.lower() == "true":
            merged.append(f"--{name.strip()}")
        elif value.lower() != "false":
            merged += [f"--{name.strip()}", value]
    return merged + argv[:at] + argv[at + 2 :]


def parse(kind: str, argv: list[str]) -> argparse.Namespace:
    """Parse like the real entry point; on bad arguments argparse prints usage + error and exits 2."""
    parser = build_parser(kind)
    if kind == "launch_server" and "--config" in argv:
        argv = _merge_config(parser, argv)
    args = parser.parse_args(argv)
    # 0.5.6.post2 names the sizes' destinations in full; its ServerArgs.from_cli_args maps them to these names.
    for short, full in (("tp_size", "tensor_parallel_size"), ("dp_size", "data_parallel_size"),
                        ("pp_size", "pipeline_parallel_size")):  # fmt: skip
        if not hasattr(args, short) and hasattr(args, full):
            setattr(args, short, getattr(args, full))
    return args
