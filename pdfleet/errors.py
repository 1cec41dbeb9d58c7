"""Errors a person can act on: each problem is one line naming the file, the place, the field, found and expected."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an inventory."""

    file: str
    line: int | None
    where: str  # "node 'decode-1'", "instance 'decode'", "router", ...
    field: str  # dotted path inside `where`, e.g. "hcas" or "nodes[1].rank"
    found: str
    expected: str

    def __str__(self) -> str:
        location = f"{self.file}:{self.line}" if self.line else self.file
        return f"{location}: {self.where}: field '{self.field}': found {self.found}, expected {self.expected}"


class InventoryError(Exception):
    """An inventory that cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.where, p.field))
        super().__init__("\n".join(str(p) for p in self.problems))
