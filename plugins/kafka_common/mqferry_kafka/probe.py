"""Connection checks: can we reach the cluster and read its metadata?"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from mqferry import ConfigError, HealthStatus, Status
from mqferry_kafka.config import KafkaConnectorConfig, client_options

#: The longest closing the probe's client may take, in seconds.
CLOSE_TIMEOUT_S = 5.0


async def probe(cfg: KafkaConnectorConfig, *, client_id: str = "mqferry-probe") -> HealthStatus:
    """Connect, fetch the cluster metadata, disconnect; ``connected`` or why not."""
    try:
        opts: dict[str, Any] = client_options(cfg, client_id)
    except ConfigError as exc:  # a TLS file: the message names it, the log says why
        return HealthStatus(Status.DISCONNECTED, f"{cfg.bootstrap_hosts}: {exc}")
    opts.pop("retry_backoff_ms", None)
    admin = AIOKafkaAdminClient(**opts)
    try:
        async with asyncio.timeout(cfg.connect_timeout + cfg.metadata_request_timeout):
            await admin.start()
        async with asyncio.timeout(cfg.metadata_request_timeout):
            await admin.describe_cluster()
    except (KafkaError, OSError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        return HealthStatus(Status.DISCONNECTED, f"{cfg.bootstrap_hosts}: {reason}")
    finally:
        # Bounded: a close after a cancelled start can wait on a connection that never came,
        # and must not hold the caller's stop.
        with contextlib.suppress(TimeoutError, KafkaError, OSError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await admin.close()
    return HealthStatus(Status.CONNECTED)

