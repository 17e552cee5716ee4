"""Hostile inputs for the fuzz properties, and the settings every property runs with.

Example counts are modest and the generation is derandomized, so a run is the same run every time
and fits the unit suite. ``MQFERRY_FUZZ_EXAMPLES`` multiplies the counts and
``MQFERRY_FUZZ_RANDOM=1`` draws fresh examples, for a longer hunt on a workstation.
"""

from __future__ import annotations

import os
import string
from typing import Any

import orjson
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_SCALE = max(1, int(os.environ.get("MQFERRY_FUZZ_EXAMPLES", "1")))
_RANDOM = os.environ.get("MQFERRY_FUZZ_RANDOM") == "1"


def fuzz_settings(examples: int, deadline_ms: int | None = 2000) -> settings:
    """Settings of one property: ``examples`` (times ``MQFERRY_FUZZ_EXAMPLES``), derandomized.

    ``deadline_ms`` bounds each example: processing a message must never take seconds.
    """
    return settings(
        max_examples=examples * _SCALE,
        derandomize=not _RANDOM,
        database=None,
        deadline=deadline_ms,
        # Hostile inputs are large on purpose, and shrinking one is rarely shorter.
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.large_base_example],
        print_blob=True,
    )


# -- payloads ------------------------------------------------------------------------------------

def nested(depth: int, kind: str = "list") -> bytes:
    """A JSON document nested ``depth`` deep (lists or maps), as bytes."""
    if kind == "map":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b"[" * depth + b"1" + b"]" * depth


#: Depths around orjson's limits (255 to encode, 1024 to decode) and far beyond.
DEPTHS = (2, 254, 255, 256, 300, 300, 500, 1000, 1023, 1024, 1025, 100_000)

#: Numbers and number-like text JSON parsers disagree on.
NUMBER_TEXTS = (
    b"1e400", b"-1e400", b"1e-400", b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf",
    b"-0", b"0.0000000000000000000000001", b"9" * 50, b"-" + b"9" * 50,
    b"18446744073709551616", b"-9223372036854775809", b"1" + b"0" * 40 + b".5",
)


@st.composite
def _number_text(draw: st.DrawFn) -> bytes:
    text = draw(st.sampled_from(NUMBER_TEXTS))
    if text.lstrip(b"-").startswith(b"9") and draw(st.booleans()):
        # 5000 digits, built rather than listed (Hypothesis reprs its literals).
        return text * 100 if text[:1] == b"9" else b"-" + text[1:] * 100
    return text


@st.composite
def deep_json(draw: st.DrawFn) -> bytes:
    """A deeply nested document, bare or under the fields the fuzz rules read."""
    depth = draw(st.sampled_from(DEPTHS))
    doc = nested(depth, draw(st.sampled_from(["list", "map"])))
    field = draw(st.sampled_from([None, "d", "a", "xs", "k", "h"]))
    return doc if field is None else b'{"' + field.encode() + b'":' + doc + b"}"


@st.composite
def number_json(draw: st.DrawFn) -> bytes:
    """Huge, tiny, NaN and Infinity numbers, bare or as the fields the rules compute with."""
    text = draw(_number_text())
    field = draw(st.sampled_from([None, "n", "d", "xs"]))
    if field == "xs":
        return b'{"xs": [' + text + b", " + text + b"]}"
    return text if field is None else b'{"' + field.encode() + b'": ' + text + b"}"


@st.composite
def long_text(draw: st.DrawFn) -> bytes:
    """A very long string payload (up to 2 MB), plain or as a JSON field."""
    size = draw(st.sampled_from([1000, 65_536, 300_000, 2 * 1024 * 1024]))
    unit = draw(st.sampled_from(["a", "é", "\u2603", "\\", '"', "${.}", "\x00"]))
    body = (unit * size)[:size]
    if draw(st.booleans()):
        return orjson.dumps({"k": body, "h": body[:1000], "a": {"b": body}})
    return body.encode()


def _json_values() -> st.SearchStrategy[Any]:
    # orjson encodes 64-bit integers only; larger numbers come as text from NUMBER_TEXTS.
    leaves = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
              | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
    return st.recursive(leaves, lambda children: st.lists(children, max_size=4)
                        | st.dictionaries(st.sampled_from(["a", "b", "d", "k", "h", "n", "xs"])
                                          | st.text(max_size=8), children, max_size=4),
                        max_leaves=20)


#: Every kind of hostile payload, plus ordinary JSON and arbitrary bytes.
payloads: st.SearchStrategy[bytes] = st.one_of(
    # Deep documents twice: they are the kind most likely to break a renderer.
    deep_json(),
    number_json(),
    deep_json(),
    long_text(),
    st.binary(max_size=300),  # binary, mostly invalid UTF-8
    st.sampled_from([b"\xff\xfe\xfd", b'{"a": "\xff"}', b"\xc0\x80", b"\xed\xa0\x80",
                     b'{"k": "\\ud800"}', b"", b"{", b"[", b'{"a":', b"null", b'"x"']),
    _json_values().map(orjson.dumps),
)


