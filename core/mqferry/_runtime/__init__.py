"""The runtime: builds components from a validated config and runs the data path.

``App`` and ``run_app`` are loaded on first use: the MQTT connector imports delivery tracking
(:mod:`mqferry._runtime.delivery`) from this package, and ``App`` imports the MQTT connector.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mqferry._runtime.app import App, RuntimeRule
    from mqferry._runtime.run import run_app

__all__ = ["App", "RuntimeRule", "run_app"]


def __getattr__(name: str) -> Any:
    if name in ("App", "RuntimeRule"):
        from mqferry._runtime import app

        return getattr(app, name)
    if name == "run_app":
        from mqferry._runtime.run import run_app

        return run_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
