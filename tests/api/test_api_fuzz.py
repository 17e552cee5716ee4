"""Property-based fuzz of the API from its own OpenAPI document: no input gives a 500.

The examples per operation are bounded so the run fits in CI. The probe operations are left out:
with the real plugins a generated body would make them dial arbitrary hosts (their bad input is
covered in the connector and action tests).
"""

from __future__ import annotations

import base64

import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mqferry._api import KeyStore, create_api
from mqferry._config import validate_config
from mqferry._runtime import App
from mqferry._runtime.reconfig import Controller
from tests.api.conftest import BASE_CONFIG
from tests.api.fakes import fake_plugins

KNOWN_IDS = {
    **{f"/api/v5/connectors/{{id}}{s}": [None, "fake:c1"] for s in ("", "/enable/{enable}")},
    **{f"/api/v5/actions/{{id}}{s}": [None, "fake:a1"]
       for s in ("", "/enable/{enable}", "/metrics", "/metrics/reset")},
    **{f"/api/v5/rules/{{id}}{s}": [None, "r1"]
       for s in ("", "/metrics", "/metrics/reset", "/test")},
}
SQL = ['SELECT payload.v AS v FROM "t/#"', 'FOREACH payload.xs AS x FROM "t/#" WHERE x > 1',
       'SELECT * FROM "$bridges/kafka_consumer:none"', "SELECT nth(payload.v) FROM \"t\""]


def build_schema(tmp):
    plugins = fake_plugins()
    path = tmp / "mqferry.yaml"
    path.write_text(yaml.safe_dump(BASE_CONFIG))
    cfg = validate_config(BASE_CONFIG, plugins.registries(), plugins.function_table())
    app = App(cfg, data_dir=tmp)
    store = KeyStore(tmp / "keys.json")
    key, secret = store.create("fuzz")
    token = base64.b64encode(f"{key.api_key}:{secret}".encode()).decode()
    api = create_api(Controller(app, plugins, path=path), store)
    auth = {"Authorization": f"Basic {token}"}
    schema = schemathesis.openapi.from_asgi("/api/v5/openapi.json", api, headers=auth)
    return schema, auth


def test_no_input_gives_a_server_error(tmp_path):
    schema, auth = build_schema(tmp_path)
    failures: list[str] = []
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) > 30
    for op in operations:
        if op.path.endswith("_probe"):
            continue

        @given(case=op.as_strategy(), known=st.sampled_from(KNOWN_IDS.get(op.path, [None])),
               sql=st.sampled_from([None, *SQL]))
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def fuzz(case, known, sql):
            # Random ids and SQL rarely name anything; half the cases use real ones, to reach
            # the update, delete and evaluation code behind the lookups.
            if known is not None:
                case.path_parameters["id"] = known
            if sql is not None and isinstance(case.body, dict) and "sql" in case.body:
                case.body["sql"] = sql
            response = case.call(headers=auth)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} "
                                f"{case.body!r} -> {response.status_code} {response.text}")

        fuzz()
    assert not failures, "\n".join(failures[:10])
