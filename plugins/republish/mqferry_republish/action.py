"""The ``republish`` action: renders each rule output into an MQTT message and publishes it.

Each output is secured once the broker acknowledged the publish (QoS 1/2) or it was written
(QoS 0). A publish interrupted by a lost MQTT session is published again once the session is
back (``retried``); one the MQTT client refuses to send (a property or a packet size the broker
would not take, and would end the session for) fails alone, ``failed.invalid``, and is never
tried again. Every message carries the user property ``mqferry-republished`` (the
action id); when such a message comes back through a rule's subscription, the runtime does not
hand that rule's outputs to any republish action, so republishing never loops (counted as
``dropped.loop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from mqferry import (
    LOOP_MARKER,
    MISSING,
    Delivery,
    DeliveryError,
    HealthStatus,
    LogLimiter,
    MqttPublisher,
    MqttUnavailable,
    RuntimeContext,
    Status,
    Template,
    action_metrics,
    describe,
    mqtt_topic_problem,
    to_text,
)
from mqferry_republish.config import RepublishActionConfig

log = logging.getLogger(__name__)

_INT_PROPS = {"Payload-Format-Indicator", "Message-Expiry-Interval"}


class _Outgoing(NamedTuple):
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: dict[str, Any]


def _as_template(value: str | int | bool) -> Template:
    if isinstance(value, bool):
        return Template("true" if value else "false")
    return Template(str(value))


class RepublishAction:
    """Publishes rule outputs to MQTT."""

    #: Skipped for messages that a republish action published (see :data:`LOOP_MARKER`).
    loop_guard = True

    def __init__(self, *, name: str, config: RepublishActionConfig,
                 context: RuntimeContext, connector: MqttPublisher | None = None) -> None:
        p = config.parameters
        self.id = f"republish:{name}"
        self.metrics = action_metrics(self.id)
        #: one line a second per kind of failure: a stream of bad outputs must not flood the log
        self._warn = LogLimiter(log, interval=1.0)
        self.metrics.gauge("inflight", lambda: len(self._tasks))
        # the broker mqferry is attached to, or another one through an `mqtt` connector
        self._mqtt = connector if connector is not None else context.mqtt
        self._topic = Template(p.topic)
        self._payload = Template(p.payload or "${.}")
        self._qos = _as_template(p.qos)
        self._retain = _as_template(p.retain)
        self._props = {k: Template(v) for k, v in p.mqtt_properties.items()}
        self._user_props = Template(p.user_properties) if p.user_properties else None
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False

    def submit(self, output: Mapping[str, Any], delivery: Delivery) -> None:
        """Render and start publishing ``output``.

        An output that cannot be rendered fails alone (``failed.render``), whatever the
        rendering raised.
        """
        self.metrics.inc("matched")
        try:
            msg = self._render(output)
        except Exception as exc:  # a hostile output must not stop the rule or hold its ack
            self.metrics.inc("failed")
            self.metrics.inc("failed.render")
            self._warn.warning("render", "action %s: cannot render the output: %s", self.id,
                               describe(exc))
            delivery.failed("failed.render")
            return
        if msg is None:
            self.metrics.inc("failed")
            self.metrics.inc("failed.render")
            delivery.failed("failed.render")
            return
        task = asyncio.get_running_loop().create_task(
            self._publish(msg, delivery), name=f"mqferry[{self.id}].publish")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _render(self, output: Mapping[str, Any]) -> _Outgoing | None:
        """The message for ``output``; ``None`` (logged) when its topic is not publishable."""
        topic = self._topic.render(output, missing="undefined")
        payload = self._payload.render_bytes(output, missing="undefined")
        qos = _int(self._qos.value(output), 0)
        qos = qos if qos in (0, 1, 2) else 0
        retain = self._retain.value(output) in (True, "true", 1, "1")
        props: dict[str, Any] = {}
        for name, t in self._props.items():
            text = t.render(output)
            if text:
                props[name] = _int(text, 0) if name in _INT_PROPS else text
        user: list[tuple[str, str]] = []
        if self._user_props is not None:
            raw = self._user_props.value(output)
            if isinstance(raw, str | bytes) and raw[:1] in ("{", b"{"):
                with contextlib.suppress(orjson.JSONDecodeError):
                    raw = orjson.loads(raw)
            if isinstance(raw, Mapping):
                user = [(str(k), to_text(v)) for k, v in raw.items() if k != LOOP_MARKER]
        user.append((LOOP_MARKER, self.id))
        props["User-Property"] = user
        why = mqtt_topic_problem(topic)
        if why is not None:
            self._warn.warning("topic", "action %s: rendered topic %r is not a valid MQTT "
                               "topic name: %s", self.id, topic[:200], why)
            return None
        return _Outgoing(topic, payload, qos, retain, props)

    async def _publish(self, msg: _Outgoing, delivery: Delivery) -> None:
        try:
            await self._publish_until_settled(msg, delivery)
        except Exception as exc:  # never leave the delivery (and the message's ack) pending
            self.metrics.inc("failed")
            self._warn.log(logging.ERROR, "publish", "action %s: publish to %r failed: %s",
                           self.id, msg.topic, describe(exc))
            delivery.failed("failed.publish")

    async def _publish_until_settled(self, msg: _Outgoing, delivery: Delivery) -> None:
        topic = msg.topic
        while True:
            try:
                await self._mqtt.publish(topic, msg.payload, qos=msg.qos, retain=msg.retain,
                                         properties=msg.properties or None)
            except MqttUnavailable as exc:
                self.metrics.inc("retried")
                self._warn.warning("interrupted", "action %s: publish to %s interrupted (%s); "
                                   "retrying", self.id, topic, exc)
                await asyncio.sleep(0.5)
                continue
            except (ValueError, TypeError) as exc:
                # Refused before it was written (a property or the packet size the broker
                # would not take): it fails alone, and is never tried again.
                self.metrics.inc("failed")
                self.metrics.inc("failed.invalid")
                self._warn.warning("invalid", "action %s: cannot publish to %r: %s", self.id,
                                   topic, exc)
                delivery.failed("failed.invalid")
                return
            except DeliveryError as exc:
                self.metrics.inc("failed")
                self.metrics.inc(exc.reason)
                self._warn.warning(exc.reason, "action %s: publish to %r: %s", self.id, topic,
                                   exc.detail)
                delivery.failed(exc.reason)
                return
            self.metrics.inc("success")
            delivery.secured()
            return

    async def start(self) -> None:
        """Nothing to start: publishing uses the core MQTT session."""
        self._running = True

    async def stop(self) -> None:
        """Wait for publishes in flight."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=30)
        self._running = False

    async def health(self) -> HealthStatus:
        """``connected`` while running."""
        return HealthStatus(Status.CONNECTED if self._running else Status.STOPPED)


def _int(value: Any, default: int) -> int:
    if value is MISSING or value is None or isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
