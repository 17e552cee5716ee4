"""Request body limits: a body over ``api.max_body_size`` is refused with 413 before it is read,
one nested deeper than ``api.max_json_depth`` with 400 before it is parsed, an over-long field
with 400 naming the field; no hostile body to any route gives a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from mqferry._api import create_api
from mqferry._api.limits import BodyLimits, json_too_deep

MB = 1024 * 1024
IDS = {"rules": "r1", "connectors": "fake:c1", "actions": "fake:a1", "sources": "fake:s1"}


def nested(depth: int) -> bytes:
    """A JSON body ``depth`` levels deep (objects and arrays in turn), with a bracket in a
    string on the way, which must not count."""
    text = "1"
    for i in range(depth - 1):
        text = f"[{text}]" if i % 2 else f'{{"s": "]]}}", "a": {text}}}'
    return f'{{"sql": "SELECT 1 AS one FROM \\"t/#\\"", "context": {text}}}'.encode()


def scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": "/api/v5/rules", "raw_path": b"/api/v5/rules",
            "query_string": b"", "root_path": "", "headers": headers,
            "server": ("127.0.0.1", 18083), "client": ("127.0.0.1", 5000)}


async def test_a_declared_length_over_the_limit_is_refused_without_reading_the_body():
    ran, sent = [], []

    async def app(scope, receive, send):
        ran.append(scope)

    async def receive():
        raise AssertionError("the body was read")

    async def send(message):
        sent.append(message)

    limits = BodyLimits(app, max_size=MB, max_depth=64)
    await limits(scope([(b"content-length", b"314572800")]), receive, send)
    assert not ran
    assert sent[0]["status"] == 413
    error = json.loads(sent[1]["body"])
    assert error["code"] == "PAYLOAD_TOO_LARGE"
    assert "1MB" in error["message"] and "api.max_body_size" in error["message"]


async def test_a_chunked_body_is_cut_off_once_past_the_limit():
    chunk = b"x" * (64 * 1024)
    read, sent = [], []

    async def app(scope, receive, send):
        raise AssertionError("the application ran")

    async def receive():
        read.append(len(chunk))  # an endless upload
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    limits = BodyLimits(app, max_size=MB, max_depth=64)
    await limits(scope([(b"transfer-encoding", b"chunked")]), receive, send)
    assert sent[0]["status"] == 413
    assert sum(read) == MB + len(chunk)  # held at most one chunk past the limit


@pytest.mark.parametrize(("depth", "deep"), [(1, False), (64, False), (65, True), (200, True),
                                              (900, True), (100_000, True)])
def test_json_depth(depth, deep):
    assert json_too_deep(nested(depth), 64) is deep


def test_json_depth_edge_cases():
    assert not json_too_deep(b'{"a": "[[[[[[[[", "b": "\\"[[[["}', 1)
    assert json_too_deep(b"[" * 100, 64)  # unbalanced: the parser would recurse on it
    assert not json_too_deep(b"[[],[],[[]]]", 3)
    assert json_too_deep(b"[[],[],[[]]]", 2)


async def test_oversized_bodies_answer_413_through_the_api(client):
    r = await client.post("/rules", content=b" " * (MB + 1),
                          headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")

    async def stream() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * (64 * 1024)

    r = await client.post("/rule_test", content=stream(),
                          headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert "1MB" in r.json()["message"]


async def test_deep_bodies_answer_400_and_64_levels_pass(client):
    for depth in (65, 200, 400, 900):
        r = await client.post("/rule_test", content=nested(depth),
                              headers={"content-type": "application/json"})
        assert r.status_code == 400, (depth, r.text)
        assert "nested deeper than 64" in r.json()["message"]
    r = await client.post("/rule_test", content=nested(64),
                          headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text


async def test_long_fields_answer_400_naming_the_field(client, controller):
    r = await client.post("/rules", json={"sql": 'SELECT * FROM "t"',
                                          "description": "d" * 500_000})
    assert r.status_code == 400
    assert r.json()["message"].startswith("body.description:")
    assert "10000 characters" in r.json()["message"]
    r = await client.put("/rules/r1", json={"sql": "S" * 100_000})
    assert (r.status_code, r.json()["message"].split(":")[0]) == (400, "body.sql")
    r = await client.put("/actions/fake:a1", json={"connector": "c1", "description": "d" * 20_000,
                                                   "parameters": {"topic": "out"}})
    assert r.status_code == 400
    assert r.json()["message"].startswith("actions.fake.a1.description:")
    assert controller.app.config.rules["r1"].config.description == "first"


async def test_a_5mb_description_under_a_larger_body_limit_is_refused_by_name(controller, keys):
    raw = controller.app.config.raw
    raw.api = raw.api.model_copy(update={"max_body_size": 8 * MB})
    store, auth = keys
    api = create_api(controller, store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                 base_url="http://mqferry/api/v5", auth=auth) as c:
        r = await c.post("/rules", json={"id": "big", "sql": 'SELECT * FROM "t"',
                                         "description": "d" * (5 * MB)})
    assert r.status_code == 400
    assert r.json()["message"].startswith("body.description:")
    assert "big" not in controller.app.config.rules


def _routes(api) -> list[tuple[str, str]]:
    """Every operation of the API's OpenAPI document, with known ids in the paths."""
    out = []
    for template, operations in api.openapi()["paths"].items():
        relative = template.removeprefix("/api/v5")
        kind = relative.split("/")[1].split("_")[0]
        path = relative.replace("{id}", IDS.get(kind, "x")).replace("{enable}", "true")
        out += [(method.upper(), path) for method in sorted(operations)]
    return out


HOSTILE: list[tuple[str, bytes, int | None]] = [
    ("over the size limit", b" " * (MB + 10), 413),
    ("200 deep", nested(200), 400),
    ("900 deep", nested(900), 400),
    ("unbalanced and deep", b"[" * 50_000, 400),
    ("not JSON", b'{"sql": ', None),
    ("an array", b"[1, 2, 3]", None),
    ("NaN", b'{"sql": NaN, "context": {"payload": {"v": Infinity}}}', None),
    ("an integer beyond 64 bits", b'{"sql": "SELECT payload.v FROM \\"t\\"", "context": '
                                  b'{"payload": {"v": 123456789012345678901234567890}}}', None),
    ("long strings everywhere", json.dumps({
        "id": "i" * 300, "sql": "s" * 200_000, "description": "d" * 200_000, "name": "n" * 300,
        "type": "fake", "connector": "c1", "url": "u" * 100_000,
        "parameters": {"topic": "t" * 100_000}, "context": {"payload": "p" * 100_000}}).encode(),
     None),
    ("62 deep, within the limit", nested(62), None),
]


async def test_no_hostile_body_to_any_route_gives_a_server_error(controller, keys):
    store, auth = keys
    api = create_api(controller, store)
    routes = _routes(api)
    assert len(routes) > 30
    failures = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                 base_url="http://mqferry/api/v5", auth=auth) as c:
        for method, path in routes:
            for what, body, expected in HOSTILE:
                r = await c.request(method, path, content=body,
                                    headers={"content-type": "application/json"})
                if r.status_code >= 500 or (expected is not None and r.status_code != expected):
                    failures.append(f"{method} {path} {what}: {r.status_code} {r.text[:200]}")
    assert not failures, "\n".join(failures)
