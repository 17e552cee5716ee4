"""EMQX's broker events in ``evaluate_sql`` and the tester, with EMQX's columns.

References in emqx/emqx (commit 50e04386): ``EVENTS`` is
``apps/emqx_rule_engine/src/emqx_rule_events.erl`` (event topics lines 87-120, legacy topics
expanded lines 1634-1662, names lines 1665-1698, example columns from line 1227),
``TESTER`` is ``apps/emqx_rule_engine/src/emqx_rule_sqltester.erl`` (the context's event chooses
the topic matched against FROM, ``get_in_topic``; the example columns are merged under the
context, ``fill_default_values``) and ``SCHEMA`` is ``emqx_rule_api_schema.erl`` (the
``event_type`` of an event is its name with ``.`` turned into ``_``, line 511).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from click.testing import CliRunner

from mqferry import hookimpl
from mqferry._plugins import load_plugins
from mqferry._rules import evaluate_sql
from mqferry._rules.broker_events import EVENTS
from mqferry._rules.cli import context_event, rule

# (name, new topic, legacy topic or None): EVENTS lines 87-120 and 1634-1662
SPELLINGS = [(name, new, old) for name, (new, old) in EVENTS.items()]


@pytest.mark.parametrize(("name", "new", "old"), SPELLINGS)
def test_every_event_is_selected_by_both_spellings_of_its_topic(name, new, old):
    event = context_event({"event_type": name.replace(".", "_")})
    assert event["event"] == name
    for topic in filter(None, (new, old)):
        out = evaluate_sql(f'SELECT event, timestamp FROM "{topic}"', event)
        assert out is not None and out["event"] == name, topic
    # another event's topic does not select it, nor does an MQTT filter
    other = "$events/client/ping" if name != "client.ping" else "$events/client/connected"
    assert evaluate_sql(f'SELECT * FROM "{other}"', event) is None
    assert evaluate_sql('SELECT * FROM "#"', event) is None


def test_a_rule_from_several_events_takes_each():
    sql = 'SELECT clientid, event FROM "$events/client_connected", "$events/client/disconnected"'
    for event_type in ("client_connected", "client_disconnected"):
        out = evaluate_sql(sql, context_event({"event_type": event_type}))
        assert out == {"clientid": "c_emqx", "event": event_type.replace("_", ".")}
    assert evaluate_sql(sql, context_event({"event_type": "client_connack"})) is None


@pytest.mark.parametrize(("event_type", "columns"), [
    # EVENTS columns_with_exam: the columns EMQX's tester fills in for each event
    ("client_connected", {"clientid": "c_emqx", "username": "u_emqx", "mountpoint": None,
                          "peername": "192.168.0.10:56431", "sockname": "0.0.0.0:1883",
                          "proto_name": "MQTT", "proto_ver": 5, "keepalive": 60,
                          "clean_start": True, "expiry_interval": 3600, "is_bridge": False}),
    ("client_disconnected", {"reason": "normal", "clientid": "c_emqx", "proto_ver": 5}),
    ("client_connack", {"reason_code": "success", "keepalive": 60}),
    ("client_check_authz_complete", {"topic": "t/a", "action": "publish",
                                     "authz_source": "cache", "result": "allow"}),
    ("client_check_authn_complete", {"reason_code": "success", "is_superuser": True,
                                     "is_anonymous": False}),
    ("session_subscribed", {"clientid": "c_emqx", "topic": "t/a", "qos": 1}),
    ("session_unsubscribed", {"clientid": "c_emqx", "topic": "t/a", "qos": 1}),
    ("message_delivered", {"from_clientid": "c_emqx_1", "from_username": "u_emqx_1",
                           "clientid": "c_emqx_2", "username": "u_emqx_2", "topic": "t/a",
                           "payload": '{"msg": "hello"}'}),
    ("message_acked", {"from_clientid": "c_emqx_1", "clientid": "c_emqx_2"}),
    ("message_dropped", {"reason": "no_subscribers", "clientid": "c_emqx", "qos": 1}),
    ("delivery_dropped", {"reason": "queue_full", "from_clientid": "c_emqx_1"}),
    ("alarm_activated", {"name": "alarm_name", "message": "something is wrong"}),
])
def test_each_event_has_emqxs_example_columns(event_type: str, columns: dict[str, Any]):
    event = context_event({"event_type": event_type})
    assert {k: event[k] for k in columns} == columns
    assert isinstance(event["timestamp"], int) and event["node"]


def test_the_context_overrides_the_example_columns_and_payload_paths_work():
    # TESTER fill_default_values: the context wins over the examples
    event = context_event({"event_type": "message_delivered", "clientid": "me",
                          "payload": '{"temp": 21}'})
    out = evaluate_sql('SELECT clientid, payload.temp AS t FROM "$events/message_delivered"',
                       event)
    assert out == {"clientid": "me", "t": 21}


def test_an_event_named_in_the_event_column_is_the_same_event():
    # TESTER get_in_topic: a context with an event (and no event_topic) is matched by the
    # event's topic; a pasted context from EMQX carries "event": "client.connected"
    event = context_event({"event": "client.connected", "clientid": "x"})
    assert evaluate_sql('SELECT clientid FROM "$events/client_connected"', event) == {
        "clientid": "x"}


def test_message_publish_stays_an_mqtt_message():
    event = context_event({"event_type": "message_publish", "topic": "a/b"})
    assert evaluate_sql('SELECT topic FROM "a/#"', event) == {"topic": "a/b"}
    assert evaluate_sql('SELECT topic FROM "$events/client_connected"', event) is None


def test_an_unknown_event_type_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"client_pong.*client_connected"):
        context_event({"event_type": "client_pong"})


# -- mqferry rule test ---------------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["client_connected", "client.connected",
                                      "$events/client/connected", "$events/client_connected"])
def test_the_cli_runs_a_rule_on_an_event(spelling):
    result = CliRunner().invoke(rule, [
        "test", "--sql", 'SELECT clientid, keepalive FROM "$events/client_connected"',
        "--event", spelling, "--context", '{"clientid": "dev-9"}'])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"clientid": "dev-9", "keepalive": 60}


def test_the_cli_refuses_an_unknown_event():
    result = CliRunner().invoke(rule, ["test", "--sql", "SELECT 1", "--event", "client_pong"])
    assert result.exit_code == 2
    assert "'client_pong' is not an EMQX event" in result.output


class _TriplePlugin:
    """A plugin registering a rule function, as a third-party distribution would."""

    @hookimpl
    def mqferry_register_functions(self, register: Any) -> None:
        register.add("triple_it", lambda x: x * 3)


def test_the_cli_knows_the_functions_of_installed_plugins():
    from mqferry._cli import build_cli

    plugins = load_plugins(extra=[("triple", _TriplePlugin())])
    result = CliRunner().invoke(build_cli(plugins), [
        "rule", "test", "--sql", 'SELECT triple_it(payload.n) AS n FROM "t/#"',
        "--payload", '{"n": 5}'], obj={"plugins": plugins})
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"n": 15}
    # without the plugin, the function is unknown: the same words the running instance uses
    bare = CliRunner().invoke(rule, ["test", "--sql", 'SELECT triple_it(1) AS n FROM "t/#"'])
    assert bare.exit_code == 2 and "triple_it" in bare.output


# -- the runtime never sees them -----------------------------------------------------------

def test_installing_a_rule_from_an_event_warns_that_it_never_fires(tmp_path, caplog):
    from mqferry._config import validate_config
    from mqferry._runtime import App

    plugins = load_plugins()
    data = {"rules": {"ev": {"sql": 'SELECT clientid FROM "$events/client_connected"'},
                      "msg": {"sql": 'SELECT * FROM "t/#"'}}}
    cfg = validate_config(data, plugins.registries(), plugins.function_table())
    with caplog.at_level(logging.WARNING, logger="mqferry._runtime.rules"):
        App(cfg, data_dir=tmp_path)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1, lines
    assert "rule ev selects $events/client_connected" in lines[0]
    assert "never fires" in lines[0]
