"""The API against its own OpenAPI document, with deep and large bodies besides.

Schemathesis generates requests for every operation (a bounded number each, derandomized) and
checks each response: never a server error, and status, content type and body as the document
declares. Explicit cases add what generation does not reach: JSON nested 900 deep, a 5 MB
string, a 2 MB body. Those are refused with a 4xx (issue #12: they gave 500s, or were written to
the config file), quickly, and the API still answers afterwards.
"""

from __future__ import annotations

import time

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mqferry._api import create_api
from tests.api.test_api_fuzz import KNOWN_IDS, SQL, build_schema

pytestmark = pytest.mark.fuzz

EXAMPLES = 20


def schema_failures(tmp_path, checks) -> list[str]:
    """Distinct failures of ``checks`` over generated requests to every operation."""
    schema, auth = build_schema(tmp_path)
    failures: dict[tuple[str, str, int, str], str] = {}  # distinct failure -> an example
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) > 30
    for op in operations:
        if op.path.endswith("_probe"):
            continue  # with a generated body they would dial arbitrary hosts

        @given(case=op.as_strategy(), known=st.sampled_from(KNOWN_IDS.get(op.path, [None])),
               sql=st.sampled_from([None, *SQL]))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case, known, sql):
            if known is not None:
                case.path_parameters["id"] = known
            if sql is not None and isinstance(case.body, dict) and "sql" in case.body:
                case.body["sql"] = sql
            response = case.call(headers=auth)
            try:
                case.validate_response(response, checks=checks)
            except FailureGroup as exc:
                for failure in exc.exceptions:
                    key = (case.method, case.path, response.status_code,
                           str(failure).splitlines()[0])
                    failures.setdefault(key, f"{case.formatted_path}: {response.text[:150]}")

        check()
    return [f"{m} {p} -> {s}: {why} (e.g. {example})"
            for (m, p, s, why), example in sorted(failures.items())]


def test_no_request_gives_a_server_error_or_an_undeclared_body(tmp_path):
    failures = schema_failures(tmp_path, [not_a_server_error, content_type_conformance,
                                          response_schema_conformance])
    assert not failures, f"{len(failures)} distinct failures:\n" + "\n".join(failures)


def test_every_status_code_is_documented(tmp_path):
    failures = schema_failures(tmp_path, [status_code_conformance])
    assert not failures, f"{len(failures)} distinct failures:\n" + "\n".join(failures)


# -- deep and large bodies ---------------------------------------------------------------------

def deep(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


RULE = {"sql": 'SELECT payload.v AS v FROM "t/#"', "actions": []}
MB = 1024 * 1024

#: (what, method, path, body bytes)
BODIES: list[tuple[str, str, str, bytes]] = []
for _path, _method in (("/rules", "POST"), ("/rules/r1", "PUT"), ("/rule_test", "POST"),
                       ("/rules/r1/test", "POST"), ("/connectors", "POST"),
                       ("/actions/fake:a1", "PUT")):
    BODIES += [
        ("900 deep", _method, _path, deep(900)),
        ("900 deep field", _method, _path,
         b'{"sql": "SELECT * FROM \\"t\\"", "description": ' + deep(900) + b"}"),
        ("5 MB string", _method, _path,
         orjson.dumps({**RULE, "description": "x" * (5 * MB)})),
        # Small once parsed: only the body's size can refuse it.
        ("2 MB body", _method, _path, orjson.dumps(RULE) + b" " * (2 * MB)),
    ]


@pytest.fixture
async def raw_client(controller, keys):
    store, auth = keys
    transport = httpx.ASGITransport(app=create_api(controller, store))
    async with httpx.AsyncClient(transport=transport, base_url="http://mqferry/api/v5",
                                 auth=auth, timeout=60) as c:
        yield c


@pytest.mark.parametrize(("what", "method", "path", "body"), BODIES,
                         ids=[f"{m} {p} {w}" for w, m, p, _ in BODIES])
async def test_deep_and_large_bodies_are_refused_cleanly(raw_client, config_file, what, method,
                                                         path, body):
    size_before = config_file.stat().st_size
    started = time.monotonic()
    response = await raw_client.request(method, path, content=body,
                                        headers={"content-type": "application/json"})
    took = time.monotonic() - started
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    assert response.status_code in (400, 413, 422), (
        f"{what} was accepted: {response.status_code} {response.text[:200]}")
    assert response.headers["content-type"].startswith("application/json")
    assert "message" in response.json()
    assert took < 3.0, f"{what}: the API took {took:.1f} s to answer"
    assert config_file.stat().st_size < size_before + 64 * 1024, "the config file grew"
    after = await raw_client.get("/rules/r1")
    assert after.status_code == 200 and after.json()["sql"] == 'SELECT payload.v AS v FROM "t/#"'
