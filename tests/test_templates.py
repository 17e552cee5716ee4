import orjson
import pytest

from mqferry.errors import TemplateError
from mqferry.templates import MISSING, Template, format_float

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


def test_bytes_in_output_are_rendered_as_text():
    assert Template("${.}").render_bytes({"p": b"\xffab"}) == '{"p":"\ufffdab"}'.encode()
