"""Run ``mqferry run -c FILE`` as a real process, the way users run it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml


class MqferryProcess:
    """A running ``mqferry`` with its log collected line by line."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.config_path = workdir / "mqferry.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.workdir = workdir
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> MqferryProcess:
        exe = Path(sys.executable).with_name("mqferry")
        self.proc = subprocess.Popen(
            [str(exe), "run", "-c", str(self.config_path)],
            cwd=self.workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def saved(self, check: Any, timeout: float = 15.0) -> dict[str, Any]:
        """The config file once ``check(data)`` holds for it.

        A change made through the API is written back after its answer, off the event loop
        and coalesced with the changes around it (``ConfigWriter``), so the file is read until
        it shows the change.
        """
        deadline = time.monotonic() + timeout
        while True:
            data = yaml.safe_load(self.config_path.read_text()) or {}
            if check(data):
                return data
            if time.monotonic() > deadline:
                raise AssertionError(f"the config file never showed the change: {data}")
            time.sleep(0.1)

    def wait_for_log(self, text: str, timeout: float = 60.0, count: int = 1) -> None:
        """Wait until ``text`` appeared ``count`` times in the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(text in line for line in list(self.lines)) >= count:
                return
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not logged in {timeout}s; log:\n{self.log}")

    def wait_ready(self, *, sources: int = 0, actions: int = 0, timeout: float = 60.0) -> None:
        """Wait until MQTT is up, each Kafka producer connected and each source consuming."""
        self.wait_for_log("connected to MQTT broker", timeout)
        if actions:
            self.wait_for_log("producer connected", timeout, count=actions)
        if sources:
            self.wait_for_log("consuming", timeout, count=sources)
            # The group's first assignment commits the start position ("latest" as of now).
            self.wait_for_log(": partitions assigned: ", timeout, count=sources)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # never leave a process behind; the test fails on the timeout
            self.proc.wait(10)
            raise
        finally:
            self._close()

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end by itself; the exit code (killed after ``timeout``)."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # never leave a process behind; the test fails on the timeout
            self.proc.wait(10)
            raise
        finally:
            self._close()

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self._close()

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.join(30)  # the process has exited: its output ends
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


def free_port() -> int:
    """A TCP port free on loopback now (for a listener a test starts next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api_key(config_path: Path) -> tuple[str, str]:
    """A new API key and secret for the instance of ``config_path``, made by the CLI."""
    exe = Path(sys.executable).with_name("mqferry")
    out = subprocess.run([str(exe), "api-key", "create", "-c", str(config_path), "--name", "t"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    lines = dict(line.split(":", 1) for line in out.splitlines())
    return lines["api_key"].strip(), lines["api_secret"].strip()
