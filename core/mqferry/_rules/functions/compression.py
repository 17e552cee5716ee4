"""Compression: ``zip`` (raw deflate), ``gzip``, ``zip_compress`` (zlib format) and inverses.

The inverses (``unzip``, ``gunzip``, ``zip_uncompress``) stop at :data:`MAX_DECOMPRESSED_SIZE`:
deflate shrinks a GiB of zeros to about a MiB, so without a bound one small message could make the
process allocate gigabytes. Past the bound the call fails ("gunzip: output exceeds 16 MiB") without
producing the rest of the output.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from mqferry._rules.functions._args import MAX_RESULT_SIZE, BadArg, as_bytes, describe_size

__all__ = ["FUNCTIONS", "MAX_DECOMPRESSED_SIZE"]

#: The most bytes ``unzip``, ``gunzip`` and ``zip_uncompress`` return.
MAX_DECOMPRESSED_SIZE = MAX_RESULT_SIZE


def _compressor(wbits: int) -> Callable[[Any], bytes]:
    def compress(data: Any) -> bytes:
        c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, wbits)
        return c.compress(as_bytes(data)) + c.flush()
    return compress


def _decompressor(name: str, wbits: int) -> Callable[[Any], bytes | str]:
    def decompress(data: Any) -> bytes | str:
        d = zlib.decompressobj(wbits)
        try:
            # One byte over the limit tells "exactly at the limit" from "more to come".
            raw = d.decompress(as_bytes(data), MAX_DECOMPRESSED_SIZE + 1)
        except zlib.error as exc:
            raise BadArg(f"cannot decompress: {exc}") from exc
        if len(raw) > MAX_DECOMPRESSED_SIZE:
            raise BadArg(f"{name}: output exceeds {describe_size(MAX_DECOMPRESSED_SIZE)}")
        if not d.eof:
            # What zlib.decompress reports; data after the end of the stream is ignored as there.
            raise BadArg("cannot decompress: incomplete or truncated stream")
        # Text comes back as a string so it can be used in SQL and JSON output directly.
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
    decompress.__name__ = name
    return decompress


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "zip": _compressor(-15),
    "unzip": _decompressor("unzip", -15),
    "gzip": _compressor(31),
    "gunzip": _decompressor("gunzip", 31),
    "zip_compress": _compressor(15),
    "zip_uncompress": _decompressor("zip_uncompress", 15),
}
