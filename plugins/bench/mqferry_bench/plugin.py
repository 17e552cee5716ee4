"""Registers ``mqferry bench`` as a built-in command, exactly as a third-party plugin would."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mqferry import hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def mqferry_register_commands(cli: click.Group) -> None:
    """Add the ``bench`` command group."""
    from mqferry_bench.cli import bench

    cli.add_command(bench)
