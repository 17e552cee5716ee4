"""Math functions: results follow Erlang (``ceil``/``floor``/``round`` give integers)."""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable
from typing import Any

from mqferry._rules.functions._args import as_int, as_number

__all__ = ["FUNCTIONS"]


def _float1(fn: Callable[[float], float]) -> Callable[[Any], float]:
    def wrapped(x: Any) -> float:
        return fn(as_number(x))
    wrapped.__name__ = fn.__name__
    return wrapped


def abs_(x: Any) -> int:
    """Absolute value; EMQX accepts integers only."""
    return abs(as_int(x))


def ceil(x: Any) -> int:
    """Smallest integer not below ``x``."""
    return math.ceil(as_number(x))


def floor(x: Any) -> int:
    """Largest integer not above ``x``."""
    return math.floor(as_number(x))


def round_(x: Any) -> int:
    """Round half away from zero, to an integer (Erlang ``round``)."""
    n = as_number(x)
    if type(n) is int:
        return n
    r = math.floor(abs(n) + 0.5)
    return r if n >= 0 else -r


def fmod(x: Any, y: Any) -> float:
    """Float remainder of ``x / y`` with the sign of ``x``."""
    return math.fmod(as_number(x), as_number(y))


def power(x: Any, y: Any) -> float:
    """``x`` to the power ``y``, always a float."""
    return math.pow(as_number(x), as_number(y))


def random() -> float:
    """A uniform random float in [0.0, 1.0)."""
    return _random.random()


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs_,
    "ceil": ceil,
    "floor": floor,
    "round": round_,
    "fmod": fmod,
    "power": power,
    "random": random,
    **{name: _float1(getattr(math, name)) for name in (
        "acos", "acosh", "asin", "asinh", "atan", "atanh", "cos", "cosh", "exp", "log",
        "log10", "log2", "sin", "sinh", "sqrt", "tan", "tanh",
    )},
}
