"""Logging: quiet third-party loggers, retried failures demoted, JSON lines, one line per state."""

from __future__ import annotations

import io
import json
import logging

import pytest

from mqferry._config.models import LogConfig
from mqferry._logs import DemoteRetried, JsonFormatter, RetryLog, setup_logging


@pytest.fixture
def captured():
    """A buffer for setup_logging's lines; the root logger and levels restored afterwards."""
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    names = ("aiokafka", "aiokafka.conn", "uvicorn", "mqferry._mqtt.paho", "mqferry")
    levels = {n: logging.getLogger(n).level for n in names}
    buf = io.StringIO()
    yield buf
    root.handlers[:] = handlers
    root.setLevel(root_level)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def record(name, level, msg, *args, exc_info=None):
    return logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)


def test_aiokafka_connection_errors_it_retries_are_dropped_unless_debug_is_asked(captured):
    setup_logging("info", stream=captured)
    logging.getLogger("aiokafka").error('Unable connect to "%s:%s": %s', "h", 1, "refused")
    logging.getLogger("aiokafka.consumer.group_coordinator").error(
        "Group Coordinator Request failed: %s", "[Error 15] GroupCoordinatorNotAvailableError")
    logging.getLogger("aiokafka.consumer.group_coordinator").info("Joined group 'g'")
    logging.getLogger("aiokafka.producer.sender").warning(
        "Got error produce response: %s", "NodeNotReadyError: Attempt to send a request to node"
        " which is not ready (node id 1).")
    logging.getLogger("aiokafka.producer.sender").warning(
        "Got error produce response on topic-partition %s, retrying. Error: %s", "t/0",
        "NotLeaderForPartitionError")
    logging.getLogger("aiokafka.cluster").error("Topic %s not found in cluster metadata", "t")
    assert captured.getvalue().splitlines()[0].endswith(
        "ERROR   aiokafka.cluster: Topic t not found in cluster metadata")
    assert len(captured.getvalue().splitlines()) == 1
    setup_logging("info", levels={"aiokafka": "debug"}, stream=captured)
    logging.getLogger("aiokafka.conn").error('Unable connect to "%s:%s": %s', "h", 1, "refused")
    assert 'DEBUG   aiokafka.conn: Unable connect to "h:1": refused' in captured.getvalue()


def test_the_demote_filter_keeps_everything_else():
    f = DemoteRetried()
    mine = record("mqferry_kafka.retry", logging.ERROR, "Unable connect to anything")
    assert f.filter(mine) and mine.levelno == logging.ERROR
    other = record("aiokafka.consumer.fetcher", logging.WARNING, "Not authorized to read from %s")
    assert f.filter(other) and other.levelname == "WARNING"


def test_third_party_loggers_are_quiet_and_mqferry_follows_log_level(captured):
    setup_logging("debug", stream=captured)
    assert logging.getLogger("mqferry._runtime").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("aiokafka.consumer").isEnabledFor(logging.INFO)
    assert not logging.getLogger("uvicorn.error").isEnabledFor(logging.INFO)
    assert not logging.getLogger("mqferry._mqtt.paho").isEnabledFor(logging.DEBUG)
    setup_logging("error", stream=captured)
    assert not logging.getLogger("aiokafka").isEnabledFor(logging.WARNING)
    setup_logging("info", levels={"uvicorn": "info"}, stream=captured)
    assert logging.getLogger("uvicorn.error").isEnabledFor(logging.INFO)


def test_json_lines_have_time_level_logger_message_and_the_exception(captured):
    setup_logging("info", "json", stream=captured)
    log = logging.getLogger("mqferry.test")
    log.warning("value %s is \"odd\"\nsecond line", 42)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, second = (json.loads(line) for line in captured.getvalue().splitlines())
    assert first["message"] == 'value 42 is "odd"\nsecond line'
    assert (first["level"], first["logger"]) == ("WARNING", "mqferry.test")
    assert first["time"].endswith("+00:00") and "T" in first["time"]
    assert "exception" not in first
    assert second["exception"].startswith("Traceback") and "ValueError: boom" in second["exception"]


def test_json_formatter_of_a_record_with_arguments():
    line = JsonFormatter().format(record("x", logging.INFO, "%d%%", 5))
    assert json.loads(line)["message"] == "5%"


def test_log_config_takes_format_and_levels_and_refuses_others():
    cfg = LogConfig.model_validate({"format": "json", "levels": {"aiokafka": "info"}})
    assert (cfg.format, cfg.levels) == ("json", {"aiokafka": "info"})
    with pytest.raises(ValueError, match="format"):
        LogConfig.model_validate({"format": "xml"})


def test_a_retry_loop_logs_each_state_change_once(caplog):
    caplog.set_level(logging.DEBUG)
    retries = RetryLog(logging.getLogger("mqferry.t"), "action a: Kafka")
    for delay in (0.5, 1.0, 2.0):
        retries.failed("h:1: refused", delay)
    retries.failed("h:1: timed out", 4.0)
    retries.reset()
    retries.failed("h:1: refused", 0.5)
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    warnings = [m for level, m in said if level == "WARNING"]
    assert warnings == ["action a: Kafka: unreachable (h:1: refused), retrying in 0.5s",
                        "action a: Kafka: unreachable (h:1: timed out), retrying in 4.0s",
                        "action a: Kafka: unreachable (h:1: refused), retrying in 0.5s"]
    assert [level for level, _ in said].count("DEBUG") == 2


def test_a_retried_failure_naming_credentials_or_certificates_stays_visible(captured):
    setup_logging("info", stream=captured)
    logging.getLogger("aiokafka.conn").error(
        'Unable connect to "%s:%s": %s', "h", 9094,
        "SaslAuthenticationFailedError: invalid credentials with SASL mechanism SCRAM-SHA-256")
    logging.getLogger("aiokafka.conn").error('Unable connect to "%s:%s": %s', "h", 9094,
                                             "Connect call failed")
    lines = captured.getvalue().splitlines()
    assert len(lines) == 1
    assert "ERROR   aiokafka.conn" in lines[0] and "invalid credentials" in lines[0]
