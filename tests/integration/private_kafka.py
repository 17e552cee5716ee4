"""A Kafka broker of one test alone, started and stopped at will with ``scripts/services.sh``.

For outages: the shared broker is never stopped. The broker keeps its data directory across a
stop and a start, as a restarted production broker does.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.integration.conftest import SERVICES_SCRIPT
from tests.integration.mqferry_process import free_port


def kafka_libs() -> Path | None:
    """The Kafka jars of the development services (this checkout's, or the main checkout's)."""
    candidates = []
    if os.environ.get("MQFERRY_DEV_DIR"):
        candidates.append(Path(os.environ["MQFERRY_DEV_DIR"]))
    root = SERVICES_SCRIPT.parent.parent
    candidates.append(root / ".dev")
    common = subprocess.run(["git", "-C", str(root), "rev-parse", "--git-common-dir"],
                            capture_output=True, text=True, check=False).stdout.strip()
    if common:
        candidates.append((root / common).resolve().parent / ".dev")
    for dev in candidates:
        if (dev / "kafka" / "libs").is_dir():
            return dev / "kafka" / "libs"
    return None


class PrivateKafka:
    """A single-node Kafka on free ports under ``home``; not running until :meth:`start`.

    Args:
        home: its directory (data, logs, pid file).
        libs: the Kafka jars (:func:`kafka_libs`).
    """

    def __init__(self, home: Path, libs: Path) -> None:
        (home / "kafka").mkdir(parents=True, exist_ok=True)
        link = home / "kafka" / "libs"
        if not link.exists():
            link.symlink_to(libs)
        self.home = home
        self.port = free_port()
        # Every listener on a port of its own: the script's defaults (port + 2, + 3) may be taken.
        self._env = {**os.environ, "MQFERRY_DEV_DIR": str(home),
                     "MQFERRY_KAFKA_PORT": str(self.port),
                     "MQFERRY_KAFKA_CONTROLLER_PORT": str(free_port()),
                     "MQFERRY_KAFKA_SASL_SSL_PORT": str(free_port()),
                     "MQFERRY_KAFKA_SSL_PORT": str(free_port()),
                     "MQFERRY_SERVICES_TIMEOUT": "180"}

    @property
    def bootstrap(self) -> str:
        """Its bootstrap address (reachable only while it runs)."""
        return f"127.0.0.1:{self.port}"

    def _services(self, *args: str) -> None:
        done = subprocess.run(["bash", str(SERVICES_SCRIPT), *args], env=self._env,
                              capture_output=True, text=True, timeout=240, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"services.sh {' '.join(args)} failed: {done.stderr[-2000:]}")

    def start(self) -> None:
        """Start it (again) and wait until it is ready."""
        self._services("start", "kafka")

    def stop(self) -> None:
        """Stop it (SIGTERM through its pid file, as an operator restarts a broker)."""
        self._services("stop", "kafka")

    def pid(self) -> int:
        """Its process id (from its pid file), to freeze it with SIGSTOP."""
        return int((self.home / "kafka.pid").read_text().split()[0])

    @property
    def running(self) -> bool:
        """Whether its process runs."""
        pid_file = self.home / "kafka.pid"
        if not pid_file.exists():
            return False
        try:
            os.kill(int(pid_file.read_text().split()[0]), 0)
        except (ProcessLookupError, ValueError):
            return False
        return True


def private_kafka_or_skip(home: Path) -> PrivateKafka:
    """A :class:`PrivateKafka` under ``home`` (not started); the test is skipped without jars."""
    import pytest

    libs = kafka_libs()
    if libs is None:
        pytest.skip("no Kafka jars found: run scripts/services.sh install")
    return PrivateKafka(home, libs)