# -- topics and properties -----------------------------------------------------------------------

_TOPIC_CHARS = st.sampled_from([*"ab/+#$ é\u2603\x00\t", "\U0001f600", "\u200b"])

#: Topic names no broker delivers and names at the edges of the spec.
topics: st.SearchStrategy[str] = st.one_of(
    st.text(_TOPIC_CHARS, max_size=20),
    st.sampled_from(["", "/", "//", "a//b", "/a/", "$SYS/x", "$share/g/t", "$bridges/x",
                     "$sources/kafka_consumer:src", "+", "#", "a/+/b", "a/#", "\U0010ffff"]),
    # Long ones are built, not listed: Hypothesis warns about the repr of large literals.
    st.sampled_from(["a", "l/", "t/\u2603"]).map(lambda unit: unit * 20_000),
    st.text(max_size=40),
)

_prop_text = st.text(max_size=20) | st.sampled_from(
    ["clientid", "username", "mqferry-republished", "", "{", '{"a":1}', "long"]).map(
        lambda v: "x" * 10_000 if v == "long" else v)

#: MQTT 5 user properties, repeated keys included.
user_properties: st.SearchStrategy[list[tuple[str, str]]] = st.lists(
    st.tuples(_prop_text, _prop_text), max_size=6)

#: Kafka record headers (keys are text, values bytes).
headers: st.SearchStrategy[list[tuple[str, bytes]]] = st.lists(
    st.tuples(st.text(max_size=10) | st.sampled_from(["", "\x00", "k" * 50]),
              st.binary(max_size=40) | st.sampled_from([300, 1, 2]).map(
                  lambda n: nested(n) if n > 2 else (b"\xff", b"{")[n - 1])),
    max_size=5)

#: Record keys.
keys: st.SearchStrategy[bytes | None] = (
    st.none() | st.binary(max_size=30)
    | st.sampled_from([b"a/#", b"+", b"", b"\xff", b"$SYS", b"long", b"deep"]).map(
        lambda k: b"k" * 70_000 if k == b"long" else nested(300) if k == b"deep" else k))


# -- rule SQL ------------------------------------------------------------------------------------

_COLUMNS = ("payload", "payload.a", "payload.a.b", "payload.d", "payload.xs", "payload.n",
            "payload.k", "topic", "clientid", "username", "qos", "id", "timestamp", "flags",
            "flags.dup", "pub_props", "node", "payload.xs[1]", "payload.xs[-1]", "x")


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _literals() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-1000, 1000).map(str),
        st.sampled_from(["0.5", "1.0e3", "2.5e-3", "true", "false"]),
        st.text(string.printable, max_size=12).map(_sql_string),
        st.sampled_from(["'^(a+)+$'", "'.*'", "'['", "'${.}'", "'.'", "'a'", "'\\\\'",
                         "'%s'", "'%d'", "'utf8'", "'sha256'", "'{}'", "'[1,2]'"]),
    )


def expressions(functions: list[tuple[str, int, int | None]]) -> st.SearchStrategy[str]:
    """Rule SQL expressions over the event columns, calling ``(name, min, max)`` functions."""
    base = st.sampled_from(_COLUMNS) | _literals()

    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        @st.composite
        def call(draw: st.DrawFn) -> str:
            name, low, high = draw(st.sampled_from(functions))
            count = draw(st.integers(low, low + 2 if high is None else min(high, low + 2)))
            args = [draw(children) for _ in range(count)]
            return f"{name}({', '.join(args)})"

        binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "div", "mod", "=",
                                                      "<>", ">", "<=", "=~", "and", "or"]),
                           children).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
        case = st.tuples(children, children, children).map(
            lambda t: f"case when {t[0]} then {t[1]} else {t[2]} end")
        lists = st.lists(children, max_size=3).map(lambda xs: f"[{', '.join(xs)}]")
        return call() | binary | case | lists | children.map(lambda c: f"not {c}")

    return st.recursive(base, extend, max_leaves=8)


@st.composite
def statements(draw: st.DrawFn, functions: list[tuple[str, int, int | None]]) -> str:
    """A rule statement from a small grammar of valid shapes (its functions may still refuse
    their arguments at run time)."""
    expr = expressions(functions)
    fields = draw(st.lists(st.tuples(expr, st.sampled_from(["a", "b", "c", "x", "payload"])),
                           min_size=1, max_size=3))
    where = draw(st.none() | expr)
    if draw(st.integers(0, 4)) == 0:
        stmt = f"FOREACH {draw(expr)} as x DO x, {draw(expr)} as y"
        incase = draw(st.none() | expr)
        if incase is not None:
            stmt += f" INCASE {incase}"
    else:
        stmt = "SELECT " + ", ".join(f"{e} as {a}" for e, a in fields)
    stmt += ' FROM "#"'
    if where is not None:
        stmt += f" WHERE {where}"
    return stmt
