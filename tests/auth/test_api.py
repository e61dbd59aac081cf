"""The API-key routes and the check every route runs, in-process on SQLite and PostgreSQL.

Apps here are built with the settings of a public bind (``server_host=0.0.0.0``), where authentication is always
on, unless a test is about another mode.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter, Request

from orch.control_plane.api.security import Scope, requires
from orch.control_plane.auth import require
from orch.control_plane.db import orm
from orch.control_plane.schemas.base import now_utc

pytestmark = pytest.mark.integration


def make_app(database: Any, **settings: Any) -> Any:
    from orch.control_plane.api.app import create_app
    from orch.control_plane.settings import ServerSettings

    return create_app(ServerSettings(**settings), database=database)


def http(app: Any) -> httpx.Client:
    from orch.client._embedded import EmbeddedTransport

    return httpx.Client(transport=EmbeddedTransport(app), base_url="http://test/api")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def public_app(database: Any) -> Any:
    return make_app(database, server_host="0.0.0.0")


@pytest.fixture
def api_(public_app: Any) -> Iterator[httpx.Client]:
    with http(public_app) as client:
        yield client


@pytest.fixture
def admin_key(database: Any) -> str:
    from orch.control_plane.auth.bootstrap import create_bootstrap_key

    return create_bootstrap_key(database)[1]


def new_key(api_: httpx.Client, admin_key: str, scope: str, **extra: Any) -> dict[str, Any]:
    response = api_.post(
        "/api_keys/", json={"name": f"{scope}-key", "scope": scope, **extra}, headers=bearer(admin_key)
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    return dict(response.json())


def test_whoami_names_the_key_and_its_scope(api_: httpx.Client, admin_key: str) -> None:
    agent = new_key(api_, admin_key, "agent")
    who = api_.get("/auth/whoami", headers=bearer(agent["key"])).json()
    assert who["auth_enabled"] is True
    assert who["scope"] == "agent"
    assert who["key"]["prefix"] == agent["prefix"] and who["key"]["name"] == "agent-key"
    assert "key" not in who["key"] and "key_hash" not in who["key"]


def test_created_key_is_shown_once_and_listed_without_secrets(api_: httpx.Client, admin_key: str) -> None:
    created = new_key(api_, admin_key, "deploy")
    assert created["key"].startswith(created["prefix"] + "_")
    listed = api_.get("/api_keys/", headers=bearer(admin_key))
    assert listed.status_code == 200
    assert {k["prefix"] for k in listed.json()} >= {created["prefix"]}
    secret = created["key"].rsplit("_", 1)[1]
    assert secret not in listed.text and "key_hash" not in listed.text
    one = api_.get(f"/api_keys/{created['id']}", headers=bearer(admin_key))
    assert one.status_code == 200 and secret not in one.text and "key" not in one.json()


def test_keys_are_stored_hashed(api_: httpx.Client, admin_key: str, database: Any) -> None:
    created = new_key(api_, admin_key, "read")
    with database.session(write=False) as session:
        row = session.scalars(sa.select(orm.ApiKey).where(orm.ApiKey.prefix == created["prefix"])).one()
        assert created["key"] not in row.key_hash
        assert created["key"].rsplit("_", 1)[1] not in row.key_hash
        assert row.hash_scheme == "sha256-salted"


def test_scopes_are_a_ladder(api_: httpx.Client, admin_key: str) -> None:
    read = new_key(api_, admin_key, "read")["key"]
    agent = new_key(api_, admin_key, "agent")["key"]
    deploy = new_key(api_, admin_key, "deploy")["key"]
    # read: everything visible, nothing changed (filters are POSTs that only read).
    assert api_.post("/flow_runs/filter", json={}, headers=bearer(read)).status_code == 200
    refused = api_.post("/flows/", json={"name": "f"}, headers=bearer(read))
    assert refused.status_code == 403
    assert "'read'" in refused.json()["detail"] and "'agent'" in refused.json()["detail"]
    # agent: registers flows, creates ad-hoc runs, reports states, logs and heartbeats.
    flow = api_.post("/flows/", json={"name": "f"}, headers=bearer(agent)).json()
    run = api_.post("/flow_runs/", json={"flow_id": flow["id"], "state": {"type": "SCHEDULED"}}, headers=bearer(agent))
    assert run.status_code == 201, run.text
    run_id = run.json()["id"]
    claim = api_.post(f"/flow_runs/{run_id}/set_state", json={"state": {"type": "PENDING"}}, headers=bearer(agent))
    assert claim.status_code == 201, claim.text
    assert api_.post(f"/flow_runs/{run_id}/heartbeat", headers=bearer(agent)).status_code == 200
    # ... but may not delete, manage keys or (where deployments exist) create deployments.
    assert api_.delete(f"/flow_runs/{run_id}", headers=bearer(agent)).status_code == 403
    assert api_.get("/api_keys/", headers=bearer(agent)).status_code == 403
    assert api_.post("/deployments/", json={}, headers=bearer(agent)).status_code in (403, 404)
    # deploy: may delete runs, not manage keys.
    assert api_.get("/api_keys/", headers=bearer(deploy)).status_code == 403
    assert api_.delete(f"/flow_runs/{run_id}", headers=bearer(deploy)).status_code == 204


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "Missing API key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "Malformed Authorization header"),
        ({"Authorization": "Bearer"}, "Malformed Authorization header"),
        ({"Authorization": "Bearer not-a-key"}, "not an orch key"),
        ({"Authorization": "Bearer orch_0123456789ab_" + "x" * 44}, "Invalid API key."),
    ],
)
def test_missing_and_bad_keys_get_401_with_a_clear_detail(
    api_: httpx.Client, admin_key: str, headers: dict[str, str], detail: str
) -> None:
    response = api_.post("/flow_runs/filter", json={}, headers=headers)
    assert response.status_code == 401
    assert detail in response.json()["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_wrong_secret_for_a_known_key_id_is_refused_without_echo(api_: httpx.Client, admin_key: str) -> None:
    prefix = admin_key.rsplit("_", 1)[0]
    forged = f"{prefix}_{'A' * 44}"
    response = api_.get("/auth/whoami", headers=bearer(forged))
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid API key."
    assert "A" * 44 not in response.text


def test_a_revoked_key_fails_on_the_next_request(api_: httpx.Client, admin_key: str) -> None:
    agent = new_key(api_, admin_key, "agent")
    assert api_.post("/flow_runs/filter", json={}, headers=bearer(agent["key"])).status_code == 200
    revoked = api_.post(f"/api_keys/{agent['id']}/revoke", headers=bearer(admin_key))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    response = api_.post("/flow_runs/filter", json={}, headers=bearer(agent["key"]))
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"] and agent["prefix"] in response.json()["detail"]
    assert agent["key"] not in response.text
    # Revoking again changes nothing; the key is listed only with include_inactive.
    again = api_.post(f"/api_keys/{agent['id']}/revoke", headers=bearer(admin_key)).json()
    assert again["revoked_at"] == revoked.json()["revoked_at"]
    active = {k["prefix"] for k in api_.get("/api_keys/", headers=bearer(admin_key)).json()}
    every = api_.get("/api_keys/", params={"include_inactive": "true"}, headers=bearer(admin_key)).json()
    assert agent["prefix"] not in active and agent["prefix"] in {k["prefix"] for k in every}


def test_an_expired_key_is_refused(api_: httpx.Client, admin_key: str, database: Any) -> None:
    soon = (now_utc() + dt.timedelta(hours=1)).isoformat()
    key = new_key(api_, admin_key, "read", expires_at=soon)
    assert api_.get("/auth/whoami", headers=bearer(key["key"])).status_code == 200
    with database.session() as session:  # let the hour pass
        session.execute(
            sa.update(orm.ApiKey)
            .where(orm.ApiKey.prefix == key["prefix"])
            .values(expires_at=now_utc() - dt.timedelta(seconds=1))
        )
    response = api_.get("/auth/whoami", headers=bearer(key["key"]))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"] and key["key"] not in response.text


@pytest.mark.parametrize(
    "body",
    [
        {"name": "k", "scope": "root"},
        {"name": "", "scope": "read"},
        {"name": "k", "scope": "read", "expires_at": "2000-01-01T00:00:00Z"},
        {"name": "k", "scope": "read", "key_hash": "x"},
    ],
)
def test_invalid_key_requests_get_422(api_: httpx.Client, admin_key: str, body: dict[str, Any]) -> None:
    assert api_.post("/api_keys/", json=body, headers=bearer(admin_key)).status_code == 422


def test_an_expiry_without_a_time_zone_is_read_as_utc(api_: httpx.Client, admin_key: str) -> None:
    """As everywhere in the API, a timestamp with no offset means UTC."""
    created = api_.post(
        "/api_keys/",
        json={"name": "k", "scope": "read", "expires_at": "2999-01-01T00:00:00"},
        headers=bearer(admin_key),
    )
    assert created.status_code == 201
    assert created.json()["expires_at"].startswith("2999-01-01T00:00:00")
    assert created.json()["expires_at"].endswith(("Z", "+00:00"))


def test_unknown_key_ids_get_404(api_: httpx.Client, admin_key: str) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert api_.get(f"/api_keys/{missing}", headers=bearer(admin_key)).status_code == 404
    assert api_.post(f"/api_keys/{missing}/revoke", headers=bearer(admin_key)).status_code == 404


def test_last_used_is_recorded_at_most_once_a_minute(api_: httpx.Client, admin_key: str, database: Any) -> None:
    key = new_key(api_, admin_key, "read")

    def last_used() -> dt.datetime | None:
        with database.session(write=False) as session:
            return session.scalars(sa.select(orm.ApiKey.last_used_at).where(orm.ApiKey.prefix == key["prefix"])).one()

    assert last_used() is None
    api_.get("/auth/whoami", headers=bearer(key["key"]))
    first = last_used()
    assert first is not None
    for _ in range(5):
        api_.get("/auth/whoami", headers=bearer(key["key"]))
    assert last_used() == first


def test_failed_authentications_are_rate_limited_per_address(database: Any, admin_key: str) -> None:
    app = make_app(database, server_host="0.0.0.0", auth_failure_limit=5)
    wrong = bearer("orch_0123456789ab_" + "y" * 44)
    with http(app) as client:
        codes = [client.get("/auth/whoami", headers=wrong).status_code for _ in range(5)]
        assert codes == [401] * 5
        blocked = client.get("/auth/whoami", headers=wrong)
        assert blocked.status_code == 429
        assert 1 <= int(blocked.headers["retry-after"]) <= 60
        # While blocked, even the right key is refused: a guesser learns nothing.
        assert client.get("/auth/whoami", headers=bearer(admin_key)).status_code == 429


def test_missing_keys_do_not_count_as_failures(database: Any, admin_key: str) -> None:
    app = make_app(database, server_host="0.0.0.0", auth_failure_limit=2)
    with http(app) as client:
        assert {client.get("/auth/whoami").status_code for _ in range(10)} == {401}
        assert client.get("/auth/whoami", headers=bearer(admin_key)).status_code == 200


def test_loopback_auto_mode_is_open_until_a_key_exists(database: Any) -> None:
    app = make_app(database, server_host="127.0.0.1")
    with http(app) as client:
        assert client.post("/flows/", json={"name": "open"}).status_code in (200, 201)
        who = client.get("/auth/whoami").json()
        assert who == {"auth_enabled": False, "scope": "admin", "key": None}
        # A key made through the API turns authentication on at once ...
        created = client.post("/api_keys/", json={"name": "first", "scope": "admin"})
        assert created.status_code == 201
        assert client.post("/flows/", json={"name": "closed"}).status_code == 401
        assert client.get("/auth/whoami", headers=bearer(created.json()["key"])).json()["auth_enabled"] is True


def test_loopback_auto_mode_notices_keys_made_elsewhere(database: Any) -> None:
    from orch.control_plane.auth.bootstrap import create_bootstrap_key
    from tests.auth.conftest import wait_for

    app = make_app(database, server_host="127.0.0.1")
    with http(app) as client:
        assert client.post("/flow_runs/filter", json={}).status_code == 200
        create_bootstrap_key(database)  # as `orch server bootstrap-key` does, from another process
        wait_for(lambda: client.post("/flow_runs/filter", json={}).status_code == 401, timeout=15)


def test_revoking_every_key_does_not_reopen_a_loopback_server(database: Any) -> None:
    app = make_app(database, server_host="127.0.0.1")
    with http(app) as client:
        created = client.post("/api_keys/", json={"name": "only", "scope": "admin"}).json()
        assert client.post(f"/api_keys/{created['id']}/revoke", headers=bearer(created["key"])).status_code == 200
    fresh = make_app(database, server_host="127.0.0.1")  # a restarted server
    with http(fresh) as client:
        assert client.post("/flow_runs/filter", json={}).status_code == 401


def test_auth_off_on_loopback_still_checks_a_key_presented_to_whoami(database: Any, admin_key: str) -> None:
    app = make_app(database, server_host="127.0.0.1", auth="off")
    with http(app) as client:
        assert client.post("/flows/", json={"name": "open"}).status_code in (200, 201)
        who = client.get("/auth/whoami", headers=bearer(admin_key)).json()
        assert who["auth_enabled"] is False and who["key"]["scope"] == "admin"
        assert client.get("/auth/whoami", headers=bearer("orch_0123456789ab_" + "z" * 44)).status_code == 401


def test_in_process_calls_are_trusted(database: Any, admin_key: str) -> None:
    """The embedded SDK mounts the app in-process (``app.state.embedded``): no network, no key needed."""
    app = make_app(database, server_host="0.0.0.0", auth="on")
    app.state.embedded = True
    with http(app) as client:
        assert client.post("/flows/", json={"name": "embedded"}).status_code in (200, 201)
        assert client.get("/api_keys/").status_code == 200


def test_openapi_describes_bearer_auth_and_each_operations_scope(api_: httpx.Client, admin_key: str) -> None:
    assert api_.get("/openapi.json").status_code == 401
    schema = api_.get("/openapi.json", headers=bearer(admin_key)).json()
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert schema["paths"]["/api/api_keys/"]["post"]["x-orch-scope"] == "admin"
    assert schema["paths"]["/api/health"]["get"]["x-orch-scope"] == "public"
    assert "security" not in schema["paths"]["/api/health"]["get"]
    assert schema["paths"]["/api/flow_runs/filter"]["post"]["security"] == [{"apiKey": []}]


def test_require_checks_a_further_scope_inside_a_route(database: Any, admin_key: str) -> None:
    """``auth.require`` lets a route ask more of some inputs: the pattern recommended for runs of deployments."""
    app = make_app(database, server_host="0.0.0.0")
    router = APIRouter()

    @router.post("/echo", dependencies=[requires(Scope.AGENT)])
    async def echo(request: Request, for_deployment: bool = False) -> dict[str, bool]:
        if for_deployment:
            await require(request, Scope.DEPLOY)
        return {"ok": True}

    app.include_router(router, prefix="/api")
    with http(app) as client:
        agent = new_key(client, admin_key, "agent")["key"]
        deploy = new_key(client, admin_key, "deploy")["key"]
        assert client.post("/echo", headers=bearer(agent)).status_code == 200
        refused = client.post("/echo", params={"for_deployment": "true"}, headers=bearer(agent))
        assert refused.status_code == 403 and "'deploy'" in refused.json()["detail"]
        assert client.post("/echo", params={"for_deployment": "true"}, headers=bearer(deploy)).status_code == 200


def test_an_agent_key_cannot_start_runs_of_deployments_or_force_states(api_: httpx.Client, admin_key: str) -> None:
    """``POST /deployments/{id}/create_flow_run`` needs ``deploy``; an agent key must not reach the same result
    through ``POST /flow_runs/`` with a ``deployment_id`` (a run of the deployment's code, with parameters of its
    choosing, queued for other agents), nor override the orchestration rules with ``force``."""
    agent = new_key(api_, admin_key, "agent")["key"]
    flow = api_.post("/flows/", json={"name": "deployed"}, headers=bearer(admin_key)).json()
    deployment = api_.post("/deployments/", json={"flow_id": flow["id"], "name": "prod"}, headers=bearer(admin_key))
    assert deployment.status_code in (200, 201), deployment.text
    run = {
        "flow_id": flow["id"],
        "deployment_id": deployment.json()["id"],
        "parameters": {"anything": "the agent likes"},
        "state": {"type": "SCHEDULED"},
    }
    assert api_.post("/flow_runs/", json=run, headers=bearer(agent)).status_code == 403
    adhoc = api_.post("/flow_runs/", json={"flow_id": flow["id"]}, headers=bearer(agent)).json()
    forced = {"state": {"type": "COMPLETED"}, "force": True}
    assert api_.post(f"/flow_runs/{adhoc['id']}/set_state", json=forced, headers=bearer(agent)).status_code == 403
