import pytest

from mqferry.rules import RuleEvalError, evaluate_sql


def run(expr, payload='{"temperature": 10, "sensors": [1, 2, 3]}'):
    out = evaluate_sql(f'SELECT {expr} AS v FROM "t/#"', {"topic": "t/1", "payload": payload})
    return out["v"]


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        ("jq('.', '{\"temperature\": 10}')", [{"temperature": 10}]),
        ("jq('.temperature', '{\"temperature\": 10}')", [10]),
        ("jq('.temperature,(.temperature * 1.8 + 32)', '{\"temperature\": 10}')", [10, 50]),
        ("jq('.sensors | add', payload)", [6]),
        ("jq('.[]', json_decode('[1, 2]'))", [1, 2]),
        ("jq('{c: .temperature}', payload, 1000)", [{"c": 10}]),
    ],
)
def test_jq_returns_the_list_of_results(expr, want):
    assert run(expr) == want


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("jq('.[', payload)", "invalid jq program"),
        ("jq('.', 'not json')", "not valid JSON"),
        ("jq('error(\"boom\")', payload)", "jq program failed"),
        ("jq('def f: f; f', payload, 200)", "timed out after 200 ms"),
    ],
)
def test_jq_errors_are_rule_exceptions(expr, message):
    with pytest.raises(RuleEvalError, match=message):
        run(expr)


def test_mongo_date():
    assert run("mongo_date(1700000000123)") == 'ISODate("2023-11-14T22:13:20.123Z")'
    assert run("mongo_date(1700000000, 'second')") == 'ISODate("2023-11-14T22:13:20.000Z")'
    assert run("mongo_date()").startswith('ISODate("20')
    with pytest.raises(RuleEvalError, match="unknown time unit"):
        run("mongo_date(1, 'week')")


def test_map_to_redis_hset_args():
    payload = '{"a": 1, "b": "x", "c": {"d": true}, "e": null}'
    got = run("map_to_redis_hset_args(json_decode(payload))", payload)
    assert got == ["a", "1", "b", "x", "c", '{"d":true}']
