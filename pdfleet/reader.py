"""Read a YAML mapping field by field, collecting every problem instead of stopping at the first.

A `Section` wraps one mapping of the inventory and knows what it describes ("node 'decode-1'") and where it
sits (file and line). Each typed getter returns the value or a default and records a `Problem` when the value is
wrong; `finish()` reports the keys nobody asked for, so a typo is an error instead of a silently ignored knob.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

from pdfleet.errors import Problem
from pdfleet.yamlsource import SourceList, SourceMap

_MISSING = object()

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def show(value: Any) -> str:
    """How a found value is quoted in a message."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, SourceMap)):
        return "a mapping"
    if isinstance(value, (list, SourceList)):
        return "an empty list" if not value else f"a list of {len(value)} item{'s' if len(value) > 1 else ''}"
    if isinstance(value, (int, float)):
        return str(value)
    return repr(str(value))  # a date or other YAML scalar: its text, never a Python type name


class Problems:
    """The problems found so far in one inventory file."""

    def __init__(self, file: str):
        self.file = file
        self.items: list[Problem] = []

    def add(self, line: int | None, where: str, field: str, found: str, expected: str) -> Problem:
        problem = Problem(self.file, line, where, field, found, expected)
        self.items.append(problem)
        return problem

    def drop(self, problem: Problem) -> None:
        """Withdraw a problem that turned out to follow from another one (a misspelt key's "missing" twin)."""
        self.items = [p for p in self.items if p is not problem]


