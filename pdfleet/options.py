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


def option_lines(argv) -> list[list[str]]:
    """Split an argv into the program part and one group per `--option` with its values (for display)."""
    lines: list[list[str]] = [[]]
    for arg in argv:
        if arg.startswith("--") and lines[-1]:
            lines.append([])
        lines[-1].append(arg)
    return lines
