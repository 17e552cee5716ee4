"""Showing run results: a rich table per run, and ratios against a baseline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def summary_row(result: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of one run, flat."""
    loss, tm = result["loss"], result["timing"]
    res = result.get("resources") or {}
    return {
        "label": result.get("label") or result["spec"]["direction"],
        "published": result["publish"]["published"], "delivered": loss["delivered"],
        "lost": loss["lost"], "duplicated": loss["duplicated"],
        "out_of_order": loss["out_of_order"],
        "msg_s": tm["throughput_median"], "p50_ms": tm["latency_ms"]["p50"],
        "p99_ms": tm["latency_ms"]["p99"], "max_ms": tm["latency_ms"]["max"],
        "cpu_s_per_100k": res.get("cpu_s_per_100k"), "peak_rss_mb": res.get("peak_rss_mb"),
    }


def ratio(value: float | None, base: float | None) -> float | None:
    """``value / base`` rounded to two places, or ``None`` when either is missing or 0."""
    if not value or not base:
        return None
    return round(value / base, 2)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(results: Sequence[dict[str, Any]], title: str = "") -> Table:
    """A rich table with one row per run."""
    t = Table(title=title or None)
    columns = ["label", "published", "delivered", "lost", "duplicated", "out_of_order", "msg_s",
               "p50_ms", "p99_ms", "max_ms", "cpu_s_per_100k", "peak_rss_mb"]
    for c in columns:
        t.add_column(c.replace("_", " "), justify="left" if c == "label" else "right")
    for r in results:
        row = summary_row(r)
        t.add_row(*(_fmt(row[c]) for c in columns))
    return t


def print_results(results: Sequence[dict[str, Any]], title: str = "",
                  console: Console | None = None) -> None:
    """Print :func:`table` to the terminal (stderr by default)."""
    if console is None:
        console = Console(stderr=True)
        if not console.is_terminal:
            # Not a terminal: rich would assume 80 columns and cut every figure short.
            console = Console(stderr=True, width=160)
    console.print(table(results, title))
