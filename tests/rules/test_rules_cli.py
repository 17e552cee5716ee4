"""``mqferry rule test`` through click's CliRunner."""

from __future__ import annotations

import json

from click.testing import CliRunner

from mqferry._rules.cli import rule


def test_prints_output_json_and_exits_0() -> None:
    result = CliRunner().invoke(
        rule,
        [
            "test",
            "--sql",
            'SELECT payload.temp as t, clientid FROM "t/#" WHERE payload.temp > 20',
            "--topic",
            "t/1",
            "--payload",
            '{"temp": 25}',
            "--clientid",
            "dev1",
        ],
    )
    assert result.exit_code == 0
    assert json.loads(result.output) == {"t": 25, "clientid": "dev1"}


def test_no_match_exits_1() -> None:
    result = CliRunner().invoke(
        rule,
        [
            "test",
            "--sql",
            'SELECT * FROM "t/#" WHERE payload.temp > 20',
            "--payload",
            '{"temp": 1}',
        ],
    )
    assert result.exit_code == 1
    assert result.output.strip() == "no match"


def test_topic_outside_from_is_no_match() -> None:
    result = CliRunner().invoke(rule, ["test", "--sql", 'SELECT * FROM "x/#"', "--topic", "t/1"])
    assert result.exit_code == 1


def test_syntax_error_exits_2_with_caret() -> None:
    result = CliRunner().invoke(rule, ["test", "--sql", 'SELECT a FORM "t/#"'])
    assert result.exit_code == 2
    assert "line 1, col 10: unexpected 'FORM', expected FROM" in result.stderr
    assert "         ^" in result.stderr


def test_eval_error_exits_2() -> None:
    result = CliRunner().invoke(
        rule, ["test", "--sql", 'SELECT payload.x FROM "t/#"', "--payload", "not json"]
    )
    assert result.exit_code == 2
    assert "decode_json_failed" in result.stderr


def test_context_makes_a_kafka_source_event() -> None:
    context = {
        "event": "$bridges/kafka_consumer:in",
        "value": '{"a": 1}',
        "key": "k",
        "offset": 2,
        "topic": "kt",
        "ts": 1,
        "ts_type": "create",
        "headers": {"h": "v"},
    }
    result = CliRunner().invoke(
        rule,
        [
            "test",
            "--sql",
            'SELECT value.a as a, key, headers FROM "$sources/kafka_consumer:in"',
            "--context",
            json.dumps(context),
        ],
    )
    assert result.exit_code == 0
    assert json.loads(result.output) == {"a": 1, "key": "k", "headers": {"h": "v"}}


def test_bad_context_is_a_usage_error() -> None:
    result = CliRunner().invoke(rule, ["test", "--sql", 'SELECT * FROM "t"', "--context", "[1]"])
    assert result.exit_code == 2
    assert "JSON object" in result.output
