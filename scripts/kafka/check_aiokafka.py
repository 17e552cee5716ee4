"""Checks that aiokafka works with the Kafka broker of scripts/services.sh.

Kafka 4 removed old protocol versions (KIP-896), so a Kafka upgrade in scripts/kafka/pom.xml must
pass this first: admin create_topics, produce (one by one, idempotent, and as a batch), consume
with a consumer group, commit, and resume from the commit.

Usage: .venv/bin/python scripts/kafka/check_aiokafka.py [BOOTSTRAP]   (default 127.0.0.1:9092)
"""

from __future__ import annotations

import asyncio
import sys
import uuid

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

PARTITIONS = 3
RECORDS = 10


async def check(bootstrap: str) -> None:
    print(f"aiokafka {aiokafka.__version__} against {bootstrap}")
    topic = f"aiokafka-check-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, replication_factor=1)])
        assert topic in await admin.list_topics()
        print(f"  admin create_topics: ok ({topic}, {PARTITIONS} partitions)")

        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            for i in range(RECORDS):
                await producer.send_and_wait(
                    topic, f"v{i}".encode(), key=f"k{i}".encode(), headers=[("h", b"1")]
                )
            batch = producer.create_batch()
            batch.append(key=b"batch", value=b"batched", timestamp=None)
            metadata = await (await producer.send_batch(batch, topic, partition=0))
        finally:
            await producer.stop()
        print(f"  produce (idempotent) and send_batch: ok (batch offset {metadata.offset})")

        group = f"aiokafka-check-{uuid.uuid4().hex[:8]}"
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            received = 0
            while received < RECORDS + 1:
                async with asyncio.timeout(30):
                    batches = await consumer.getmany(timeout_ms=1000)
                received += sum(len(records) for records in batches.values())
            await consumer.commit()
            committed = [
                await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)
            ]
        finally:
            await consumer.stop()
        assert sum(c or 0 for c in committed) == RECORDS + 1, committed
        print(f"  consumer group join, fetch, commit: ok (committed {committed})")

        again = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await again.start()
        try:
            left = await again.getmany(timeout_ms=3000)
        finally:
            await again.stop()
        assert not any(left.values()), left
        print("  resume from committed offsets: ok (nothing read twice)")
        await admin.delete_topics([topic])
    finally:
        await admin.close()
    print("aiokafka check: ok")


if __name__ == "__main__":
    asyncio.run(check(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"))
