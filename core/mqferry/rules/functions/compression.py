"""Compression: ``zip`` (raw deflate), ``gzip``, ``zip_compress`` (zlib format) and inverses."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from mqferry.rules.functions._args import BadArg, as_bytes

__all__ = ["FUNCTIONS"]


def _compressor(wbits: int) -> Callable[[Any], bytes]:
    def compress(data: Any) -> bytes:
        c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, wbits)
        return c.compress(as_bytes(data)) + c.flush()
    return compress


def _decompressor(wbits: int) -> Callable[[Any], bytes | str]:
    def decompress(data: Any) -> bytes | str:
        try:
            raw = zlib.decompress(as_bytes(data), wbits)
        except zlib.error as exc:
            raise BadArg(f"cannot decompress: {exc}") from exc
        # Text comes back as a string so it can be used in SQL and JSON output directly.
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
    return decompress


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "zip": _compressor(-15),
    "unzip": _decompressor(-15),
    "gzip": _compressor(31),
    "gunzip": _decompressor(31),
    "zip_compress": _compressor(15),
    "zip_uncompress": _decompressor(15),
}
