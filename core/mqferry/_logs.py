"""Logging of a running instance: one handler, text or JSON lines, quiet third-party libraries.

An operator reads what changed, once: a connection that fails is logged when it starts failing
(with the back-off), at DEBUG while it keeps failing the same way, and its recovery once
(:class:`RetryLog`). Libraries that retry on their own say the same thing at every attempt;
their loggers default to WARNING (:data:`QUIET`) and :class:`DemoteRetried` lowers to DEBUG the
records about what they retry (aiokafka's "Unable connect to ..." on every bootstrap attempt,
"Group Coordinator Request failed: ... CoordinatorNotAvailableError" while a new cluster's group
coordinator loads), since mqferry's components report those states themselves.
``log.levels`` overrides any logger's level (``aiokafka: debug`` shows them all again).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal, TextIO

__all__ = ["QUIET", "TEXT_FORMAT", "DemoteRetried", "JsonFormatter", "RetryLog", "setup_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

#: Default levels of third-party loggers: what they say above these is what an operator needs.
#: ``uvicorn.access`` is off already (mqferry's API server runs without an access log);
#: ``mqferry._mqtt.paho`` is paho's packet trace, worth its cost only when asked for.
QUIET: Mapping[str, int] = {
    "aiokafka": logging.WARNING,
    "uvicorn": logging.WARNING,
    "mqferry._mqtt.paho": logging.WARNING,
}

#: aiokafka messages (their format strings' starts) about what aiokafka retries by itself, or
#: what mqferry's connector, action or source retries and reports once.
RETRIED = (
    "Unable connect to",
    "Unable to request metadata from",
    "Unable to update metadata from",
    "Group Coordinator Request failed",
    "Error sending %s to node %s [%s] -- marking coordinator dead",
    "Heartbeat send request failed",
    "Failed fetch messages from",
    "Failed fetch offsets from",
    # a produce request that did not reach the broker, or a partition error it retries: ten a
    # second while Kafka is away; the action's status and metrics say it, and a batch that
    # fails for good is logged by the action
    "Got error produce response",
)

#: Words of a retried failure that configuration causes (credentials, certificates): aiokafka's
#: record is the only place that names it, so it stays at its level, bounded by the back-off.
KEPT = ("SASL", "Authentication", "authentication", "credentials", "certificate", "SSL")


class DemoteRetried(logging.Filter):
    """Lower aiokafka's records about retried failures (:data:`RETRIED`) to DEBUG.

    A demoted record is kept only when its logger is enabled for DEBUG (``log.levels``).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Demote, then keep or drop ``record``."""
        if (record.levelno > logging.DEBUG and record.name.startswith("aiokafka")
                and isinstance(record.msg, str) and record.msg.startswith(RETRIED)):
            text = record.getMessage()
            if any(word in text for word in KEPT):
                return True
            if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
                return False
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``,
    and ``exception`` (the traceback text) when the record carries one."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        out: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str, fmt: Literal["text", "json"] = "text",
                  levels: Mapping[str, str] | None = None, *,
                  stream: TextIO | None = None) -> None:
    """Configure the root logger: one stderr handler, its format, quiet third-party loggers.

    Args:
        level: mqferry's level (``debug``, ``info``, ``warning``, ``error``).
        fmt: ``text`` (one line: time, level, logger, message) or ``json``.
        levels: levels of particular loggers by name (``aiokafka: info``), over :data:`QUIET`.
        stream: where lines go (standard error by default).
    """
    root_level = logging.getLevelNamesMapping()[level.upper()]
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(DemoteRetried())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(root_level)
    for name, quiet in QUIET.items():
        logging.getLogger(name).setLevel(max(quiet, root_level))
    for name, given in (levels or {}).items():
        logging.getLogger(name).setLevel(given.upper())


class RetryLog:
    """The log of a retry loop, one line per state change.

    The first failure, and each failure whose reason differs from the last, is a WARNING naming
    the back-off; a repeat of the same reason is DEBUG. The caller logs its success line itself
    ("producer connected", "connected to MQTT broker") and calls :meth:`reset`.

    Args:
        logger: where to log.
        what: the subject of every line (``action kafka_producer:sink: Kafka``).
    """

    __slots__ = ("_logger", "_reason", "what")

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._logger = logger
        self.what = what
        self._reason: str | None = None

    @property
    def failing(self) -> bool:
        """Whether the last attempt failed."""
        return self._reason is not None

    def failed(self, reason: str, delay: float) -> None:
        """An attempt failed for ``reason``; the next one is in ``delay`` seconds."""
        level = logging.DEBUG if reason == self._reason else logging.WARNING
        self._reason = reason
        self._logger.log(level, "%s: unreachable (%s), retrying in %.1fs", self.what, reason,
                         delay)

    def reset(self) -> None:
        """An attempt succeeded: the next failure is a state change again."""
        self._reason = None
