"""Write-back of the config file: atomic, keeps permissions, round-trips."""

from __future__ import annotations

import pytest
import yaml

from mqferry._config.persist import file_digest, write_config


def test_write_config_replaces_atomically_and_keeps_mode(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("rules: {}\n")
    path.chmod(0o640)
    data = {"rules": {"r": {"sql": 'SELECT * FROM "t/#"', "actions": [{"function": "x"}]}}}
    digest = write_config(path, data)
    assert yaml.safe_load(path.read_text()) == data
    assert path.stat().st_mode & 0o777 == 0o640
    assert digest == file_digest(path)
    assert [p.name for p in tmp_path.iterdir()] == ["c.yaml"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("old: 1\n")
    with pytest.raises(yaml.representer.RepresenterError):
        write_config(path, {"bad": object()})
    assert path.read_text() == "old: 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["c.yaml"]


def test_new_files_are_private(tmp_path):
    path = tmp_path / "new.yaml"
    write_config(path, {"a": (1, 2)})
    assert yaml.safe_load(path.read_text()) == {"a": [1, 2]}
    assert path.stat().st_mode & 0o777 == 0o600
    assert file_digest(tmp_path / "missing") is None
