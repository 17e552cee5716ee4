"""Rate-limited logging of data-path failures.

A poison message redelivered in a loop, or a rule that fails on every message of a busy topic,
must not flood the log: each kind of failure (a rule's evaluation, an action's submit, a
dead-letter output, a record's rendering) is logged at most once per interval, with how many like
it were not logged since. The runtime and the plugins share this one mechanism; a subclass may
word the count differently (:meth:`LogLimiter.suffix`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable

__all__ = ["LogLimiter"]


class LogLimiter:
    """Logs at most one line per key per ``interval`` seconds.

    Args:
        logger: where to log.
        interval: seconds between two lines of the same key.
        clock: the monotonic clock, in seconds.

    Keys are component ids and failure kinds, so their number is bounded by the configuration.
    """

    __slots__ = ("_clock", "_last", "_logger", "_suppressed", "interval")

    def __init__(self, logger: logging.Logger, interval: float = 10.0,
                 clock: Callable[[], float] | None = None) -> None:
        self._logger = logger
        self.interval = interval
        self._clock = clock
        self._last: dict[Hashable, float] = {}
        self._suppressed: dict[Hashable, int] = {}

    def log(self, level: int, key: Hashable, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless ``key`` was logged within the interval; whether it logged."""
        now = self._clock() if self._clock is not None else time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        skipped = self._suppressed.pop(key, 0)
        if skipped:
            fmt, more = self.suffix(key, skipped, now - last if last is not None else 0.0)
            self._logger.log(level, msg + fmt, *args, *more)
        else:
            self._logger.log(level, msg, *args)
        return True

    def warning(self, key: Hashable, msg: str, *args: object) -> bool:
        """:meth:`log` at WARNING."""
        return self.log(logging.WARNING, key, msg, *args)

    def suffix(self, key: Hashable, skipped: int, elapsed: float) -> tuple[str, tuple[object, ...]]:
        """The format and arguments appended to a line after ``skipped`` lines were held back."""
        return " (%d more like it in the last %.0fs)", (skipped, elapsed)
