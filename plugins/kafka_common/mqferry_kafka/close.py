"""Closing aiokafka clients: bounded, and never mistaken for a cancellation of the caller.

aiokafka's consumer ``stop()`` cancels its own fetch tasks and then awaits them; when one of them
was sleeping between retries (Kafka unreachable), the ``CancelledError`` of that task comes out
of ``stop()``. Let through, it ends the caller as if it had been cancelled: a supervised loop
would end silently instead of starting its client again. :func:`close_client` turns it, a
timeout and a Kafka error into one logged reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from mqferry import cancel_requests, describe

log = logging.getLogger(__name__)

__all__ = ["close_client"]


async def close_client(closing: Awaitable[object], what: str, *, timeout: float) -> str | None:
    """Await ``closing`` (a client's ``stop()`` or ``close()``) for at most ``timeout`` seconds.

    Returns:
        ``None`` when it closed, else why not (also logged as a WARNING naming ``what``).

    Raises:
        asyncio.CancelledError: only when the calling task itself is cancelled while it waits.
    """
    before = cancel_requests()
    try:
        async with asyncio.timeout(timeout):
            await closing
    except asyncio.CancelledError:
        if cancel_requests() > before:
            raise  # the caller itself was cancelled meanwhile
        reason = "the client's stop was cancelled from inside the client"
    except TimeoutError:
        reason = f"not closed within {timeout:.1f}s"
    except Exception as exc:  # a close that fails, however, must not replace what follows it
        reason = describe(exc)
    else:
        return None
    log.warning("%s: closing the Kafka client failed: %s", what, reason)
    return reason