class Section:
    """One mapping of the inventory being read."""

    def __init__(
        self,
        data: Any,
        where: str,
        problems: Problems,
        line: int | None = None,
        prefix: str = "",
        field: str | None = None,
        quiet: bool = False,
    ):
        """+ field: how the problem of a non-mapping names it (default: `prefix`); + quiet: the section is missing
        and that was reported already, so its own required fields are not reported again."""
        self.where = where
        self.problems = problems
        self.prefix = prefix
        self.quiet = quiet
        if data is None:
            data = SourceMap()
            data.line = line or 0
            data.lines = {}
        self.ok = isinstance(data, dict)
        if not self.ok:
            problems.add(line, where, field or prefix.rstrip(".") or "-", show(data), "a mapping")
            self.quiet = True  # its fields cannot be read: do not report each of them as missing as well
            data = SourceMap()
            data.line = line or 0
            data.lines = {}
        self.data = data
        self.line = getattr(data, "line", None) or line
        self._asked: set[str] = set()
        self._missing: dict[str, Problem] = {}  # problems about keys absent from the mapping, by key

    def line_of(self, key: str) -> int | None:
        return getattr(self.data, "lines", {}).get(key, self.line)

    def error(self, key: str, found: str, expected: str, line: int | None = None) -> None:
        problem = self.problems.add(line or self.line_of(key), self.where, self.prefix + key, found, expected)
        if key not in self.data:
            self._missing.setdefault(key, problem)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = _MISSING, required: bool = False) -> Any:
        self._asked.add(key)
        if key in self.data:
            return self.data[key]
        if required and not self.quiet:
            self.error(key, "nothing (the field is missing)", "a value: this field is required")
        return None if default is _MISSING else default

    def get(
        self,
        key: str,
        kind: type | tuple[type, ...],
        default: Any = _MISSING,
        required: bool = False,
        expected: str | None = None,
        check: Callable[[Any], bool] | None = None,
    ) -> Any:
        """The value of `key` if it has type `kind` (and passes `check`), else record a problem."""
        value = self.raw(key, default, required)
        if key not in self.data:
            return value
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # YAML reads `true` as bool, which is an int subclass: never accept it for a number.
        type_ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not type_ok or (check is not None and not check(value)):
            names = {str: "a string", int: "an integer", bool: "true or false", float: "a number"}
            self.error(key, show(value), expected or " or ".join(names.get(k, "a value") for k in kinds))
            return None if default is _MISSING else default
        return value

    def string(self, key: str, default: Any = _MISSING, required: bool = False, **kw) -> Any:
        return self.get(key, str, default, required, **kw)

    def integer(
        self, key: str, default: Any = _MISSING, required: bool = False, lo: int | None = None, hi: int | None = None
    ) -> Any:
        expected = "an integer"
        if lo is not None and hi is not None:
            expected = f"an integer from {lo} to {hi}"
        elif lo is not None:
            expected = f"an integer of at least {lo}"
        return self.get(
            key,
            int,
            default,
            required,
            expected=expected,
            check=lambda v: (lo is None or v >= lo) and (hi is None or v <= hi),
        )

    def port(self, key: str, default: Any = _MISSING, required: bool = False) -> Any:
        """A port; None when the one written is refused (its default would only bring collisions of its own)."""
        before = len(self.problems.items)
        value = self.integer(key, default, required, lo=1, hi=65535)
        return None if key in self.data and len(self.problems.items) > before else value

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        return self.get(key, bool, default)

    def name(self, key: str, default: Any = _MISSING, required: bool = False) -> Any:
        return self.get(
            key,
            str,
            default,
            required,
            expected="a name of lowercase letters, digits and '-' (it becomes a host, unit and file name)",
            check=lambda v: bool(NAME_RE.match(v)),
        )

    def env_name(self, key: str, default: Any = _MISSING, required: bool = False) -> Any:
        """The name of an environment variable on this machine (HF_TOKEN)."""
        return self.get(
            key,
            str,
            default,
            required,
            expected="an environment variable name like HF_TOKEN ([A-Za-z_][A-Za-z0-9_]*)",
            check=lambda v: bool(ENV_NAME_RE.match(v)),
        )

    def string_list(
        self,
        key: str,
        default: Any = _MISSING,
        required: bool = False,
        check: Callable[[str], bool] | None = None,
        expected: str = "a list of strings",
        unique: str | None = None,
        same: Callable[[str], Any] = lambda v: v,
        item: str = "a string",
    ) -> Any:
        """A list of strings; + item: what one entry must be, said of a bad entry; + unique: what each entry is
        ("HCA"), when an entry may appear once only (compared after `same`, e.g. a network's normal form)."""
        value = self.raw(key, default, required)
        if key not in self.data:
            return value
        fail = None if default is _MISSING else default
        if not isinstance(value, list):
            self.error(key, show(value), expected)
            return fail
        lines = getattr(value, "lines", None) or [None] * len(value)
        for index, entry in enumerate(value):
            if not isinstance(entry, str) or (check is not None and not check(entry)):
                self.error(f"{key}[{index}]", show(entry), item, lines[index])
                return fail
        if unique:
            seen: dict[Any, int] = {}
            for index, entry in enumerate(value):
                if same(entry) in seen:
                    first = seen[same(entry)]
                    self.error(
                        f"{key}[{index}]",
                        f"{entry!r} again (already {key}[{first}])",
                        f"each {unique} once",
                        lines[index],
                    )
                    return fail
                seen[same(entry)] = index
        return tuple(value)

    def string_map(
        self,
        key: str,
        key_pattern: str = r"^[A-Za-z_][A-Za-z0-9_]*$",
        key_expected: str = "an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
    ) -> dict[str, str]:
        """A mapping of names to scalar values, read as strings (environment variables, package pins)."""
        value = self.raw(key, None)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(key, show(value), "a mapping of NAME: value")
            return {}
        out: dict[str, str] = {}
        for name, item in value.items():
            line = getattr(value, "lines", {}).get(name)
            if not isinstance(name, str) or not re.match(key_pattern, name):
                self.error(f"{key}.{name}", repr(name), key_expected, line)
                continue
            if isinstance(item, bool):
                item = "true" if item else "false"
            if not isinstance(item, (str, int, float)):
                self.error(f"{key}.{name}", show(item), "a string or number", line)
                continue
            text = str(item)
            # One file feeds both systemd's EnvironmentFile= and docker's --env-file, which disagree on
            # quoting and escapes: allow only values that both read the same way.
            if not re.match(r"^[^\s'\"\\$`]*$", text):
                self.error(f"{key}.{name}", repr(text), "a value without spaces, quotes, '$', '`' or backslashes", line)
                continue
            out[name] = text
        return out

    def section(self, key: str, where: str | None = None, required: bool = False) -> Section:
        """The mapping under `key`: a new subject when `where` is given ("router"), else a nested field."""
        value = self.raw(key, None, required)
        prefix = "" if where else f"{self.prefix}{key}."
        return Section(
            value,
            where or self.where,
            self.problems,
            self.line_of(key),
            prefix=prefix,
            field=f"{self.prefix}{key}" if where else None,
            quiet=self.quiet or key not in self.data,
        )

    def finish(self) -> None:
        """Report every key that no reader asked for: typos are errors, not ignored. A key spelt like an absent
        known one is that one misspelt: one problem, naming the known key, instead of "unknown" and "missing"."""
        absent = sorted(k for k in self._asked if k not in self.data)
        for key in self.data:
            if key in self._asked:
                continue
            alike = difflib.get_close_matches(str(key), absent, n=1, cutoff=0.7)
            if alike:
                missing = self._missing.pop(alike[0], None)
                if missing is not None:
                    self.problems.drop(missing)
                absent.remove(alike[0])
                self.error(str(key), "an unknown field", f"'{alike[0]}' (the known field spelt most like it)")
            else:
                known = ", ".join(sorted(self._asked)) or "none"
                self.error(str(key), "an unknown field", f"one of: {known}")
