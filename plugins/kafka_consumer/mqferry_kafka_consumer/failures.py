"""Rate-limited logging of record failures: a poison stream must not flood the log.

The first failure of each reason is logged at once; later ones of the same reason at most once
per interval, each line saying how many were left out since the previous one. The counters in
the source's metrics stay exact.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable

from mqferry import LogLimiter

#: Seconds between two log lines of the same reason.
INTERVAL = 10.0


class FailureLog(LogLimiter):
    """Logs failures by reason, at most one line per reason every ``interval`` seconds.

    Args:
        logger: where the lines go.
        interval: seconds between two lines of the same reason.
        clock: the monotonic clock, in seconds.
    """

    __slots__ = ()

    def __init__(self, logger: logging.Logger, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(logger, interval, clock)

    def suffix(self, key: Hashable, skipped: int, elapsed: float) -> tuple[str, tuple[object, ...]]:
        """Name the reason of the lines left out."""
        return " (%d more %s since the last report)", (skipped, key)
