"""Several mqferry nodes sharing one configuration, the MQTT input and their status.

The core holds the cluster's logic; a plugin provides its transport
(:class:`~mqferry._cluster.transport.ClusterTransport`): shared, ordered logs and a membership
that divides the session slots among the live nodes. ``mqferry_cluster`` provides them on Kafka.
"""
