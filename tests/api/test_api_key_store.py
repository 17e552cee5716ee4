"""Where the API key store is: beside the config file unless ``api.key_store`` says otherwise."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner

from mqferry._api import KeyStore
from mqferry._api.keys import api_key_store, key_store_path
from mqferry._cli import build_cli
from mqferry._config.models import ApiConfig

MQFERRY = Path(sys.executable).with_name("mqferry")


def _create(config: Path) -> tuple[str, str]:
    r = CliRunner().invoke(build_cli(), ["api-key", "create", "-c", str(config), "--name", "ops"])
    assert r.exit_code == 0, r.output
    lines = dict(line.split(":", 1) for line in r.stdout.splitlines())
    return lines["api_key"].strip(), lines["api_secret"].strip()


def test_the_default_store_is_beside_the_config_file_whatever_the_working_directory(
        tmp_path, monkeypatch):
    etc, elsewhere = tmp_path / "etc", tmp_path / "elsewhere"
    etc.mkdir()
    elsewhere.mkdir()
    cfg = etc / "mqferry.yaml"
    cfg.write_text(yaml.safe_dump({"node": "n@h"}))
    monkeypatch.chdir(elsewhere)
    key, secret = _create(cfg)
    assert KeyStore(etc / "api_keys.json").verify(key, secret)
    assert not (elsewhere / "data").exists()


def test_an_explicit_key_store_is_kept_as_before(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "conf" / "mqferry.yaml"
    cfg.parent.mkdir()
    cfg.write_text(yaml.safe_dump({"api": {"key_store": "keys.json"}}))
    key, secret = _create(cfg)
    # Relative: under data_dir, itself relative to the working directory, as it always was.
    assert KeyStore(tmp_path / "data" / "keys.json").verify(key, secret)
    absolute = tmp_path / "abs" / "k.json"
    assert key_store_path(str(absolute), "data", tmp_path / "conf") == absolute
    # Set to the default's name, it is still explicit: under data_dir.
    api = ApiConfig.model_validate({"key_store": "api_keys.json"})
    assert api_key_store(api, "/var/lib/mqferry", cfg) == Path("/var/lib/mqferry/api_keys.json")
    assert api_key_store(ApiConfig(), "/var/lib/mqferry", cfg) == cfg.parent / "api_keys.json"
    assert api_key_store(ApiConfig(), "/var/lib/mqferry", None) == Path(
        "/var/lib/mqferry/api_keys.json")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
def test_a_running_instance_reads_the_store_the_cli_wrote(tmp_path):
    """``mqferry run`` and ``mqferry api-key create``, each from another directory."""
    etc, run_dir, cli_dir = tmp_path / "etc", tmp_path / "run", tmp_path / "cli"
    for d in (etc, run_dir, cli_dir):
        d.mkdir()
    port = _free_port()
    cfg = etc / "mqferry.yaml"
    # No broker is needed: the API serves while the MQTT session retries.
    cfg.write_text(yaml.safe_dump({"mqtt": {"server": f"127.0.0.1:{_free_port()}"},
                                   "api": {"listen": f"127.0.0.1:{port}"}}))
    out = subprocess.run([str(MQFERRY), "api-key", "create", "-c", str(cfg), "--name", "ops"],
                         cwd=cli_dir, capture_output=True, text=True, check=True, timeout=60)
    lines = dict(line.split(":", 1) for line in out.stdout.splitlines())
    auth = (lines["api_key"].strip(), lines["api_secret"].strip())
    proc = subprocess.Popen([str(MQFERRY), "run", "-c", str(cfg)], cwd=run_dir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and status is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/api/v5/status", auth=auth, timeout=5)
            except httpx.TransportError:
                time.sleep(0.2)
        assert status is not None, "the API did not come up"
        assert status.status_code == 200, status.text
    finally:
        proc.terminate()
        proc.wait(30)
    assert (etc / "api_keys.json").is_file()
    assert not (run_dir / "data" / "api_keys.json").exists()
