"""The MQTT verifier: an MQTT 5 subscriber that tallies benchmark payloads as they arrive.

It uses a persistent MQTT 5 session (clean start off, a session expiry of five minutes), so that
messages queued for it while it reconnects after a broker restart are still delivered, and it
acknowledges each message after tallying it. When it stops it ends the session (a DISCONNECT
that sets the expiry to 0): what a slow bridge publishes after the run is not queued for five
minutes in the broker's store, which Mosquitto saves every minute while every client waits.
It runs mqferry's own connection (:func:`mqferry._mqtt.connect.open_session`) on an event loop
in a thread of its own, so the acks of one read leave together: a client library's per-message
handling would make the verifier, not the bridge, the limit of a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid

from mqferry import MqttUnavailable
from mqferry._config.models import MqttConfig
from mqferry._mqtt.codec import InMessage
from mqferry._mqtt.connect import open_session
from mqferry._mqtt.protocol import MqttProtocol
from mqferry_bench.payload import decode
from mqferry_bench.stats import Tallied, Tally


class MqttVerifier(Tallied):
    """Subscribes to ``topic_filter`` and tallies every arrival.

    Args:
        host: MQTT broker host.
        port: MQTT broker port.
        topic_filter: what to subscribe to.
        qos: subscription QoS.
    """

    def __init__(self, *, host: str, port: int, topic_filter: str, qos: int = 1) -> None:
        self.tally = Tally()
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._filter = topic_filter
        self._qos = qos
        self._config = MqttConfig(server=f"{host}:{port}", keepalive="30s",
                                  clientid=f"mqferry-bench-verify-{uuid.uuid4().hex[:8]}")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._proto: MqttProtocol | None = None

    def _on_publish(self, msg: InMessage) -> None:
        self._count(msg.payload)
        if msg.qos and self._proto is not None:
            self._proto.send_acks(((msg.mid, msg.qos),))  # they leave together after the read

    async def _session(self) -> None:
        self._stopping = stopping = asyncio.get_running_loop().create_future()
        while not stopping.done():
            try:
                proto, connack = await open_session(
                    self._config, client_id=self._config.clientid, clean_start=False,
                    session_expiry=300, on_publish=self._on_publish)
            except MqttUnavailable:
                await asyncio.sleep(1.0)
                continue
            self._proto = proto
            try:
                if not connack.session_present:
                    await proto.requests.subscribe([(self._filter, self._qos)])
                self._subscribed.set()
                await asyncio.wait([stopping, proto.closed], return_when=asyncio.FIRST_COMPLETED)
            except MqttUnavailable:
                pass
            finally:
                self._proto = None
                proto.disconnect(end_session=stopping.done())
            if not stopping.done():
                await asyncio.sleep(1.0)

    def _count(self, payload: bytes | bytearray) -> None:
        now = time.time()
        stamp = decode(payload)
        with self._lock:
            if stamp is None:
                self.tally.add_foreign()
            else:
                self.tally.add(stamp.key, stamp.seq, stamp.sent_us, now)

    def start(self, timeout: float = 30.0) -> None:
        """Connect and subscribe; return once the broker confirmed the subscription."""
        self._loop = asyncio.new_event_loop()
        loop = self._loop
        self._thread = threading.Thread(target=loop.run_until_complete, args=(self._session(),),
                                        name="mqferry-bench-verify", daemon=True)
        self._thread.start()
        if not self._subscribed.wait(timeout):
            self.stop()
            raise ConnectionError(f"no SUBACK from {self._config.server} in {timeout} s")

    def stop(self) -> None:
        """Disconnect and end the session."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        while self._stopping is None and thread.is_alive():
            time.sleep(0.01)
        if self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                loop.call_soon_threadsafe(self._stopping.set_result, None)
        thread.join(10)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None

