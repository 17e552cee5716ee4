"""Fixtures of the console tests.

The API's (for the static files), the integration ones (real brokers, kcat, mosquitto), a real
``mqferry run`` and headless Chromium driven by Playwright.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import config_file, controller, keys, plugins
from tests.console.driver import Console
from tests.integration.conftest import (
    dev_services,
    kafka_bootstrap,
    kcat_consume_fixture,
    kcat_produce_fixture,
    mosquitto_pub_fixture,
    mosquitto_sub_fixture,
    mqtt_broker,
    new_topic,
)
from tests.integration.mqferry_process import MqferryProcess

__all__ = [
    "config_file", "controller", "dev_services", "kafka_bootstrap", "kcat_consume_fixture",
    "kcat_produce_fixture", "keys", "mosquitto_pub_fixture", "mosquitto_sub_fixture",
    "mqtt_broker", "new_topic", "plugins",
]

CHROMIUM = os.environ.get("MQFERRY_CHROMIUM", "/usr/bin/chromium")
#: Screenshots of every page the tests visit (git-ignored).
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# Without the background-networking flags Chromium keeps calling out to Google's hosts, which
# a closed network refuses many times a second.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
                 "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api_key(config_path: Path) -> tuple[str, str]:
    exe = Path(sys.executable).with_name("mqferry")
    out = subprocess.run([str(exe), "api-key", "create", "-c", str(config_path), "--name", "ui"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    lines = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return lines["api_key"].strip(), lines["api_secret"].strip()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright's client library.

    Module-scoped: Playwright's sync API keeps an event loop running while it is open, which
    the asyncio tests of later modules could not start theirs under.
    """
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/services.sh install (apt: chromium)")
    from playwright.sync_api import sync_playwright

    # launch() gives the browser a fresh, empty profile directory of its own.
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Instance:
    """A running ``mqferry run`` with its API on a free port and an API key."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.port = free_port()
        config = {**config, "api": {"listen": f"127.0.0.1:{self.port}"},
                  "data_dir": str(workdir / "data")}
        self.proc = MqferryProcess(config, workdir)
        self.key = api_key(self.proc.config_path)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> Instance:
        self.proc.start()
        self.proc.wait_for_log("API listening")
        return self

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 30 s; the exit code (``None``: it had to be killed).

        The log is kept beside the config file, to read after a failure.
        """
        proc = self.proc.proc
        assert proc is not None
        code: int | None = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        else:
            code = proc.returncode
        self.proc.terminate()  # already exited: joins the log reader
        (self.proc.workdir / "mqferry.log").write_text(self.proc.log)
        return code


@pytest.fixture
def instance_factory(tmp_path: Path, new_topic: Any) -> Iterator[Any]:
    """``make(config, name="a") -> Instance``, stopped (SIGTERM) at the end of the test.

    It depends on ``new_topic`` so that the instances stop before their topics are deleted.
    """
    made: list[Instance] = []

    def make(config: dict[str, Any], name: str = "a") -> Instance:
        workdir = tmp_path / name
        workdir.mkdir()
        inst = Instance(config, workdir).start()
        made.append(inst)
        return inst

    yield make
    hung = [inst for inst in made if inst.stop() is None]
    assert not hung, "mqferry did not stop within 30 s of SIGTERM; log: " + ", ".join(
        str(inst.proc.workdir / "mqferry.log") for inst in hung)


@pytest.fixture
def console(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``console(instance) -> Console``: a fresh browser context signed in to the instance."""
    contexts: list[Any] = []
    shots = ARTIFACTS / request.node.name
    shutil.rmtree(shots, ignore_errors=True)

    def open_console(inst: Instance, width: int = 1280, height: int = 800) -> Console:
        ctx = chromium.new_context(viewport={"width": width, "height": height})
        contexts.append(ctx)
        ui = Console(ctx.new_page(), inst.url, shots)
        ui.sign_in(*inst.key)
        return ui

    yield open_console
    for ctx in contexts:
        ctx.close()
