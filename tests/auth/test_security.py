"""Security properties: keys never in logs or error messages, CORS closed by default, and hostile strings in every
string field of the API harmless (never a 500, tables intact).

The fuzzing walks the app's own OpenAPI document: for each operation it builds request bodies, path and query
parameters from the schemas, with every string drawn from SQL-injection and path-traversal payloads or arbitrary
text (Hypothesis). Operations added later are fuzzed without changes here.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.auth.conftest import AuthServer

pytestmark = pytest.mark.integration

NASTY = [
    "' OR '1'='1",
    "'; DROP TABLE flows; --",
    '" OR 1=1 --',
    "1; SELECT pg_sleep(5); --",
    "Robert'); DROP TABLE api_keys;--",
    "' UNION SELECT key_hash FROM api_keys --",
    "%",
    "_",
    "\\",
    "../../../../etc/passwd",
    "..\\..\\..\\windows\\win.ini",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/etc/passwd\x00.png",
    "\x00",
    "${jndi:ldap://127.0.0.1/x}",
    "{{7*7}}",
    "<script>alert(1)</script>",
    "ü𝄞\u202e",
    "A" * 5000,
    "orch_0123456789ab_" + "x" * 44,
]
STRINGS = st.one_of(st.sampled_from(NASTY), st.text(max_size=30))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- keys never in logs or messages --------------------------------------------------------------------------------


@pytest.mark.e2e
def test_keys_never_appear_in_the_server_log(tmp_path: Any) -> None:
    """At uvicorn's most verbose level (trace), which logs every ASGI message of every request."""
    home = tmp_path / "log-home"
    home.mkdir()
    server = AuthServer(home, host="0.0.0.0", log_level="trace")
    try:
        server.wait_ready()
        admin = server.key("admin")
        made = server.request("POST", "/api_keys/", admin, json={"name": "agent", "scope": "agent"}).json()
        agent = made["key"]
        assert server.request("POST", "/flow_runs/filter", agent, json={}).status_code == 200
        forged = agent.rsplit("_", 1)[0] + "_" + "F" * 44
        assert server.get("/auth/whoami", forged).status_code == 401
        assert server.get("/auth/whoami", "garbage-" + "G" * 40).status_code == 401
        assert server.request("POST", f"/api_keys/{made['id']}/revoke", admin).status_code == 200
        revoked = server.get("/auth/whoami", agent)
        assert revoked.status_code == 401
        responses_text = revoked.text
    finally:
        log = server.stop()
    # The log is not empty by accident: it holds uvicorn's access lines and its ASGI trace of every request.
    assert '"POST /api/api_keys/ HTTP/1.1" 201' in log and " - ASGI [" in log
    secrets_ = [admin.rsplit("_", 1)[1], agent.rsplit("_", 1)[1], "F" * 44, "G" * 40]
    for secret in secrets_:
        assert secret not in log
        assert secret not in responses_text
    prefix = agent.rsplit("_", 1)[0]
    # Failures are logged, by key id and source address only.
    assert f"authentication failed from 127.0.0.1: wrong secret (key id {prefix})" in log
    assert f"authentication failed from 127.0.0.1: revoked key (key id {prefix})" in log
    assert "authentication failed from 127.0.0.1: not an orch key (key id -)" in log


# -- CORS ----------------------------------------------------------------------------------------------------------


def cors_client(database: Any, **settings_: Any) -> httpx.Client:
    from orch.client._embedded import EmbeddedTransport
    from orch.control_plane.api.app import create_app
    from orch.control_plane.settings import ServerSettings

    app = create_app(ServerSettings(**settings_), database=database)
    return httpx.Client(transport=EmbeddedTransport(app), base_url="http://t/api")


PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}


def test_cors_is_closed_by_default(database: Any) -> None:
    with cors_client(database) as client:
        simple = client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in simple.headers
        preflight = client.options("/flow_runs/filter", headers={"Origin": "https://evil.example", **PREFLIGHT})
        assert "access-control-allow-origin" not in preflight.headers


