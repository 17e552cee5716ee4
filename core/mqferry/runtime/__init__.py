"""The runtime: builds components from a validated config and runs the data path."""

from __future__ import annotations

from mqferry.runtime.app import App, RuntimeRule
from mqferry.runtime.run import run_app

__all__ = ["App", "RuntimeRule", "run_app"]
