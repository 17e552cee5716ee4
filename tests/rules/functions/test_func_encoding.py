"""JSON, base64, hashing, compression and bit functions."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from mqferry._rules import RuleEvalError


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("json_encode(payload.nested)", '{"a":{"b":"deep"}}'),
        ("json_encode(payload.arr)", "[1,2,3]"),
        ("json_decode('{\"a\": [1, 2.0]}')", {"a": [1, 2.0]}),
        ("json_decode(json_encode(payload.sensors))[2].v", 2),
        ("base64_encode('hello')", "aGVsbG8="),
        ("base64_decode('aGVsbG8=')", "hello"),
        ("base64_encode('hello', 'no_padding')", "aGVsbG8"),
        ("base64_decode('aGVsbG8', 'no_padding')", "hello"),
        ("base64_encode('??>', 'urlsafe')", "Pz8-"),
        ("base64_decode('Pz8-', 'urlsafe')", "??>"),
        ("md5('a')", "0cc175b9c0f1b6a831c399e269772661"),
        ("sha('a')", "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8"),
        ("sha256('a')", "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"),
        ("hash('sha1', 'a')", "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8"),
        ("hash('md5', 'a')", "0cc175b9c0f1b6a831c399e269772661"),
        ("gunzip(gzip('text'))", "text"),
        ("unzip(zip('text'))", "text"),
        ("zip_uncompress(zip_compress('text'))", "text"),
        ("bitnot(0)", -1),
        ("bitand(12, 10)", 8),
        ("bitor(12, 10)", 14),
        ("bitxor(12, 10)", 6),
        ("bitsl(1, 4)", 16),
        ("bitsr(16, 2)", 4),
        ("bitsize('ab')", 16),
        ("bytesize('ab')", 2),
        ("subbits('a', 1, 4)", 6),
        ("subbits('a', 5, 4)", 1),
        ("subbits('a', 8)", 97),
        ("subbits(hexstr2bin('FF'), 1, 8, 'integer', 'signed', 'big')", -1),
        ("subbits(hexstr2bin('0100'), 1, 16, 'integer', 'unsigned', 'little')", 1),
        ("subbits(hexstr2bin('3FF00000'), 1, 32, 'float', 'unsigned', 'big')", 1.875),
        ("subbits('a', 9, 1)", None),
    ],
)
def test_encoding(expr: Callable[..., Any], sql: str, expected: Any) -> None:
    assert expr(sql) == expected


def test_compression_formats_match_zlib_and_gzip(expr: Callable[..., Any]) -> None:
    assert gzip.decompress(expr("gzip('hi')")) == b"hi"
    assert zlib.decompress(expr("zip_compress('hi')")) == b"hi"
    assert zlib.decompress(expr("zip('hi')"), -15) == b"hi"


@pytest.mark.parametrize(
    "sql",
    [
        "json_decode('{bad')",
        "base64_decode('a')",
        "hash('nope', 'a')",
        "gunzip('plain')",
        "bitand(1.5, 1)",
        "subbits('a', 1, 3, 'float', 'signed', 'big')",
    ],
)
def test_encoding_errors(expr: Callable[..., Any], sql: str) -> None:
    with pytest.raises(RuleEvalError):
        expr(sql)
