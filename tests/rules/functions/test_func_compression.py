"""Decompression is bounded: a small bomb is refused without producing its output."""

from __future__ import annotations

import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from mqferry._rules import RuleEvalError
from mqferry._rules.functions.compression import MAX_DECOMPRESSED_SIZE

Expr = Callable[..., Any]
GIB = 1 << 30
_MIB_OF_ZEROS = bytes(1 << 20)


def gzip_of_zeros(mib: int) -> bytes:
    """A valid gzip file holding ``mib`` MiB of zeros, built without holding them.

    After a full flush, deflate starts afresh, so every MiB compresses to the same block.
    """
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(_MIB_OF_ZEROS) + c.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(_MIB_OF_ZEROS, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", crc, (mib << 20) & 0xFFFFFFFF)
    return header + block * mib + c.flush() + trailer


def compressed(size: int, wbits: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, wbits)
    out = [c.compress(_MIB_OF_ZEROS) for _ in range(size >> 20)]
    return b"".join([*out, c.compress(bytes(size & 0xFFFFF)), c.flush()])


@pytest.fixture(scope="module")
def gigabyte_bomb() -> bytes:
    bomb = gzip_of_zeros(GIB >> 20)
    assert len(bomb) < 2 << 20
    return bomb


def test_the_bomb_is_what_it_claims() -> None:
    assert zlib.decompress(gzip_of_zeros(3), 31) == bytes(3 << 20)


def test_a_gzip_bomb_is_refused_without_allocating_its_output(
        expr: Expr, gigabyte_bomb: bytes) -> None:
    tracemalloc.start()
    try:
        began = time.monotonic()
        with pytest.raises(RuleEvalError, match="gunzip: output exceeds 16 MiB"):
            expr("gunzip(payload)", payload=gigabyte_bomb)
        took = time.monotonic() - began
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * MAX_DECOMPRESSED_SIZE  # the output would be a GiB
    assert took < 5


@pytest.mark.parametrize(("name", "wbits"), [("unzip", -15), ("gunzip", 31),
                                             ("zip_uncompress", 15)])
def test_every_inverse_stops_at_the_limit(expr: Expr, name: str, wbits: int) -> None:
    at_limit = expr(f"{name}(payload)", payload=compressed(MAX_DECOMPRESSED_SIZE, wbits))
    assert at_limit == "\0" * MAX_DECOMPRESSED_SIZE
    with pytest.raises(RuleEvalError, match=f"{name}: output exceeds 16 MiB"):
        expr(f"{name}(payload)", payload=compressed(MAX_DECOMPRESSED_SIZE + 1, wbits))


def test_a_truncated_stream_is_an_error(expr: Expr) -> None:
    whole = zlib.compress(b"some text to compress", wbits=31)
    with pytest.raises(RuleEvalError, match="incomplete or truncated stream"):
        expr("gunzip(payload)", payload=whole[:-12])
    assert expr("gunzip(payload)", payload=whole + b"trailing bytes") == "some text to compress"
