"""The cluster transport on Kafka: shared compacted logs and session slots as a consumer group.

A plugin: it provides :func:`mqferry_cluster_transport` for configurations with a ``cluster``
section. The topics are ``mqferry-<cluster>-<log>`` (compacted, one partition) and
``mqferry-<cluster>-slots`` (one partition per session slot, never written: the consumer group
coordinator divides its partitions, the slots, among the live nodes).
"""

from __future__ import annotations

from mqferry import ClusterConfig, ConfigError, hookimpl
from mqferry_cluster.transport import KafkaClusterTransport, transport_config

__all__ = ["KafkaClusterTransport", "mqferry_cluster_transport"]


@hookimpl
def mqferry_cluster_transport(config: ClusterConfig, node: str) -> KafkaClusterTransport:
    """The Kafka transport of ``config`` (validated here, with the Kafka connector's fields).

    Raises:
        ConfigError: a transport field is invalid, named by its ``cluster.`` path.
    """
    kafka = transport_config(config)
    if isinstance(kafka, ConfigError):
        raise kafka
    return KafkaClusterTransport(config, kafka, node=node)
