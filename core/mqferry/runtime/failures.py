"""Rate-limited logging of data-path failures.

A poison message redelivered in a loop, or a rule that fails on every message of a busy topic,
must not flood the log: each kind of failure (a rule's evaluation, an action's submit, a
dead-letter output) is logged at most once per interval, with how many like it were not logged
since.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable

__all__ = ["LogLimiter"]


class LogLimiter:
    """Logs at most one warning per key per ``interval`` seconds.

    Args:
        logger: where to log.
        interval: seconds between two lines of the same key.

    Keys are component ids and failure kinds, so their number is bounded by the configuration.
    """

    __slots__ = ("_last", "_logger", "_suppressed", "interval")

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._logger = logger
        self.interval = interval
        self._last: dict[Hashable, float] = {}
        self._suppressed: dict[Hashable, int] = {}

    def warning(self, key: Hashable, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless ``key`` was logged within the interval; whether it logged."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        skipped = self._suppressed.pop(key, 0)
        if skipped:
            self._logger.warning(msg + " (%d more like it in the last %.0fs)", *args, skipped,
                                 now - last if last is not None else 0.0)
        else:
            self._logger.warning(msg, *args)
        return True
