"""The cluster's Kafka topics: named after the cluster, made on first use with their settings."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

log = logging.getLogger(__name__)

__all__ = ["LOG_CONFIGS", "STATUS_CONFIGS", "Topics"]

#: Settings of the compacted logs. Compaction keeps each key's last record; the lag keeps a
#: day of history uncompacted, so a node that reads a log sees every recent record in order.
LOG_CONFIGS = {
    "cleanup.policy": "compact",
    "min.compaction.lag.ms": str(24 * 3600 * 1000),
    "max.message.bytes": str(8 * 1024 * 1024),
}

#: Settings of the status log: a heartbeat every few seconds per node, read only from its recent
#: tail, so old ones are deleted by age rather than kept for compaction.
STATUS_CONFIGS = {
    "cleanup.policy": "delete",
    "retention.ms": str(3600 * 1000),
    "segment.ms": str(600 * 1000),
    "max.message.bytes": str(8 * 1024 * 1024),
}
_CONFIGS_OF = {"status": STATUS_CONFIGS}


class Topics:
    """Makes the cluster's topics (once each) through Kafka's admin API.

    Args:
        cluster: the cluster's name.
        options: aiokafka client keyword arguments.
    """

    def __init__(self, cluster: str, options: dict[str, Any]) -> None:
        self.cluster = cluster
        self._options = options
        self._made: set[str] = set()
        self._lock = asyncio.Lock()

    def name(self, what: str) -> str:
        """The topic of ``what`` (``config``, ``status``, ``slots``)."""
        return f"mqferry-{self.cluster}-{what}"

    async def ensure(self, what: str, *, partitions: int = 1,
                     configs: dict[str, str] | None = None) -> str:
        """Make the topic of ``what`` unless it exists; return its name.

        Raises:
            KafkaError: Kafka refused or could not be reached.
        """
        topic = self.name(what)
        if topic in self._made:
            return topic
        async with self._lock:
            if topic in self._made:
                return topic
            admin = AIOKafkaAdminClient(**self._options)
            try:
                await admin.start()
                if topic not in await admin.list_topics():
                    # Three copies where the cluster has three brokers (Kafka's usual
                    # durability), one on a single-broker development cluster.
                    brokers = (await admin.describe_cluster()).get("brokers") or [None]
                    try:
                        await admin.create_topics([NewTopic(
                            topic, num_partitions=partitions,
                            replication_factor=min(3, len(brokers)),
                            topic_configs=_CONFIGS_OF.get(what, LOG_CONFIGS) if configs is None
                            else configs)])
                        log.info("made the cluster topic %s (%d partitions)", topic, partitions)
                    except TopicAlreadyExistsError:
                        pass  # another node made it first
            except KafkaError:
                raise
            finally:
                await admin.close()
            self._made.add(topic)
            return topic
