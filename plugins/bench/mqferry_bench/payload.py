"""Benchmark payloads: each carries its stream key, a sequence number and its send time.

Two encodings, so that rules reading ``payload.x`` meet both kinds of input:

* JSON (the default): ``{"k":"p0","s":12,"t":1764040000123456,"x":12,"pad":"..."}``, where ``t``
  is the send time in microseconds since the epoch and ``pad`` fills the payload to its size.
* text (not JSON): ``NJ|p0|12|1764040000123456|...``, the same fields separated by ``|``.

:func:`decode` reads both and returns ``None`` for anything else, so that a verifier can count
foreign messages instead of failing on them.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

_TEXT_PREFIX = b"NJ|"


class Stamp(NamedTuple):
    """What a benchmark payload says about itself."""

    key: str
    seq: int
    sent_us: int


def encode(key: str, seq: int, sent_us: int, size: int, *, json: bool = True) -> bytes:
    """A payload of at least ``size`` bytes (exactly ``size`` unless the fields need more).

    Args:
        key: the stream (one publisher) the message belongs to; no ``"`` or ``|``.
        seq: its sequence number in that stream, from 0.
        sent_us: send time, microseconds since the epoch.
        size: the payload size in bytes.
        json: a JSON object (default), or the ``NJ|`` text form.
    """
    if json:
        head = b'{"k":"%s","s":%d,"t":%d,"x":%d,"pad":"' % (key.encode(), seq, sent_us, seq)
        return head + b"." * max(0, size - len(head) - 2) + b'"}'
    head = b"NJ|%s|%d|%d|" % (key.encode(), seq, sent_us)
    return head + b"." * max(0, size - len(head))


def decode(payload: bytes | bytearray) -> Stamp | None:
    """The stamp of a benchmark payload, or ``None`` when it is not one."""
    try:
        if payload[:1] == b"{":
            obj = orjson.loads(payload)
            return Stamp(str(obj["k"]), int(obj["s"]), int(obj["t"]))
        if payload.startswith(_TEXT_PREFIX):
            _, key, seq, sent, _rest = payload.split(b"|", 4)
            return Stamp(key.decode(), int(seq), int(sent))
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
        return None
    return None
