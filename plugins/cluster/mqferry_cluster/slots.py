"""Session slots as a Kafka consumer group: the group coordinator divides them among the nodes.

The topic ``mqferry-<cluster>-slots`` has one partition per slot and is never written to; the
consumer group ``mqferry-<cluster>-slots`` subscribes to it only so that Kafka's coordinator
assigns its partitions (partition ``n`` is slot ``n``) to the live members, and moves a member's
share to the others when its session times out (``node_timeout``). aiokafka's rebalance protocol
is eager: every rebalance revokes every slot of every member before the new assignment, and a
member's ``revoked`` must finish before the coordinator hands the slots on, so two nodes never
open one slot's MQTT session at once, as long as both reach Kafka.

A node cut off from the coordinator does not hear that its slots moved. It fences itself: once
it has not reached the coordinator for ``node_timeout`` less one heartbeat (just before Kafka
expires its membership), it drops its slots locally and joins again as a new member when Kafka
is back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from mqferry import HealthStatus, RetryLog, SlotListener, Status, Supervisor, describe
from mqferry_cluster.topics import Topics
from mqferry_kafka import close_client

log = logging.getLogger(__name__)

__all__ = ["SLOT_CONFIGS", "SlotGroup"]

#: The slot topic holds nothing (nothing is written to it); a short retention keeps it so if a
#: record ever lands there by mistake.
SLOT_CONFIGS = {"retention.ms": str(60 * 1000), "cleanup.policy": "delete"}


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka's rebalance callbacks, turned into slot numbers for the group."""

    def __init__(self, group: SlotGroup, topic: str) -> None:
        self._group = group
        self._topic = topic

    def _slots(self, partitions: Any) -> frozenset[int]:
        return frozenset(tp.partition for tp in partitions if tp.topic == self._topic)

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._group.revoke(self._slots(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._group.assign(self._slots(assigned))


class SlotGroup:
    """This node's membership of the slot group; tells ``listener`` which slots it holds.

    Args:
        topics: makes the slot topic.
        options: aiokafka client keyword arguments.
        slots: how many slots (partitions of the slot topic).
        listener: told of the slots assigned and revoked, one call at a time.
        node_timeout: the group session timeout, and how long an unreachable coordinator is
            waited for before this node drops its slots (seconds).
        heartbeat_interval: how often the membership is renewed (seconds).
    """

    def __init__(self, topics: Topics, options: dict[str, Any], *, slots: int,
                 listener: SlotListener, node_timeout: float,
                 heartbeat_interval: float) -> None:
        self._topics = topics
        self._options = options
        self.slots = slots
        self._listener = listener
        self._timeout = node_timeout
        self._heartbeat = heartbeat_interval
        self.topic = topics.name("slots")
        self.group_id = self.topic
        #: The slots this node holds (told to the listener as assigned and not yet revoked).
        self.owned: frozenset[int] = frozenset()
        self._lock = asyncio.Lock()
        self._last_reached = 0.0
        self._assigned = False  # the current membership got its first assignment
        self._retries = RetryLog(log, "cluster slots: Kafka")
        self._status = HealthStatus(Status.STOPPED)
        self._consumer: AIOKafkaConsumer | None = None
        self._loop_task = Supervisor(f"mqferry[cluster {topics.cluster}].slots", self._run,
                                     on_failure=self._failed)

    # -- the listener, one call at a time ----------------------------------------------------

    async def assign(self, slots: frozenset[int]) -> None:
        """The coordinator gave this node ``slots`` (possibly none): tell the listener the new
        ones. The membership is ``connected`` from its first assignment on."""
        self.reached()  # an assignment comes from the coordinator
        self._assigned = True
        if self._status.status is not Status.CONNECTED:
            self._status = HealthStatus(Status.CONNECTED)
        async with self._lock:
            gained = slots - self.owned
            self.owned |= gained
            log.info("cluster slots: this node holds %s", sorted(self.owned) or "none")
            if gained:
                await self._tell("assigned", gained)

    async def revoke(self, slots: frozenset[int]) -> None:
        """``slots`` are no longer this node's: the listener closes them before this returns."""
        async with self._lock:
            lost = slots & self.owned
            if lost:
                await self._tell("revoked", lost)
                self.owned -= lost

    async def _tell(self, what: str, slots: frozenset[int]) -> None:
        try:
            if what == "assigned":
                await self._listener.assigned(slots)
            else:
                await self._listener.revoked(slots)
        except Exception as exc:  # raised into aiokafka's coordinator, it would be lost
            log.exception("cluster slots: the listener failed on %s %s", what, sorted(slots))
            self._status = HealthStatus(Status.CONNECTING,
                                        f"slots {sorted(slots)} {what}: {describe(exc)}")

    # -- lifecycle ---------------------------------------------------------------------------

    def reached(self) -> None:
        """The coordinator answered just now."""
        self._last_reached = asyncio.get_running_loop().time()

    def start(self) -> None:
        """Join in the background; the first assignment comes once the group has formed."""
        if not self._loop_task.running:
            self._status = HealthStatus(Status.CONNECTING, "joining the slot group")
            self._loop_task.start()

    async def stop(self) -> None:
        """Revoke every slot, then leave the group. Idempotent."""
        await self._loop_task.stop()
        await self.revoke(self.owned)
        await self._close()
        self._status = HealthStatus(Status.STOPPED)

    def health(self) -> HealthStatus:
        """``connected`` while a member of the group, else why not."""
        problem = self._loop_task.problem()
        if problem is not None:
            return HealthStatus(Status.CONNECTING, problem)
        return self._status

    def _failed(self, exc: BaseException, delay: float) -> None:
        self._status = HealthStatus(Status.CONNECTING, f"slot group loop failed: "
                                    f"{describe(exc)}; restarting in {delay:.1f}s")

    async def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        # Leaves the group; bounded, since an unreachable coordinator cannot be told.
        await close_client(consumer.stop(), "cluster slots: leaving the group",
                           timeout=self._timeout)

    # -- the membership loop -----------------------------------------------------------------

    async def _run(self) -> None:
        # Cancelled by stop(), which revokes and then leaves: not closed here.
        retries = self._retries
        retries.reset()
        delay = 0.5
        while True:
            try:
                await self._member()
            except (KafkaError, OSError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                self._status = HealthStatus(Status.CONNECTING,
                                            f"slot group: Kafka unreachable: {reason}")
                retries.failed(reason, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            else:
                delay = 0.5

    async def _member(self) -> None:
        """One membership: join, heartbeat, and return when fenced (a new member then joins)."""
        # After a crash or a fence: what the last member held is dropped before it leaves.
        await self.revoke(self.owned)
        await self._close()
        await self._topics.ensure("slots", partitions=self.slots, configs=SLOT_CONFIGS)
        consumer = self._consumer = AIOKafkaConsumer(
            **self._options, group_id=self.group_id, enable_auto_commit=False,
            auto_offset_reset="latest",
            session_timeout_ms=int(self._timeout * 1000),
            heartbeat_interval_ms=int(self._heartbeat * 1000),
            # the revoke callback drains sessions; the coordinator waits that long for it
            rebalance_timeout_ms=int(self._timeout * 1000))
        await consumer.start()
        self._retries.reset()  # a later failure is a new state, logged as a WARNING
        self._assigned = False
        consumer.subscribe([self.topic], listener=_Rebalance(self, self.topic))
        self.reached()
        self._status = HealthStatus(Status.CONNECTING, "joined the slot group; waiting for the "
                                    "coordinator's assignment")
        probe = TopicPartition(self.topic, 0)
        loop = asyncio.get_running_loop()
        while True:
            # Nothing is ever read: polling keeps the member within its poll interval. Twice
            # per heartbeat interval, so the fence below comes within one interval.
            await consumer.getmany(timeout_ms=int(self._heartbeat * 500))
            try:
                # An offset lookup goes to the group coordinator: it answers, or this node
                # cannot renew its membership either.
                async with asyncio.timeout(self._heartbeat / 2):
                    await consumer.committed(probe)
                self.reached()
                if self._assigned and self._status.status is not Status.CONNECTED:
                    self._status = HealthStatus(Status.CONNECTED)
            except (KafkaError, OSError, TimeoutError) as exc:
                silent = loop.time() - self._last_reached
                self._status = HealthStatus(
                    Status.CONNECTING, f"slot group coordinator unreachable for {silent:.0f}s: "
                    f"{describe(exc)}")
                # A heartbeat early: Kafka counts the timeout from the last heartbeat it got,
                # which may be up to one interval after this node's last answer; the slots must
                # be closed here before another node opens them.
                if silent > self._timeout - self._heartbeat:
                    log.warning("cluster slots: the group coordinator has been unreachable for "
                                "%.0fs; dropping slots %s (Kafka gives them to other nodes)",
                                silent, sorted(self.owned))
                    await self.revoke(self.owned)
                    return
