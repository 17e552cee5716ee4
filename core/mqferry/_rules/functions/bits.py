"""Bitwise operations and bit-sequence functions (``subbits``).

A bit string that is not a whole number of bytes (``subbits(b, 1, 4, 'bits')``) is a
:class:`Bits`; it goes on to ``bin2hexstr``, ``bitsize`` and ``subbits`` as in EMQX. EMQX has
no JSON form for it; in an output it shows as ``{"value": ..., "size": ...}``.

``bitsl`` results are bounded by :data:`MAX_INT_BITS`: a shift by a caller's count could otherwise
build an integer of gigabytes from a few bytes of input.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mqferry._rules.functions._args import BadArg, as_bytes, as_int, as_text

__all__ = ["FUNCTIONS", "MAX_INT_BITS", "Bits", "as_bits"]

#: The widest integer ``bitsl`` builds, in bits (room for any register, hash or bit mask).
MAX_INT_BITS = 4096


@dataclass(frozen=True, slots=True)
class Bits:
    """A bit string of ``size`` bits that is not a whole number of bytes.

    Attributes:
        value: the bits as an unsigned integer, most significant bit first.
        size: how many bits.
    """

    value: int
    size: int

    def __str__(self) -> str:
        return f"<<{self.value}:{self.size}>>"


def as_bits(data: Any) -> tuple[int, int]:
    """A binary or :class:`Bits` argument as ``(value, size in bits)``."""
    if isinstance(data, Bits):
        return data.value, data.size
    raw = as_bytes(data)
    return int.from_bytes(raw, "big"), len(raw) * 8


def bitnot(x: Any) -> int:
    """Bitwise NOT."""
    return ~as_int(x)


def bitand(x: Any, y: Any) -> int:
    """Bitwise AND."""
    return as_int(x) & as_int(y)


def bitor(x: Any, y: Any) -> int:
    """Bitwise OR."""
    return as_int(x) | as_int(y)


def bitxor(x: Any, y: Any) -> int:
    """Bitwise XOR."""
    return as_int(x) ^ as_int(y)


def bitsl(x: Any, n: Any) -> int:
    """Shift left by ``n`` bits."""
    value, shift = as_int(x), as_int(n)
    if value and shift > 0 and value.bit_length() + shift > MAX_INT_BITS:
        raise BadArg(f"bitsl: the result would be {value.bit_length() + shift} bits wide, "
                     f"over the limit of {MAX_INT_BITS}")
    return value << shift


def bitsr(x: Any, n: Any) -> int:
    """Arithmetic shift right by ``n`` bits."""
    return as_int(x) >> as_int(n)


def bitsize(data: Any) -> int:
    """Size of a binary (or bit string) in bits."""
    return as_bits(data)[1]


def bytesize(data: Any) -> int:
    """Size of a binary in bytes."""
    return len(as_bytes(data))


def subbits(  # noqa: PLR0917 - mirrors EMQX's positional SQL signature
    data: Any, start_or_len: Any, length: Any = None, kind: Any = "integer",
            signedness: Any = "unsigned", endianness: Any = "big") -> Any:
    """Read ``length`` bits from bit ``start`` (1-based) of a binary.

    ``subbits(B, Len)`` reads from the first bit. The type is ``integer``, ``float`` or ``bits``
    (a binary, or :class:`Bits` when the length is not a whole number of bytes); a read past the
    end is truncated to the bits left, and a start past the end gives undefined. ``B`` may itself
    be a :class:`Bits`.
    """
    bits, total = as_bits(data)
    if length is None:
        start, length = 1, as_int(start_or_len)
    else:
        start, length = as_int(start_or_len), as_int(length)
    kind, signedness, endianness = as_text(kind), as_text(signedness), as_text(endianness)
    begin = start - 1
    if begin < 0 or begin >= total or length < 0:
        return None
    length = min(length, total - begin)
    value = (bits >> (total - begin - length)) & ((1 << length) - 1)
    if endianness == "little":
        if length % 8:
            raise BadArg("little-endian reads need a whole number of bytes")
        value = int.from_bytes(value.to_bytes(length // 8, "big"), "little")
    elif endianness != "big":
        raise BadArg(f"unknown endianness {endianness!r}")
    if kind == "integer":
        if signedness == "signed" and length and value >> (length - 1):
            value -= 1 << length
        return value
    if kind == "float":
        fmt = {16: ">e", 32: ">f", 64: ">d"}.get(length)
        if fmt is None:
            raise BadArg(f"a float is 16, 32 or 64 bits, not {length}")
        result: float = struct.unpack(fmt, value.to_bytes(length // 8, "big"))[0]
        return result
    if kind == "bits":
        if length % 8:
            return Bits(value, length)
        return value.to_bytes(length // 8, "big")
    raise BadArg(f"unknown type {kind!r}")


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "bitnot": bitnot, "bitand": bitand, "bitor": bitor, "bitxor": bitxor, "bitsl": bitsl,
    "bitsr": bitsr, "bitsize": bitsize, "bytesize": bytesize, "subbits": subbits,
}
