"""A Kafka connector's TLS files: an unusable one is a clear problem, the same for every reason."""

from __future__ import annotations

import pytest

from mqferry import ConfigError, Status
from mqferry_kafka.config import KafkaConnectorConfig, client_options
from mqferry_kafka.probe import probe


@pytest.mark.parametrize("field", ["cacertfile", "certfile"])
async def test_an_unusable_file_is_named_alike_whatever_the_reason(tmp_path, field, caplog):
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    (tmp_path / "dir").mkdir()
    texts = set()
    for path in ("/etc/passwd", str(tmp_path / "missing.pem"), str(tmp_path / "dir"),
                 str(tmp_path / "junk.pem")):
        cfg = KafkaConnectorConfig(bootstrap_hosts="127.0.0.1:1", ssl={
            "enable": True, "verify": "verify_peer", field: path})
        with pytest.raises(ConfigError) as err:
            client_options(cfg, "c")
        [(where, what)] = err.value.problems
        assert where == f"ssl.{field}"
        texts.add(what.replace(path, "<path>"))
        health = await probe(cfg)  # a status, never an exception
        assert health.status is Status.DISCONNECTED
        assert health.reason == f"127.0.0.1:1: ssl.{field}: {what}"
    assert len(texts) == 1, texts
    assert "No such file or directory" in caplog.text
