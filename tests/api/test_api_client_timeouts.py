"""How long the CLI waits: a change as long as the instance may take to apply it."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import click
import pytest

from mqferry._api import client as api_client
from mqferry._api.client import ApiClient, Target


class _Slow(BaseHTTPRequestHandler):
    delay = 0.6

    def _answer(self) -> None:
        time.sleep(self.delay)  # a change stopping and starting components
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ApiClient(Target(f"http://127.0.0.1:{server.server_address[1]}"), None, None)
    server.shutdown()
    server.server_close()


def test_a_change_is_waited_for_longer_than_a_read(slow_api, monkeypatch):
    # Scaled down: reads wait 0.3 s here, changes 3 s; the instance takes 0.6 s to answer.
    real = api_client.httpx.Timeout

    def scaled(default: float, *, read: float) -> object:
        return real(default, read=read / 100)

    monkeypatch.setattr(api_client.httpx, "Timeout", scaled)
    assert slow_api.call("PUT", "/rules/r", json={}) == {"ok": True}
    with pytest.raises(click.ClickException, match="timed out"):
        slow_api.call("GET", "/rules")
    assert api_client.CHANGE_TIMEOUT >= 60  # above the 45 s a flush-bound stop may take
