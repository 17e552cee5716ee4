"""EMQX's own cases for the string, hex, bit, check and date functions, as mqferry vectors.

Every case cites where it comes from in emqx/emqx (commit 50e04386, August 2026):
``SUITE`` is ``apps/emqx_rule_engine/test/emqx_rule_funcs_SUITE.erl``, ``FUNCS`` is
``apps/emqx_rule_engine/src/emqx_rule_funcs.erl``, ``BIF`` is
``apps/emqx_utils/src/emqx_variform_bif.erl``, ``UTILS`` is ``apps/emqx_utils/src/emqx_utils.erl``
and ``CAL`` is ``apps/emqx_utils/src/emqx_utils_calendar.erl``. The expected values are worked
out from the Erlang source, cited beside them; each runs through rule SQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from mqferry._rules import RuleEvalError, compile_sql
from tests.rules.conftest import make_event

Expr = Callable[..., Any]


def run(sql_expr: str, payload: dict[str, Any] | None = None) -> Any:
    """The value of one expression, with ``payload`` as the message's JSON payload."""
    rule = compile_sql(f'SELECT {sql_expr} AS r FROM "#"')
    out = rule.apply(make_event(payload=json.dumps(payload or {}).encode()))
    assert isinstance(out, dict)
    return out.get("r")


def bits_sql(value: int, size: int) -> str:
    """SQL for the Erlang bit string ``<<value:size>>``, cut out of whole bytes by subbits."""
    pad = -size % 8
    hexstr = f"{value:0{(size + pad) // 4}X}"
    return f"subbits(hexstr2bin('{hexstr}'), {pad + 1}, {size}, 'bits')"


# -- strlen and friends count grapheme clusters ------------------------------------------------

@pytest.mark.parametrize(("text", "want"), [
    ("abcd", 4),        # SUITE t_strlen, line 565
    ("你好", 2),         # SUITE t_strlen, line 566
    ("\r\n", 1),         # BIF strlen/1 line 170 is string:length: CR LF is one grapheme cluster
    ("a\r\nb", 3),
    ("e\u0301", 1),      # a letter and its combining accent are one cluster for string:length
    ("👍🏽", 1),          # an emoji with a skin-tone modifier
])
def test_strlen_counts_grapheme_clusters(text: str, want: int) -> None:
    assert run("strlen(payload.s)", {"s": text}) == want


@pytest.mark.parametrize(("sql", "text", "want"), [
    # BIF substr/2,3 lines 177 and 188 are string:slice, which counts clusters too
    ("substr(payload.s, 1)", "a\r\nb", "\r\nb"),
    ("substr(payload.s, 1, 1)", "a\r\nb", "\r\n"),
    ("substr(payload.s, 0, 2)", "e\u0301x", "e\u0301x"),
    # BIF reverse/1 line 134 is string:reverse: a cluster keeps its order inside
    ("reverse(payload.s)", "a\r\n", "\r\na"),
    ("reverse(payload.s)", "e\u0301x", "xe\u0301"),
    # BIF pad lines 267-292 are string:pad: the length to reach counts clusters
    ("pad(payload.s, 3)", "\r\n", "\r\n  "),
    ("pad(payload.s, 2, 'leading')", "e\u0301", " e\u0301"),
])
def test_slicing_reversing_and_padding_work_on_clusters(sql: str, text: str, want: str) -> None:
    assert run(sql, {"s": text}) == want


@pytest.mark.parametrize(("sql", "text", "want"), [
    # BIF find lines 375-380, split lines 216-231 and replace lines 299-312 call string:find,
    # string:split and string:replace, which match whole grapheme clusters only (OTP
    # lib/stdlib/src/string.erl, module header: find("1£4e̊abcdef", "e") gives "ef")
    ("find(payload.s, 'e')", "1£4e\u030aabcdef", "ef"),
    ("find(payload.s, 'e\u030a')", "eee\u030aee", "e\u030aee"),
    ("find(payload.s, 'e', 'trailing')", "xe\u030a", ""),
    ("split(payload.s, '\n')", "a\r\nb\nc", ["a\r\nb", "c"]),
    ("split(payload.s, '\r\n')", "a\r\nb", ["a", "b"]),
    ("split(payload.s, '\n', 'trailing')", "a\nb\r\n", ["a", "b\r\n"]),
    ("replace(payload.s, '\n', '|')", "a\r\nb\n", "a\r\nb|"),
    ("replace(payload.s, 'e', 'E')", "e\u030ae", "e\u030aE"),
])
def test_searching_matches_whole_clusters(sql: str, text: str, want: Any) -> None:
    assert run(sql, {"s": text}) == want


# -- hexstr2bin / bin2hexstr ----------------------------------------------------------------

