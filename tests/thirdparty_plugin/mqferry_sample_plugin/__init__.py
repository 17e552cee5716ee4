"""A third-party plugin: the action type ``file_sink`` and the rule function ``my_func``."""

from __future__ import annotations

from typing import Any

from mqferry import ActionRegister, ActionType, FunctionRegister, hookimpl
from mqferry_sample_plugin.sink import FileSink, FileSinkConfig


def my_func(value: Any, times: int = 2) -> Any:
    """Repeat a string, or multiply a number, ``times`` times."""
    return value * times


@hookimpl
def mqferry_register_functions(register: FunctionRegister) -> None:
    """Add ``my_func`` to rule SQL."""
    register.add("my_func", my_func)


@hookimpl
def mqferry_register_action_types(register: ActionRegister) -> None:
    """Add the ``file_sink`` action type."""
    register.add(ActionType("file_sink", FileSinkConfig,
                            lambda name, cfg, conn, ctx: FileSink(name, cfg),
                            description="Append rule outputs to a file as JSON lines"))
