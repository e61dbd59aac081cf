"""When authentication is on: a public bind or Lambda always, loopback once a key exists, and never switched off
where that would be unsafe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from orch.control_plane.settings import ServerSettings
from tests.auth.conftest import AuthServer, orch, wait_for

pytestmark = pytest.mark.integration


@pytest.mark.unit
@pytest.mark.parametrize(
    ("settings", "where"),
    [
        ({"server_host": "0.0.0.0"}, "non-loopback address 0.0.0.0"),
        ({"server_host": "::"}, "non-loopback address ::"),
        ({"server_host": "192.168.1.20"}, "non-loopback address"),
        ({"server_host": "orch.example.com"}, "non-loopback address"),
        ({"server_host": "127.0.0.1", "on_lambda": True}, "on AWS Lambda"),
    ],
)
def test_auth_off_is_refused_where_it_would_be_unsafe(settings: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        ServerSettings(auth="off", **settings)


@pytest.mark.unit
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_auth_off_is_allowed_on_loopback(host: str) -> None:
    assert ServerSettings(auth="off", server_host=host, on_lambda=False).auth == "off"


@pytest.mark.unit
def test_lambda_is_detected_from_the_runtime_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orch-api")
    monkeypatch.setenv("ORCH_AUTH", "off")
    with pytest.raises(ValidationError, match="on AWS Lambda"):
        ServerSettings()


def test_server_start_refuses_auth_off_on_a_public_bind(orch_home: Path) -> None:
    result = orch(orch_home, "server", "start", "--host", "0.0.0.0", "--port", "4999", ORCH_AUTH="off")
    assert result.returncode == 2
    assert result.stderr.startswith("Error: ORCH_AUTH=off is refused on the non-loopback address 0.0.0.0")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("settings", [{"on_lambda": True}, {"auth": "on"}, {"server_host": "0.0.0.0"}])
def test_auth_is_on_without_any_key_on_lambda_public_binds_and_when_asked(
    database: Any, settings: dict[str, Any]
) -> None:
    from orch.client._embedded import EmbeddedTransport
    from orch.control_plane.api.app import create_app

    app = create_app(ServerSettings(**settings), database=database)
    with httpx.Client(transport=EmbeddedTransport(app), base_url="http://t/api") as client:
        assert client.get("/health").status_code == 200
        assert client.post("/flow_runs/filter", json={}).status_code == 401


def test_a_public_server_refuses_unauthenticated_requests_from_the_start(public_server: AuthServer) -> None:
    assert public_server.get("/health").status_code == 200
    assert public_server.get("/version").status_code == 200
    for method, path in [("POST", "/flow_runs/filter"), ("GET", "/openapi.json"), ("GET", "/docs")]:
        response = public_server.request(method, path, json={} if method == "POST" else None)
        assert response.status_code == 401, (path, response.text)
        assert "Missing API key" in response.json()["detail"]


@pytest.mark.e2e
def test_a_loopback_server_turns_auth_on_when_a_key_is_bootstrapped(tmp_path: Path) -> None:
    home = tmp_path / "loopback-home"
    home.mkdir()
    server = AuthServer(home, host="127.0.0.1")
    try:
        server.wait_ready()
        assert server.request("POST", "/flow_runs/filter", json={}).status_code == 200
        boot = orch(home, "server", "bootstrap-key")
        assert boot.returncode == 0, boot.stderr
        key = boot.stdout.strip().splitlines()[-1]
        wait_for(lambda: server.request("POST", "/flow_runs/filter", json={}).status_code == 401)
        assert server.request("POST", "/flow_runs/filter", key, json={}).status_code == 200
    finally:
        server.stop()