@pytest.mark.parametrize(("hexstr", "want"), [
    ("6364f", bytes([6, 54, 79])),  # SUITE t_hexstr2bin line 228: odd length, led by a 0
    ("a", bytes([10])),             # line 229
    ("f", bytes([15])),             # line 230
    ("5", bytes([5])),              # line 231
    ("0102", bytes([1, 2])),        # line 232
    ("1121", bytes([17, 33])),      # line 233
])
def test_hexstr2bin_reads_odd_lengths_as_led_by_zero(hexstr: str, want: bytes) -> None:
    # UTILS hexstr_to_bin lines 372-383: a size of 8 mod 16 bits gets a "0" in front
    assert run(f"bin2hexstr(hexstr2bin('{hexstr}'))") == want.hex().upper()
    assert run(f"bytesize(hexstr2bin('{hexstr}'))") == len(want)


@pytest.mark.parametrize(("hexstr", "prefix", "want"), [
    ("0x6364f", "0x", "06364F"),  # SUITE t_hexstr2bin_with_prefix line 236
    ("0Xa", "0X", "0A"),          # line 237
    ("0bf", "0b", "0F"),          # line 238
    ("0B5", "0B", "05"),          # line 239
    ("0x0102", "0x", "0102"),     # line 240
    ("0X1121", "0X", "1121"),     # line 241
])
def test_hexstr2bin_with_a_prefix(hexstr: str, prefix: str, want: str) -> None:
    # FUNCS hexstr2bin/2 lines 764-772: the prefix is matched and cut off first
    assert run(f"bin2hexstr(hexstr2bin('{hexstr}', '{prefix}'))") == want


@pytest.mark.parametrize(("hexstr", "prefix"), [
    ("0x0102", "0X"),   # SUITE t_hexstr2bin_with_invalid_prefix lines 243-254: case matters
    ("0102", "0x"),
    ("x0102", "0x"),
])
def test_hexstr2bin_refuses_a_missing_prefix(hexstr: str, prefix: str) -> None:
    with pytest.raises(RuleEvalError, match="does not start with the prefix"):
        run(f"hexstr2bin('{hexstr}', '{prefix}')")


def test_hexstr2bin_with_an_undefined_prefix_is_the_one_argument_form() -> None:
    # FUNCS hexstr2bin/2 line 764: an undefined prefix means none
    assert run("bin2hexstr(hexstr2bin('abc', null()))") == "0ABC"


@pytest.mark.parametrize("bad", ["zz", "0x12", "12 34"])
def test_hexstr2bin_refuses_what_is_not_hex(bad: str) -> None:
    # UTILS hexchar2int lines 387-389 accept 0-9, A-F, a-f only
    with pytest.raises(RuleEvalError, match="not a hex string"):
        run(f"hexstr2bin('{bad}')")


@pytest.mark.parametrize(("sql", "want"), [
    ("bin2hexstr(hexstr2bin('0102'))", "0102"),                  # SUITE t_bin2hexstr line 257
    ("bin2hexstr(hexstr2bin('1121'))", "1121"),                  # line 258
    ("bin2hexstr(hexstr2bin('0102'), '0x')", "0x0102"),          # t_bin2hexstr_with_prefix 261
    ("bin2hexstr(hexstr2bin('0102'), '0X')", "0X0102"),          # line 262
    ("bin2hexstr(hexstr2bin('1121'), '0b')", "0b1121"),          # line 263
    ("bin2hexstr(hexstr2bin('1121'), '0B')", "0B1121"),          # line 264
    ("bin2hexstr(hexstr2bin('0102'), '🧠')", "🧠0102"),           # line 265
    ("bin2hexstr(hexstr2bin('0102'), null())", "0102"),          # FUNCS line 756
])
def test_bin2hexstr_with_and_without_a_prefix(sql: str, want: str) -> None:
    assert run(sql) == want


@pytest.mark.parametrize(("value", "size", "want"), [
    # SUITE t_bin2hexstr_not_even_bytes lines 268-278; BIF bin2hexstr lines 616-630: padded
    # with zero bits in front to whole bytes, the first digit dropped when 4 or more were added
    ((1 << 8) | 2, 13, "0102"),     # <<1:5, 2>>
    ((16 << 8) | 2, 13, "1002"),    # <<16:5, 2>>
    ((16 << 8) | 2, 16, "1002"),    # <<16:8, 2>>
    ((1 << 8) | 2, 12, "102"),      # <<1:4, 2>>
    ((1 << 8) | 2, 11, "102"),      # <<1:3, 2>>
    ((1 << 8) | 2, 9, "102"),       # <<1:1, 2>>: 1 fits one bit
    ((0 << 8) | 2, 9, "002"),       # <<2:1, 2>>: 2 in one bit is 0
    (2, 8, "02"),                   # <<2>>
    (2, 2, "2"),                    # <<2:2>>
    ((17 << 8) | 33, 16, "1121"),   # <<17, 33>>
    ((17 << 8) | 33, 17, "01121"),  # <<17:9, 33>>
])
def test_bin2hexstr_of_bit_strings(value: int, size: int, want: str) -> None:
    assert run(f"bin2hexstr({bits_sql(value, size)})") == want
    # SUITE t_sqlserver_bin2hexstr lines 281-293: the same digits after 0x
    assert run(f"sqlserver_bin2hexstr({bits_sql(value, size)})") == "0x" + want


