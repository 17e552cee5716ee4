"""Rate-limited warnings: a stream of bad records must not flood the log."""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    """Logs at most one warning per key and ``interval`` seconds, saying how many were held back.

    Args:
        logger: where to log.
        interval: seconds between two warnings with the same key.
    """

    def __init__(self, logger: logging.Logger, interval: float = 1.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, key: str, msg: str, *args: object) -> None:
        """Log ``msg % args`` unless ``key`` was logged less than ``interval`` seconds ago."""
        now = time.monotonic()
        if now - self._last.get(key, -self.interval) < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            self.logger.warning(msg + " (and %d more like it)", *args, held)
        else:
            self.logger.warning(msg, *args)
