"""In a browser: a viewer's key sees the console read-only, and Swagger UI works from the package
behind the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.console.conftest import ARTIFACTS
from tests.console.driver import Console

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def _mqtt(broker):
    return {"server": f"{broker.host}:{broker.port}", "clientid": f"roles-{broker.port}"}


def _viewer_key(config_path: Path) -> tuple[str, str]:
    exe = Path(sys.executable).with_name("mqferry")
    out = subprocess.run([str(exe), "api-key", "create", "-c", str(config_path), "--name",
                          "viewer", "--role", "viewer"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    lines = dict(line.split(":", 1) for line in out.splitlines())
    return lines["api_key"].strip(), lines["api_secret"].strip()


def test_a_viewer_sees_the_console_read_only(instance_factory, chromium, mqtt_broker, request):
    inst = instance_factory({
        "mqtt": _mqtt(mqtt_broker),
        "connectors": {"kafka_producer": {"k": {"bootstrap_hosts": "127.0.0.1:1",
                                                "enable": False}}},
        "rules": {"r1": {"sql": 'SELECT * FROM "roles/#"'}}})
    ctx = chromium.new_context(viewport={"width": 1280, "height": 800})
    try:
        ui = Console(ctx.new_page(), inst.url, ARTIFACTS / request.node.name)
        ui.sign_in(*_viewer_key(inst.proc.config_path))
        expect(ui.page.locator(".who")).to_contain_text("viewer: read-only")
        ui.go("/connectors")
        expect(ui.row("kafka_producer:k")).to_be_visible()
        expect(ui.page.get_by_role("link", name="Create connector")).to_be_hidden()
        expect(ui.row("kafka_producer:k").get_by_role("checkbox")).to_be_disabled()
        ui.go("/rules/r1")
        expect(ui.button("Save")).to_be_disabled()
        expect(ui.page.get_by_role("heading", level=1)).to_contain_text("r1")
        ui.shot("viewer-rule")
    finally:
        ctx.close()


def test_swagger_ui_renders_from_the_package_behind_the_key(instance_factory, chromium,
                                                            mqtt_broker):
    inst = instance_factory({"mqtt": _mqtt(mqtt_broker)})
    anonymous = chromium.new_context()
    try:
        for path in ("docs", "openapi.json", "docs/swagger-ui-bundle.js"):
            assert anonymous.request.get(f"{inst.url}/api/v5/{path}").status == 401, path
    finally:
        anonymous.close()
    key, secret = inst.key
    ctx = chromium.new_context(http_credentials={"username": key, "password": secret})
    try:
        page = ctx.new_page()
        hosts: set[str] = set()
        page.on("request", lambda r: hosts.add(r.url.split("/")[2]))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{inst.url}/api/v5/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("mqferry")
        expect(page.locator(".opblock-summary-path", has_text="/api/v5/connectors").first
               ).to_be_visible()
        assert hosts == {f"127.0.0.1:{inst.port}"}, hosts  # nothing from elsewhere
        assert errors == []
    finally:
        ctx.close()
