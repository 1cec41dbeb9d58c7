"""Load YAML keeping line numbers, and refuse what YAML silently forgives (duplicate keys).

Mappings load as `SourceMap` (a dict) and sequences as `SourceList` (a list); both remember the line of each
key or item, so a validation message can point at the exact line a person has to edit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pdfleet.errors import InventoryError, Problem


class SourceMap(dict):
    """A YAML mapping with the 1-based line of itself (`line`) and of each key (`lines`)."""

    line: int = 0
    lines: dict


class SourceList(list):
    """A YAML sequence with the 1-based line of itself (`line`) and of each item (`lines`)."""

    line: int = 0
    lines: list


# libyaml's parser when PyYAML was built with it (several times faster on large inventories); same semantics.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_BaseLoader):
    def __init__(self, stream, filename: str):
        super().__init__(stream)
        self.filename = filename
        self.duplicates: list[tuple[SourceMap, object, int, int]] = []  # (mapping, key, line, first line)

    def construct_mapping(self, node, deep=False):
        result = SourceMap()
        result.line = node.start_mark.line + 1
        result.lines = {}
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in result:
                self.duplicates.append((result, key, line, result.lines[key]))
                continue
            result[key] = self.construct_object(value_node, deep=True)
            result.lines[key] = line
        return result

    def construct_sequence(self, node, deep=False):
        result = SourceList(self.construct_object(child, deep=True) for child in node.value)
        result.line = node.start_mark.line + 1
        result.lines = [child.start_mark.line + 1 for child in node.value]
        return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _LineLoader.construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _LineLoader.construct_sequence)


def load_yaml(path: Path, display_name: str | None = None) -> SourceMap:
    """Parse `path`; raise InventoryError (never a traceback) on syntax errors, duplicate keys or a non-mapping."""
    name = display_name or str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InventoryError(
            [Problem(name, None, "file", "-", f"unreadable ({exc.strerror})", "a readable YAML file")]
        ) from None
    loader = _LineLoader(text, name)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise InventoryError([Problem(name, line, "yaml", "-", f"a syntax error ({problem})", "valid YAML")]) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        paths = _paths(data)
        problems = []
        for mapping, key, line, first in loader.duplicates:
            where, field = describe(data, (*paths.get(id(mapping), ()), key))
            found = f"a second '{key}' key (first on line {first})"
            problems.append(Problem(name, line, where, field, found, "each key once per mapping"))
        raise InventoryError(problems)
    if not isinstance(data, SourceMap):
        from pdfleet.reader import show  # reader imports this module

        raise InventoryError([Problem(name, 1, "file", "-", show(data), "a YAML mapping at the top")])
    return data


def _paths(data: Any, path: tuple = (), out: dict | None = None) -> dict[int, tuple]:
    """The path from the top of every mapping and list of a loaded document, by identity."""
    out = {} if out is None else out
    out[id(data)] = path
    if isinstance(data, dict):
        for key, value in data.items():
            _paths(value, (*path, key), out)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            _paths(value, (*path, index), out)
    return out


def describe(data: Any, path: tuple) -> tuple[str, str]:
    """(where, field) of a path in the inventory, as the validator names them: ("node 'decode-1'", "hcas[2]")."""

    def dotted(steps) -> str:
        out = ""
        for step in steps:
            out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
        return out or "-"

    if len(path) >= 2 and path[0] in ("nodes", "instances") and isinstance(path[1], int):
        items = data.get(path[0]) if isinstance(data, dict) else None
        item = items[path[1]] if isinstance(items, list) and path[1] < len(items) else None
        name = item.get("name") if isinstance(item, dict) else None
        kind = "node" if path[0] == "nodes" else "instance"
        label = name if isinstance(name, str) else f"#{path[1]}"
        return f"{kind} '{label}'", dotted(path[2:])
    if len(path) >= 2 and path[0] != "env":
        return str(path[0]), dotted(path[1:])
    return "inventory", dotted(path)
