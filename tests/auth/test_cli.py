"""The client side against real servers: ``orch auth``, ``orch api-key``, ``orch profile``, ``orch config``.

The headline path runs as real processes: a server bound to 0.0.0.0, ``orch server bootstrap-key`` in its home,
``orch auth login --key`` and ``orch flow-run ls`` from a client home. The rest runs the CLI in-process (``cli``
fixture) against the same kind of server, which is faster and still crosses HTTP.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.auth.conftest import AuthServer, orch
from tests.conftest import orch_env

pytestmark = pytest.mark.integration


def secret_of(key: str) -> str:
    return key.rsplit("_", 1)[1]


def profile_values(home: Path) -> dict[str, Any]:
    data = tomllib.loads((home / "profiles.toml").read_text())
    return dict(data["profiles"][data["active"]])


@pytest.mark.e2e
def test_login_then_flow_run_ls_against_a_public_server(public_server: AuthServer, orch_home: Path) -> None:
    boot = orch(public_server.home, "server", "bootstrap-key")
    assert boot.returncode == 0, boot.stderr
    admin = boot.stdout.strip().splitlines()[-1]
    assert admin.startswith("orch_")
    again = orch(public_server.home, "server", "bootstrap-key")
    assert again.returncode == 2
    assert again.stderr.startswith("Error: An admin key exists already") and "Traceback" not in again.stderr
    assert secret_of(admin) not in again.stdout + again.stderr

    # Nothing works before logging in: one line, exit code 2.
    before = orch(orch_home, "flow-run", "ls", ORCH_API_URL=public_server.url)
    assert before.returncode == 2
    assert before.stderr.strip().startswith("Error: Not authenticated: Missing API key")
    assert len(before.stderr.strip().splitlines()) == 1

    login = orch(orch_home, "auth", "login", "--key", admin, "--url", public_server.url)
    assert login.returncode == 0, login.stderr
    assert secret_of(admin) not in login.stdout + login.stderr
    saved = profile_values(orch_home)
    assert saved == {"ORCH_API_URL": public_server.url, "ORCH_API_KEY": admin}
    assert stat.S_IMODE((orch_home / "profiles.toml").stat().st_mode) == 0o600

    listed = orch(orch_home, "flow-run", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []

    status = orch(orch_home, "auth", "status")
    assert status.returncode == 0, status.stderr
    assert admin.rsplit("_", 1)[0] in status.stdout and "admin" in status.stdout
    assert secret_of(admin) not in status.stdout + status.stderr

    logout = orch(orch_home, "auth", "logout")
    assert logout.returncode == 0 and "ORCH_API_KEY" not in profile_values(orch_home)
    after = orch(orch_home, "flow-run", "ls")
    assert after.returncode == 2 and after.stderr.startswith("Error: Not authenticated:")
    assert "Traceback" not in after.stderr


@pytest.mark.e2e
def test_an_agent_key_runs_flows_but_cannot_create_keys_or_deployments(
    public_server: AuthServer, orch_home: Path, tmp_path: Path
) -> None:
    agent = public_server.key("agent")
    script = tmp_path / "hello.py"
    script.write_text(
        textwrap.dedent(
            """
            from orch import flow, task

            @task
            def double(x):
                return 2 * x

            @flow
            def hello(x: int = 21):
                return double(x)

            print("result", hello())
            """
        )
    )
    env = {"ORCH_API_URL": public_server.url, "ORCH_API_KEY": agent}
    ran = subprocess.run(
        [sys.executable, str(script)], env=orch_env(orch_home, **env), capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "result 42" in ran.stdout
    admin = public_server.key("admin")
    runs = public_server.request("POST", "/flow_runs/filter", admin, json={}).json()
    assert [r["state_type"] for r in runs] == ["COMPLETED"]

    refused = orch(orch_home, "api-key", "create", "--name", "x", "--scope", "admin", **env)
    assert refused.returncode == 2
    assert refused.stderr.startswith("Error: Not allowed:") and "'admin'" in refused.stderr
    deployment = public_server.request("POST", "/deployments/", agent, json={})
    assert deployment.status_code in (403, 404)  # 404 only while the deployments routes are not mounted


def test_bad_and_expired_keys_give_one_line(public_server: AuthServer, cli: Any, monkeypatch: Any) -> None:
    import datetime as dt

    monkeypatch.setenv("ORCH_API_URL", public_server.url)
    monkeypatch.setenv("ORCH_API_KEY", "orch_0123456789ab_" + "w" * 44)
    bad = cli("flow-run", "ls")
    assert bad.code == 2
    assert bad.err.strip() == "Error: Not authenticated: Invalid API key."
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    expiring = public_server.key("read", expires_at=soon)
    monkeypatch.setenv("ORCH_API_KEY", expiring)
    assert cli("flow-run", "ls", "--json").code == 0
    from orch.control_plane.db.engine import Database

    db = Database(public_server.db_url, pool="null")
    with db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE api_keys SET expires_at = '2000-01-01 00:00:00.000000'")
    db.dispose()
    expired = cli("flow-run", "ls")
    assert expired.code == 2
    assert expired.err.startswith("Error: Not authenticated: API key orch_") and "expired" in expired.err
    assert secret_of(expiring) not in expired.output


def test_login_refuses_a_wrong_key_and_saves_nothing(public_server: AuthServer, cli: Any, orch_home: Path) -> None:
    wrong = cli("auth", "login", "--key", "orch_0123456789ab_" + "v" * 44, "--url", public_server.url)
    assert wrong.code == 2 and wrong.err.startswith("Error: Not authenticated: Invalid API key.")
    assert "v" * 44 not in wrong.output
    assert not (orch_home / "profiles.toml").exists()
    garbage = cli("auth", "login", "--key", "hunter2-hunter2", "--url", public_server.url)
    assert garbage.code == 2 and "not an orch API key" in garbage.err and "hunter2" not in garbage.output
    no_url = cli("auth", "login", "--key", public_server.key("read"))
    assert no_url.code == 2 and "--url" in no_url.err


def test_login_prompts_for_the_key_when_not_given(public_server: AuthServer, cli: Any, orch_home: Path) -> None:
    key = public_server.key("deploy")
    result = cli("auth", "login", "--url", public_server.url + "/api/", input=key + "\n")
    assert result.code == 0, result.err
    assert secret_of(key) not in result.output
    assert profile_values(orch_home) == {"ORCH_API_URL": public_server.url, "ORCH_API_KEY": key}


def test_environment_overrides_the_profile(public_server: AuthServer, cli: Any, monkeypatch: Any) -> None:
    good = public_server.key("read")
    assert cli("auth", "login", "--key", good, "--url", public_server.url).code == 0
    monkeypatch.setenv("ORCH_API_KEY", "orch_0123456789ab_" + "u" * 44)
    overridden = cli("flow-run", "ls")
    assert overridden.code == 2 and "Invalid API key" in overridden.err
    monkeypatch.delenv("ORCH_API_KEY")
    assert cli("flow-run", "ls").code == 0
    monkeypatch.setenv("ORCH_API_URL", "http://127.0.0.1:9")  # nothing listens on port 9 (discard)
    status = cli("config", "view", "--json")
    rows = {r["setting"]: r for r in json.loads(status.out)["settings"]}
    assert rows["ORCH_API_URL"]["source"] == "environment" and rows["ORCH_API_KEY"]["source"] == "profile"


def test_api_key_commands(public_server: AuthServer, cli: Any, monkeypatch: Any) -> None:
    admin = public_server.key("admin")
    monkeypatch.setenv("ORCH_API_URL", public_server.url)
    monkeypatch.setenv("ORCH_API_KEY", admin)
    created = cli("api-key", "create", "--name", "ci", "--scope", "deploy", "--expires", "90d", "--json")
    assert created.code == 0, created.err
    body = json.loads(created.out)
    assert {"id", "name", "scope", "key", "prefix", "expires_at"} <= set(body)
    assert body["scope"] == "deploy" and body["expires_at"] is not None
    plain = cli("api-key", "create", "--name", "agent-1", "--scope", "agent")
    assert plain.code == 0
    agent_key = plain.out.strip().splitlines()[-1]
    assert plain.out.strip() == agent_key  # stdout holds the key and nothing else
    assert "shown only this once" in plain.err

    listed = cli("api-key", "ls")
    assert listed.code == 0 and body["prefix"] in listed.out and "agent-1" in listed.out
    listed_json = cli("api-key", "ls", "--json")
    for secret in (secret_of(body["key"]), secret_of(agent_key), secret_of(admin)):
        assert secret not in listed.output + listed_json.output

    revoked = cli("api-key", "revoke", agent_key.rsplit("_", 1)[0])
    assert revoked.code == 0 and "Revoked" in revoked.out and secret_of(agent_key) not in revoked.output
    assert public_server.get("/auth/whoami", agent_key).status_code == 401
    assert cli("api-key", "revoke", body["id"]).code == 0
    assert cli("api-key", "ls", "--json").out.count('"prefix"') == 1  # only the admin key is active
    assert cli("api-key", "ls", "--all", "--json").out.count('"prefix"') == 3

    for args, message in [
        (("api-key", "create", "--name", "x", "--scope", "root"), "Invalid --scope"),
        (("api-key", "create", "--name", "x", "--scope", "read", "--expires", "soon"), "Invalid --expires"),
        (("api-key", "create", "--name", "x", "--scope", "read", "--expires", "2001-01-01"), "in the past"),
        (("api-key", "revoke", "orch_ffffffffffff"), "No API key orch_ffffffffffff"),
        (("api-key", "revoke", "../../etc/passwd"), "Name the key by its id"),
    ]:
        result = cli(*args)
        assert result.code == 2 and message in result.err, (args, result)


def test_profiles(cli: Any, orch_home: Path) -> None:
    assert cli("profile", "create", "prod").code == 0
    assert cli("profile", "create", "prod").code == 2
    assert cli("profile", "create", "../x").code == 2
    assert cli("profile", "use", "prod").code == 0
    assert cli("config", "set", "ORCH_API_URL=https://orch.example.com/api").code == 0
    assert cli("profile", "create", "staging", "--from", "prod").code == 0
    rows = {r["name"]: r for r in json.loads(cli("profile", "ls", "--json").out)}
    assert rows["prod"]["active"] and rows["staging"]["api_url"] == "https://orch.example.com"
    deleting_active = cli("profile", "delete", "prod")
    assert deleting_active.code == 2 and "is active" in deleting_active.err
    assert cli("profile", "delete", "staging").code == 0
    assert cli("profile", "use", "staging").code == 2
    assert stat.S_IMODE((orch_home / "profiles.toml").stat().st_mode) == 0o600


def test_config_set_unset_view(cli: Any, orch_home: Path, monkeypatch: Any) -> None:
    key = "orch_0123456789ab_" + "s" * 44
    assert cli("config", "set", f"ORCH_API_KEY={key}", "api_timeout=5").code == 0
    view = cli("config", "view")
    assert view.code == 0 and "orch_0123456789ab_********" in view.out and "s" * 44 not in view.output
    as_json = cli("config", "view", "--json")
    assert "s" * 44 not in as_json.out
    assert profile_values(orch_home)["ORCH_API_TIMEOUT"] == "5"
    monkeypatch.setenv("ORCH_API_KEY", key)
    assert "s" * 44 not in cli("config", "view").output  # environment values are masked too
    monkeypatch.delenv("ORCH_API_KEY")
    for args, message in [
        (("config", "set", "ORCH_API_TIMEOUT=-1"), "Invalid ORCH_API_TIMEOUT"),
        (("config", "set", "ORCH_API_URL=ftp://x"), "Invalid ORCH_API_URL"),
        (("config", "set", "ORCH_SERVER_HOST=0.0.0.0"), "Unknown setting"),
        (("config", "set", "ORCH_HOME=/tmp"), "cannot be saved in a profile"),
        (("config", "set", "novalue"), "Expected KEY=VALUE"),
        (("config", "unset", "ORCH_API_URL"), "Not set in profile"),
    ]:
        result = cli(*args)
        assert result.code == 2 and message in result.err, (args, result)
    assert cli("config", "unset", "ORCH_API_KEY", "api_timeout").code == 0
    assert profile_values(orch_home) == {}
    url_with_password = "https://user:pa55word@orch.example.com"
    assert cli("config", "set", f"ORCH_API_URL={url_with_password}").code == 0
    assert "pa55word" not in cli("config", "view").output


def test_status_in_embedded_mode(cli: Any) -> None:
    result = cli("auth", "status", "--json")
    assert result.code == 0
    assert json.loads(result.out)["embedded"] is True


def test_embedded_mode_manages_the_local_databases_keys(cli: Any, orch_home: Path) -> None:
    """Without ORCH_API_URL, ``orch api-key`` works in-process on the local database: no key needed."""
    created = cli("api-key", "create", "--name", "local", "--scope", "admin", "--json")
    assert created.code == 0, created.err
    assert json.loads(cli("api-key", "ls", "--json").out)[0]["name"] == "local"
    assert os.path.exists(orch_home / "orch.db")
