"""Where pyinfra spends a no-op converge's time in Python, made cheaper without changing what it computes.

pyinfra orders operations by the line numbers of the stack that called them
(`pyinfra.api.util.get_operation_order_from_stack`). It gets them from `inspect.stack()`, which also reads a line
of source for every frame through linecache: a few milliseconds per operation call, about a second for the
~270 operation calls a no-op `deploys/pd.py` makes on four hosts. `operation_order_from_frames` returns the same
list from the frames alone (filename and line number, no source).

Each operation call also sorts out its global arguments (`pyinfra.api.arguments.pop_global_arguments`), asking
`typing.get_type_hints` for the names and types of all of them every time, though they never change within a
run; `global_arguments_once` answers from the first answer.

tests/test_speedups.py checks that each replacement returns what pyinfra's own function returns.
"""

from __future__ import annotations

import importlib
import sys

import pyinfra
from pyinfra.api.util import PYINFRA_INSTALL_DIR, get_operation_order_from_stack

# The module, not the `operation` decorator that pyinfra.api also exports under that name.
_OPERATION_MODULE = importlib.import_module("pyinfra.api.operation")
_ARGUMENTS_MODULE = importlib.import_module("pyinfra.api.arguments")
_original = get_operation_order_from_stack
_original_global_arguments = _ARGUMENTS_MODULE.all_global_arguments
_global_arguments: list = []


def global_arguments_once() -> list:
    """pyinfra's global arguments as (name, type) pairs, asked of typing once per process."""
    if not _global_arguments:
        _global_arguments.extend(_original_global_arguments())
    return list(_global_arguments)


def operation_order_from_frames(state) -> list[int]:
    """pyinfra's operation order for the current call: the line numbers of the callers outside pyinfra, from
    the deploy file's outermost frame inward (the whole stack when no deploy file is set)."""
    frames = []
    frame = sys._getframe(1)
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()  # outermost first, as pyinfra walks them
    start = 0
    deploy_file = state.current_deploy_filename
    if deploy_file:
        # Not on the stack: pyinfra's walk ends on its own innermost frame, which it skips; nothing is left.
        start = next((i for i, outer in enumerate(frames) if outer.f_code.co_filename == deploy_file), len(frames))
    line_numbers = [state.current_op_file_number] if pyinfra.is_cli else []
    for outer in frames[start:]:
        if not outer.f_code.co_filename.startswith(PYINFRA_INSTALL_DIR):
            line_numbers.append(outer.f_lineno)
    return line_numbers


def install() -> None:
    """Use both for this run (each is looked up in the module that calls it)."""
    _OPERATION_MODULE.get_operation_order_from_stack = operation_order_from_frames
    _ARGUMENTS_MODULE.all_global_arguments = global_arguments_once