# -- subbits on bit strings -------------------------------------------------------------------

def test_subbits_bits_of_a_part_byte_is_a_bit_string() -> None:
    # FUNCS get_subbits lines 615-623: the 'bits' type returns the bits read, whatever their
    # number; bitsize tells it, and subbits reads on in it
    assert run(f"bitsize({bits_sql(5, 3)})") == 3
    assert run("bin2hexstr(subbits(hexstr2bin('ABCD'), 1, 12, 'bits'))") == "ABC"
    assert run("subbits(subbits(hexstr2bin('F0'), 1, 4, 'bits'), 2, 2)") == 3
    assert run("subbits(subbits(hexstr2bin('F0'), 3, 4, 'bits'), 1, 4)") == 12


@pytest.mark.parametrize(("length", "want"), [(n, 2 ** n - 1) for n in range(1, 9)])
def test_subbits_from_the_first_bit(length: int, want: int) -> None:
    # SUITE t_subbits lines 1050-1057 and t_subbits2 lines 1060-1067
    assert run(f"subbits(hexstr2bin('FF'), {length})") == want
    assert run(f"subbits(hexstr2bin('FF'), 1, {length})") == want


@pytest.mark.parametrize(("length", "want"), [(1, 1), (2, 3), (7, 127), (8, 127)])
def test_subbits_past_the_end_is_cut_short(length: int, want: int) -> None:
    # SUITE t_subbits2_1 lines 1070-1077: from bit 2 only 7 bits are left
    assert run(f"subbits(hexstr2bin('FF'), 2, {length})") == want


# -- is_empty, null() -------------------------------------------------------------------------

@pytest.mark.parametrize(("sql", "want"), [
    ("is_empty(payload.empty_list)", True),   # SUITE t_is_empty line 413: []
    ("is_empty(payload.empty_map)", True),    # line 413: #{}
    ("is_empty('{}')", True),                 # line 413: a string is decoded (FUNCS map/1 739)
    ("is_empty('')", True),                   # FUNCS is_empty line 818
    ("is_empty(payload.list)", False),        # line 417: [1]
    ("is_empty(payload.map)", False),         # line 417: #{a => b}
    ("is_empty('{\"a\" : \"b\"}')", False),   # line 417
])
def test_is_empty(sql: str, want: bool) -> None:
    payload = {"empty_list": [], "empty_map": {}, "list": [1], "map": {"a": "b"}}
    assert run(sql, payload) is want


@pytest.mark.parametrize("sql", ["is_empty('abc')", "is_empty('[]')", "is_empty(1)",
                                 "is_empty(payload.missing)"])
def test_is_empty_of_anything_else_fails(sql: str) -> None:
    # FUNCS is_empty line 822 goes through map/1 (lines 739-751), which raises badarg for a
    # string that is not a JSON object and for any other type, undefined included
    with pytest.raises(RuleEvalError, match="is_empty"):
        run(sql)


def test_null_is_undefined() -> None:
    # FUNCS null/0 lines 438-439 return undefined: is_null says so and coalesce passes it over
    assert run("is_null(null())") is True
    assert run("coalesce(null(), 'x')") == "x"


@pytest.mark.parametrize(("sql", "want"), [
    # FUNCS is_null lines 782-783: true for undefined only; SUITE t_is_null lines 311-317: the
    # atom null (what JSON null decodes to) is not null, nor are '', 'undefined' and 'a'
    ("is_null(payload.missing)", True),
    ("is_null(payload.nothing)", False),
    ("is_null(payload.list[1])", False),
    ("is_null(payload.list[2])", True),
    ("is_null(payload.obj.inner)", False),
    ("is_null(payload.obj.other)", True),
    ("is_null(payload.nothing.deeper)", True),
    ("is_null(payload.text)", False),
    ("is_null('')", False),
    ("is_null('undefined')", False),
    ("is_null(payload.json_text.k)", False),
    # FUNCS is_not_null lines 789-790 and SUITE t_is_not_null: the negation of is_null
    ("is_not_null(payload.nothing)", True),
    ("is_not_null(payload.missing)", False),
    # FUNCS is_null_var lines 785-787 and SUITE t_is_null_var lines 319-326: null and undefined
    ("is_null_var(payload.nothing)", True),
    ("is_null_var(payload.missing)", True),
    ("is_null_var('null')", False),
    ("is_not_null_var(payload.nothing)", False),
])
def test_is_null_is_true_for_undefined_only(sql: str, want: bool) -> None:
    payload = {"nothing": None, "list": [None], "obj": {"inner": None}, "text": "",
               "json_text": '{"k": null}'}
    assert run(sql, payload) is want


