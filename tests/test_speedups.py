"""roles.speedups computes exactly what pyinfra computes, from the same stacks."""

from __future__ import annotations

from types import SimpleNamespace

import pyinfra
import pytest

from roles import speedups


def _nested(depth: int, state):
    if depth:
        return _nested(depth - 1, state)
    return speedups.operation_order_from_frames(state), speedups._original(state)


@pytest.mark.parametrize("cli", [False, True])
@pytest.mark.parametrize("deploy_file", [None, __file__, "/nowhere/deploy.py"])
@pytest.mark.parametrize("depth", [0, 3, 12])
def test_frame_order_equals_pyinfras_stack_order(monkeypatch, cli, deploy_file, depth):
    monkeypatch.setattr(pyinfra, "is_cli", cli)
    state = SimpleNamespace(current_deploy_filename=deploy_file, current_op_file_number=7)
    fast, slow = _nested(depth, state)
    # Both are called from the same line of _nested, so they see the same stack.
    assert fast == slow
    if deploy_file != "/nowhere/deploy.py":
        assert len(fast) >= depth + 1 + (1 if cli else 0)


def test_global_arguments_once_equals_pyinfras_answer():
    assert speedups.global_arguments_once() == speedups._original_global_arguments()
    assert speedups.global_arguments_once() == speedups._original_global_arguments()  # the cached answer too
    assert ("_sudo", bool) in speedups.global_arguments_once()


def test_install_replaces_the_functions_where_pyinfra_calls_them():
    operation, arguments = speedups._OPERATION_MODULE, speedups._ARGUMENTS_MODULE
    before = operation.get_operation_order_from_stack, arguments.all_global_arguments
    try:
        speedups.install()
        assert operation.get_operation_order_from_stack is speedups.operation_order_from_frames
        assert arguments.all_global_arguments is speedups.global_arguments_once
    finally:
        operation.get_operation_order_from_stack, arguments.all_global_arguments = before
