"""A command-line option as the recipes spell it: the unit profiles produce and dialects translate."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Opt:
    """One command-line option in the recipe's spelling: a flag and its values (none for a switch)."""

    flag: str
    values: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        return [self.flag, *self.values]


def opt(flag: str, *values: object) -> Opt:
    return Opt(flag, tuple(str(v) for v in values))