# -- date_to_unix_ts ----------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "want"), [
    # SUITE t_parse_date_errors lines 1732-1746: 2022-05-26T10:40:12Z is 1653561612, and the
    # literal characters of the format are skipped by length, not compared (CAL lines 556-563)
    ("'second', '%Y-%m-%d %H:%M:%S', '2022-05-26 10:40:12'", 1653561612),
    ("'second', '%Y-%m-%d %H-%M-%S', '2022-05-26 10:40:12'", 1653561612),
    ("'second', '%Y-%m-%d %H:%M:%S', '2022-05-26 10-40-12'", 1653561612),
    # leap years, lines 1749-1762
    ("'second', '%Y-%m-%d %H:%M:%S', '2024-02-29 14:31:40'", 1709217100),
    ("'second', '%Y-%m-%d %H:%M:%S', '2024-03-01 12:44:31'", 1709297071),
    ("'second', '%Y-%m-%d %H:%M:%S', '2100-03-01 12:44:31'", 4107588271),
    # an offset argument, lines 1764-1784 (FUNCS date_to_unix_ts/4 lines 1263-1267)
    ("'second', '+08:00', '%Y-%m-%d %H:%M:%S', '2024-02-29 14:31:40'", 1709188300),
    ("'second', '+08:00', '%Y-%m-%d %H:%M:%S', '2024-03-01 12:44:31'", 1709268271),
    ("'second', '+08:00', '%Y-%m-%d %H:%M:%S', '2100-03-01 12:44:31'", 4107559471),
    # an offset in the input, lines 1786-1792: 2024-02-23T15:00:00.123+08:00 in seconds
    ("'second', '%Y-%m-%d %H:%M:%S.%3N%:z', '2024-02-23 15:00:00.123+08:00'", 1708671600),
    # SUITE t_date_to_unix_ts lines 1643-1684: 2024-03-01T10:30:38(.333444)+08:00
    ("'second', '+08:00', '%Y-%m-%d %H-%M-%S', '2024-03-01 10:30:38'", 1709260238),
    ("'second', '+08:00', '%Y-%m-%d %H-%M-%S.%3N', '2024-03-01 10:30:38.333'", 1709260238),
    ("'millisecond', '+08:00', '%Y-%m-%d %H-%M-%S.%3N', '2024-03-01 10:30:38.333'",
     1709260238333),
    ("'microsecond', '+08:00', '%Y-%m-%d %H-%M-%S.%3N', '2024-03-01 10:30:38.333'",
     1709260238333000),
    ("'nanosecond', '+08:00', '%Y-%m-%d %H-%M-%S.%3N', '2024-03-01 10:30:38.333'",
     1709260238333000000),
    ("'microsecond', '+08:00', '%Y-%m-%d %H-%M-%S.%6N', '2024-03-01 10:30:38.333444'",
     1709260238333444),
    # CAL do_parse_date_str line 537: the input beyond the format is not read
    ("'second', '%Y-%m-%d %H:%M:%S', '2022-05-26 10:40:12 and more'", 1653561612),
])
def test_date_to_unix_ts(args: str, want: int) -> None:
    assert run(f"date_to_unix_ts({args})") == want


@pytest.mark.parametrize(("fmt", "text", "message"), [
    # SUITE t_parse_date_errors lines 1687-1697: a part that is not a number (CAL line 547)
    ("%Y-%m-%d %H:%M:%S", "2022-059999-26 10:40:12", "bad_formatter_or_date"),
    ("%y-%m-%d %H:%M:%S", "2022-05-26 10:40:12", "bad_formatter_or_date"),
    # lines 1699-1709: a part the format never reads (CAL lines 498-509)
    ("%Y-%d %H:%M:%S", "2022-32 10:40:12", "has no month"),
    ("%H:%M:%S", "10:40:12", "has no year"),
    # lines 1711-1728: a date that does not exist
    ("%Y-%m-%d %H:%M:%S", "2022-05-32 10:40:12", "day is out of range"),
    ("%Y-%m-%d %H:%M:%S", "2023-02-29 10:40:12", "day is out of range"),
    ("%Y-%m-%d %H:%M:%S", "2024-02-30 10:40:12", "day is out of range"),
])
def test_date_to_unix_ts_errors(fmt: str, text: str, message: str) -> None:
    with pytest.raises(RuleEvalError, match=message):
        run(f"date_to_unix_ts('second', '{fmt}', '{text}')")
