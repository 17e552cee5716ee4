import orjson
import pytest

from mqferry._errors import TemplateError
from mqferry._templates import (
    MAX_JSON_DEPTH,
    MISSING,
    Template,
    format_float,
    lookup,
    to_json,
    to_text,
)

OUT = {"clientid": "c1", "n": 2, "f": 1.5, "ok": True, "payload": '{"a": {"b": [10, 20]}}',
       "m": {"x": 1}, "none": None}


@pytest.mark.parametrize(
    ("text", "rendered"),
    [("${clientid}", "c1"), ("${.clientid}", "c1"), ("k-${n}", "k-2"), ("${f}", "1.5"),
     ("${ok}", "true"), ("${payload.a.b}", "[10,20]"), ("${payload.a.b.1}", "10"),
     ("${m}", '{"x":1}'), ("${missing}", ""), ("a${none}b", "ab"), ("plain", "plain"),
     ("${payload.nope.deeper}", "")],
)
def test_render_as_emqx_placeholders(text, rendered):
    assert Template(text).render(OUT) == rendered


def test_whole_input_is_json():
    assert orjson.loads(Template("${.}").render_bytes(OUT)) == OUT


def test_missing_text_is_the_callers_choice():
    assert Template("t/${x}").render({}, missing="undefined") == "t/undefined"


def test_render_strict_names_the_missing_placeholder():
    with pytest.raises(TemplateError, match=r"\$\{.x\} has no value"):
        Template("t/${.x}").render_strict({})


def test_single_placeholder_keeps_the_raw_value():
    t = Template("${m}")
    assert t.is_single_placeholder
    assert t.value(OUT) == {"x": 1}
    assert Template("${zzz}").value(OUT) is MISSING


@pytest.mark.parametrize("bad", ["${a..b}", "x${unclosed"])
def test_malformed_templates_are_refused(bad):
    with pytest.raises(TemplateError):
        Template(bad)


@pytest.mark.parametrize(("f", "text"), [(1.5, "1.5"), (2.0, "2.0"), (0.1 + 0.2, "0.3"),
                                         (1e-11, "0.0")])
def test_floats_use_at_most_ten_decimals(f, text):
    assert format_float(f) == text


def test_bytes_in_json_are_replaced_as_emqx_writes_them_and_the_caller_is_told():
    told = []
    out = Template("${.}").render_bytes({"p": b"\xffab", "q": b"ok"},
                                        on_replaced=lambda: told.append(1))
    assert out == '{"p":"\ufffdab","q":"ok"}'.encode()
    assert told == [1]  # once: only the value that is not UTF-8


def test_utf8_bytes_in_json_are_not_reported():
    told = []
    assert Template("${.}").render_bytes({"p": "é".encode()},
                                         on_replaced=lambda: told.append(1)) == '{"p":"é"}'.encode()
    assert told == []


RAW = b"\x00\x01\xff\xfe"


@pytest.mark.parametrize(("text", "expected"), [("${payload}", RAW), ("${.payload}", RAW),
                                                ("raw=${payload};", b"raw=" + RAW + b";")])
def test_bytes_values_pass_unchanged(text, expected):
    assert Template(text).render_bytes({"payload": RAW}, on_replaced=pytest.fail) == expected


# -- hostile values ------------------------------------------------------------------------


def nested(depth, leaf=1):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def test_json_as_deep_as_the_limit_renders():
    out = {"d": nested(MAX_JSON_DEPTH - 1)}
    assert orjson.loads(Template("${.}").render_bytes(out)) == out


@pytest.mark.parametrize("method", ["render", "render_bytes", "render_strict"])
@pytest.mark.parametrize("text", ["${.}", "${d}", "v=${d}"])
def test_json_deeper_than_the_limit_is_refused_by_name(method, text):
    out = {"kt": "deep", "d": nested(300)}
    with pytest.raises(TemplateError, match=r"nested deeper than 254 levels"):
        getattr(Template(text), method)(out)


def test_a_deep_set_walked_by_the_default_hook_is_refused_too():
    value: object = frozenset({1})
    for _ in range(300):
        value = frozenset({value})
    with pytest.raises(TemplateError, match="nested deeper than 254 levels"):
        to_json({"t": value})


def test_an_integer_beyond_64_bits_is_refused_by_name():
    with pytest.raises(TemplateError, match="Integer exceeds 64-bit range"):
        Template("${.}").render_bytes({"n": [2**70]})


def test_to_text_of_a_deep_value_raises_template_error():
    with pytest.raises(TemplateError):
        to_text(nested(1000))


def test_lookup_into_json_too_deep_to_decode_is_missing():
    deep_text = '{"a": ' + "[" * 2000 + "]" * 2000 + "}"
    assert lookup({"payload": deep_text}, ("payload", "a")) is MISSING
    assert Template("x${payload.a}").render({"payload": deep_text}) == "x"


def test_lookup_walks_a_deep_structure_without_recursing():
    data = {"k": nested(5000)}
    path = ("k",) + ("1",) * 5000
    assert lookup(data, path) == 1


class TestValueBytes:
    """``Template.value_bytes``: one lookup, the bytes ``render_bytes`` writes, or ``None``."""

    def test_missing_and_null_are_none(self) -> None:
        t = Template("${a}")
        assert t.value_bytes({}) is None
        assert t.value_bytes({"a": None}) is None

    @pytest.mark.parametrize("value", [b"\xff\x00raw", "text é", {"m": [1, 2.5]}, [1, "x"],
                                       7, 2.5, True, bytearray(b"ba")])
    def test_same_bytes_as_render_bytes(self, value: object) -> None:
        t = Template("${a}")
        assert t.value_bytes({"a": value}) == t.render_bytes({"a": value})

    def test_a_path_into_a_json_string(self) -> None:
        assert Template("${p.x}").value_bytes({"p": '{"x": {"y": 1}}'}) == b'{"y":1}'

    def test_not_a_single_placeholder(self) -> None:
        with pytest.raises(TypeError, match="single placeholder"):
            Template("k=${a}").value_bytes({"a": 1})


def test_to_text_of_an_int_subclass_is_its_number():
    import enum

    class Level(int, enum.Enum):  # str() of a member is "Level.HIGH"
        HIGH = 3

    assert to_text(Level.HIGH) == "3"
    assert to_text(True) == "true"