def test_cors_opens_only_for_the_configured_origins(database: Any) -> None:
    with cors_client(database, cors_origins=["https://ui.example.com"]) as client:
        ok = client.get("/health", headers={"Origin": "https://ui.example.com"})
        assert ok.headers["access-control-allow-origin"] == "https://ui.example.com"
        evil = client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in evil.headers
        preflight = client.options("/flow_runs/filter", headers={"Origin": "https://ui.example.com", **PREFLIGHT})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://ui.example.com"
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        refused = client.options("/flow_runs/filter", headers={"Origin": "https://evil.example", **PREFLIGHT})
        assert "access-control-allow-origin" not in refused.headers


def test_cors_origins_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from orch.control_plane.settings import ServerSettings

    monkeypatch.setenv("ORCH_CORS_ORIGINS", '["https://ui.example.com"]')
    assert ServerSettings().cors_origins == ["https://ui.example.com"]


# -- hostile strings in every string field -------------------------------------------------------------------------


class SchemaStrategies:
    """Hypothesis strategies for the values an OpenAPI (3.1, pydantic-generated) schema describes, with hostile
    strings wherever a free string is allowed."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.components = document.get("components", {}).get("schemas", {})

    def for_schema(self, schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
        if "$ref" in schema:
            return self.for_schema(self.components[schema["$ref"].rsplit("/", 1)[1]], depth)
        for combinator in ("anyOf", "oneOf"):
            if combinator in schema:
                options = [o for o in schema[combinator] if o.get("type") != "null"] or schema[combinator]
                return st.one_of([self.for_schema(o, depth + 1) for o in options])
        if "allOf" in schema:
            return self.for_schema(schema["allOf"][0], depth)
        if "const" in schema:
            return st.just(schema["const"])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        kind = schema.get("type")
        if kind == "string":
            fmt = schema.get("format")
            if fmt == "uuid":
                return st.uuids().map(str)
            if fmt == "date-time":
                return st.one_of(
                    st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: d.isoformat()), st.sampled_from(NASTY)
                )
            return STRINGS
        if kind == "integer":
            return st.integers(schema.get("minimum", -(2**31)), schema.get("maximum", 2**31))
        if kind == "number":
            return st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)
        if kind == "boolean":
            return st.booleans()
        if kind == "array" or "items" in schema:
            if depth > 4:
                return st.just([])
            return st.lists(self.for_schema(schema.get("items", {}), depth + 1), max_size=2)
        if kind == "object" or "properties" in schema or "additionalProperties" in schema:
            return self._object(schema, depth)
        return st.one_of(STRINGS, st.integers(), st.none())  # any JSON

    def _object(self, schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
        props = schema.get("properties", {})
        if depth > 4 or not props:
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict) and depth <= 4:
                return st.dictionaries(STRINGS, self.for_schema(extra, depth + 1), max_size=2)
            return st.just({})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: self.for_schema(v, depth + 1) for k, v in props.items() if k in required},
            optional={k: self.for_schema(v, depth + 1) for k, v in props.items() if k not in required},
        )


def app_document() -> dict[str, Any]:
    from orch.control_plane.api.app import create_app
    from orch.control_plane.db.engine import Database
    from orch.control_plane.settings import ServerSettings

    app = create_app(ServerSettings(server_host="127.0.0.1"), database=Database("sqlite://", pool="null"))
    return dict(app.openapi())


DOCUMENT = app_document()
FUZZ_OPERATIONS = [
    (method.upper(), path, op)
    for path, item in DOCUMENT["paths"].items()
    for method, op in item.items()
    if op.get("x-orch-scope") != "public"
]


def request_for(strategies: SchemaStrategies, path: str, op: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    params = {"path": {}, "query": {}}
    for param in op.get("parameters", []):
        if param["in"] in params:
            params[param["in"]][param["name"]] = strategies.for_schema(param.get("schema", {}))
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    return st.fixed_dictionaries(
        {
            "path": st.fixed_dictionaries(params["path"]),
            "query": st.fixed_dictionaries({}, optional=params["query"]),
            "body": strategies.for_schema(body) if body else st.none(),
        }
    )


@pytest.fixture
def fuzz_client(database: Any) -> Iterator[tuple[httpx.Client, str]]:
    from orch.client._embedded import EmbeddedTransport
    from orch.control_plane.api.app import create_app
    from orch.control_plane.auth.bootstrap import create_bootstrap_key
    from orch.control_plane.settings import ServerSettings

    app = create_app(ServerSettings(server_host="0.0.0.0", auth_failure_limit=100_000), database=database)
    _row, admin = create_bootstrap_key(database)
    with httpx.Client(transport=EmbeddedTransport(app), base_url="http://t", timeout=60) as client:
        flow = client.post("/api/flows/", json={"name": "survivor"}, headers=bearer(admin))
        assert flow.status_code == 201
        yield client, admin
        # Whatever was sent, the tables are still there and the canary row is intact.
        survivor = client.get("/api/flows/name/survivor", headers=bearer(admin))
        assert survivor.status_code == 200, survivor.text
        assert client.get("/api/api_keys/", headers=bearer(admin)).status_code == 200


# Server errors this test found in routes owned elsewhere, reported to their owners; remove once fixed.
KNOWN_500: dict[tuple[str, str], str] = {}


def _fuzz_params() -> list[Any]:
    params = []
    for method, path, op in FUZZ_OPERATIONS:
        reason = KNOWN_500.get((method, path))
        marks = [pytest.mark.xfail(reason=reason, strict=False)] if reason else []
        params.append(pytest.param(method, path, op, id=f"{method} {path}", marks=marks))
    return params


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path", "op"), _fuzz_params())
def test_hostile_strings_never_cause_a_server_error(
    fuzz_client: tuple[httpx.Client, str], method: str, path: str, op: dict[str, Any]
) -> None:
    client, admin = fuzz_client
    strategies = SchemaStrategies(DOCUMENT)

    @settings(
        max_examples=12,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request_for(strategies, path, op))
    def check(request: dict[str, Any]) -> None:
        url = re.sub(r"\{([^}]+)\}", lambda m: quote(str(request["path"][m.group(1)]), safe=""), path)
        query = {k: v if isinstance(v, str) else str(v).lower() for k, v in request["query"].items()}
        kwargs: dict[str, Any] = {"params": query, "headers": bearer(admin)}
        if request["body"] is not None:
            kwargs["json"] = request["body"]
        response = client.request(method, url, **kwargs)
        assert response.status_code < 500 or response.status_code == 503, (
            f"{method} {url} answered {response.status_code}: {response.text[:500]}"
        )

    check()


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.one_of(st.sampled_from(NASTY), st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126))))
def test_hostile_authorization_headers_get_401(fuzz_client: tuple[httpx.Client, str], token: str) -> None:
    client, _admin = fuzz_client
    value = "Bearer " + token.encode("ascii", "replace").decode().replace("\x00", "?")
    response = client.post("/api/flow_runs/filter", json={}, headers={"Authorization": value})
    assert response.status_code == 401
    if len(token) > 8:
        assert token not in response.text


def test_a_uuid_path_with_traversal_is_a_422_not_a_file(fuzz_client: tuple[httpx.Client, str]) -> None:
    client, admin = fuzz_client
    for raw in ("..%2F..%2Fetc%2Fpasswd", "%2e%2e", str(uuid.uuid4()) + "%00"):
        response = client.get(f"/api/api_keys/{raw}", headers=bearer(admin))
        assert response.status_code in (404, 422)
        assert "root:" not in response.text
