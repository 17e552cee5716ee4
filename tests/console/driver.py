"""Drives the console in a browser page the way a user does: labels, buttons, links."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

TIMEOUT = 30_000  # ms: statuses and counters refresh every few seconds
expect.set_options(timeout=TIMEOUT)


class Console:
    """One signed-in page of the console.

    Args:
        page: a Playwright page.
        url: the instance's address (the console is served under ``/dashboard/``).
        shots: where screenshots go.
    """

    def __init__(self, page: Any, url: str, shots: Path) -> None:
        self.page = page
        self.url = url
        self.shots = shots
        self.errors: list[str] = []
        self._n = 0
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        # The browser logs every 4xx answer as an error; refusals are part of the tests.
        page.on("console", lambda m: m.type == "error" and not m.text.startswith(
            "Failed to load resource") and self.errors.append(m.text))
        page.set_default_timeout(TIMEOUT)

    def sign_in(self, key: str, secret: str) -> None:
        self.page.goto(f"{self.url}/dashboard/")
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_label("API secret").fill(secret)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.get_by_role("navigation", name="Main")).to_be_visible()

    def go(self, path: str) -> None:
        """Open a page; opening the page already shown starts it afresh (as a reload does)."""
        url = f"{self.url}/dashboard/#{path}"
        if self.page.url == url:
            self.page.reload()
        else:
            self.page.goto(url)

    def heading(self, text: str) -> None:
        """Wait for the page titled ``text``, and for the focus the page moves to its heading
        (after that, keys go where the test puts the focus)."""
        h1 = self.page.get_by_role("heading", level=1)
        expect(h1).to_have_text(text)
        expect(h1).to_be_focused()

    def shot(self, name: str) -> Path:
        """A full-page screenshot, numbered in the order taken."""
        self.shots.mkdir(parents=True, exist_ok=True)
        self._n += 1
        path = self.shots / f"{self._n:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def button(self, name: str) -> Any:
        return self.page.get_by_role("button", name=name, exact=True)

    def field(self, label: str) -> Any:
        return self.page.get_by_label(label, exact=True)

    def row(self, row_id: str) -> Any:
        return self.page.locator(f'tr[data-id="{row_id}"]')

    def wait_status(self, row_id: str, status: str = "connected") -> None:
        expect(self.row(row_id).locator(".status")).to_have_text(status)

    def notice(self, text: str | re.Pattern[str]) -> None:
        expect(self.page.get_by_role("status").filter(has_text=text).first).to_be_visible()

    def alert(self, text: str | re.Pattern[str]) -> Any:
        box = self.page.get_by_role("alert").filter(has_text=text).first
        expect(box).to_be_visible()
        return box

    def create_connector(self, type_name: str, name: str, bootstrap: str) -> None:
        self.go("/connectors/new")
        self.heading("Create connector")
        self.page.locator("#f-type").select_option(type_name)
        self.page.locator("#f-name").fill(name)
        self.page.locator("#f-bootstrap_hosts").fill(bootstrap)
        self.button("Test connection").click()
        self.notice("Connection test passed.")
        self.shot(f"connector-{type_name}-form")
        self.button("Create").click()
        self.heading("Connectors")
        self.wait_status(f"{type_name}:{name}")
        self.shot("connectors-list")
