"""The write-back's file mode: a config holding a clear-text secret is readable by its owner
only, from the moment the new file has its name."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mqferry._config.persist import write_config


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def renames(monkeypatch):
    """The mode of each file at the moment it is renamed over the config."""
    seen: list[int] = []
    original = Path.replace

    def replace(self: Path, target: str | Path) -> Path:
        seen.append(_mode(self))
        return original(self, target)

    monkeypatch.setattr(Path, "replace", replace)
    return seen


def test_a_clear_text_password_makes_the_file_owner_only(tmp_path, renames):
    path = tmp_path / "mqferry.yaml"
    path.write_text("rules: {}\n")
    path.chmod(0o644)
    write_config(path, {"connectors": {"kafka_producer": {"k": {
        "bootstrap_hosts": "h:9092",
        "authentication": {"mechanism": "plain", "username": "u", "password": "given"}}}}})
    assert _mode(path) == 0o600
    assert renames == [0o600]  # never world-readable, not even between the write and a chmod


@pytest.mark.parametrize("password", ["${KAFKA_PASSWORD}", "${KAFKA_PASSWORD:-}",
                                      "file:///run/secrets/kafka", None])
def test_references_keep_the_operators_mode(tmp_path, renames, password):
    path = tmp_path / "mqferry.yaml"
    path.write_text("rules: {}\n")
    path.chmod(0o640)
    write_config(path, {"mqtt": {"password": password}, "rules": {}})
    assert _mode(path) == 0o640
    assert renames == [0o640]


def test_a_reference_with_a_default_password_is_a_clear_text_password(tmp_path, renames):
    path = tmp_path / "mqferry.yaml"
    path.write_text("rules: {}\n")
    path.chmod(0o644)
    write_config(path, {"mqtt": {"password": "${MQTT_PASSWORD:-given}"}, "rules": {}})
    assert _mode(path) == 0o600


def test_a_new_file_is_owner_only(tmp_path):
    path = tmp_path / "new.yaml"
    write_config(path, {"rules": {}})
    assert _mode(path) == 0o600
