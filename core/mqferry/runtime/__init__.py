"""The runtime: builds components from a validated config and runs the data path."""

from __future__ import annotations

from mqferry.runtime.app import App, RuntimeRule
from mqferry.runtime.run import build_app, run_app

__all__ = ["App", "RuntimeRule", "build_app", "run_app"]
