"""Rate-limited logging of record failures: a poison stream must not flood the log.

The first failure of each reason is logged at once; later ones of the same reason at most once
per interval, each line saying how many were left out since the previous one. The counters in
the source's metrics stay exact.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

#: Seconds between two log lines of the same reason.
INTERVAL = 10.0


class FailureLog:
    """Logs failures by reason, at most one line per reason every ``interval`` seconds.

    Args:
        logger: where the lines go.
        interval: seconds between two lines of the same reason.
        clock: the monotonic clock, in seconds.
    """

    def __init__(self, logger: logging.Logger, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._interval = interval
        # reason -> (when it was last logged, lines left out since)
        self._seen: dict[str, tuple[float, int]] = {}
        self._now = clock

    def log(self, level: int, reason: str, msg: str, *args: Any) -> bool:
        """Log ``msg % args`` unless a line of ``reason`` was logged within the interval.

        Returns:
            whether the line was logged.
        """
        now = self._now()
        last, skipped = self._seen.get(reason, (None, 0))
        if last is not None and now - last < self._interval:
            self._seen[reason] = (last, skipped + 1)
            return False
        self._seen[reason] = (now, 0)
        if skipped:
            self._log.log(level, msg + " (%d more %s since the last report)", *args, skipped,
                          reason)
        else:
            self._log.log(level, msg, *args)
        return True
