"""The UI's routes over the real app in-process, on SQLite and PostgreSQL: pages, fragments, actions, sessions,
scopes and CSRF. No browser (tests/ui/test_browser.py drives Chromium against a real server)."""

from __future__ import annotations

import uuid
from html import unescape
from typing import Any

import pytest

from tests.ui.helpers import create_key, csrf_from, login, seed, state_of, ui_client

pytestmark = pytest.mark.integration


@pytest.fixture
def seeded(database: Any) -> Any:
    return seed(database)


# -- pages with authentication off (loopback, no keys): everything is allowed -------------------------------------


def test_every_page_renders_with_its_data(app: Any, seeded: Any) -> None:
    with ui_client(app) as ui:
        home = ui.get("/")
        assert home.status_code == 200
        assert "sad-heron" in home.text and "no rows" in home.text  # recent failure with its message
        assert "server-timing" in home.headers and "total;dur=" in home.headers["server-timing"]
        assert home.headers["cache-control"] == "no-store"

        runs = ui.get("/runs")
        assert runs.status_code == 200
        assert "busy-otter" in runs.text and "sad-heron" in runs.text
        assert 'hx-trigger="every 5s' in runs.text  # live refresh on the first page

        flows = ui.get("/flows")
        assert flows.status_code == 200 and "etl" in flows.text

        deployments = ui.get("/deployments")
        assert deployments.status_code == 200
        assert "etl/daily" in deployments.text
        assert "0 2 * * *" in deployments.text  # the cron next to the words
        assert "Europe/Paris" in deployments.text

        queues = ui.get("/work-queues")
        assert queues.status_code == 200 and "default" in queues.text

        keys = ui.get("/api-keys")
        assert keys.status_code == 200 and "Create key" in keys.text

        assert ui.get("/static/htmx.min.js").status_code == 200
        assert ui.get("/static/app.css").status_code == 200


def test_dashboard_shows_a_queue_backing_up_and_late_runs(app: Any, database: Any, seeded: Any) -> None:
    import datetime as dt

    from orch.control_plane.models import flow_runs
    from orch.control_plane.schemas.flow_runs import FlowRunCreate
    from orch.control_plane.schemas.states import StateCreate, StateDetails, StateType

    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    with database.session() as session:
        for name in ("waiting-1", "waiting-2"):
            flow_runs.create(
                session,
                FlowRunCreate(
                    flow_id=seeded.flow_id,
                    name=name,
                    work_queue_name="backlog",
                    state=StateCreate(type=StateType.SCHEDULED, state_details=StateDetails(scheduled_time=past)),
                ),
            )
        late, _ = flow_runs.create(
            session,
            FlowRunCreate(
                flow_id=seeded.flow_id,
                name="tardy-run",
                work_queue_name="backlog",
                state=StateCreate(type=StateType.SCHEDULED, state_details=StateDetails(scheduled_time=past)),
            ),
        )
        flow_runs.set_state(session, late.id, StateCreate(type=StateType.SCHEDULED, name="Late"))
        from orch.control_plane.models import work_queues

        work_queues.ensure(session, "backlog")
    with ui_client(app) as ui:
        html = ui.get("/").text
    backing_up = html.split('id="queues"')[1]
    assert "backlog" in backing_up and "<td>3</td>" in backing_up  # three due runs waiting
    assert "tardy-run" in html.split('id="late"')[1].split('id="queues"')[0]


def test_runs_list_filters_and_keyset_pages(app: Any, database: Any, seeded: Any) -> None:
    from orch.control_plane.models import flow_runs
    from orch.control_plane.schemas.flow_runs import FlowRunCreate

    with database.session() as session:
        for i in range(60):
            flow_runs.create(session, FlowRunCreate(flow_id=seeded.flow_id, name=f"bulk-{i:02d}", tags=["bulk"]))
    with ui_client(app) as ui:
        failed = ui.get("/runs", params={"state": "FAILED"})
        assert "sad-heron" in failed.text and "busy-otter" not in failed.text
        tagged = ui.get("/runs", params={"tag": "nightly"})
        assert "busy-otter" in tagged.text and "sad-heron" not in tagged.text
        by_deployment = ui.get("/runs", params={"deployment": str(seeded.deployment_id)})
        assert "busy-otter" in by_deployment.text and "sad-heron" not in by_deployment.text

        first = ui.get("/runs", params={"tag": "bulk"})
        names_first = set(_bulk_names(first.text))
        assert len(names_first) == 50
        next_link = first.text.split("data-next-page")[0].rsplit('href="', 1)[1].split('"')[0]
        second = ui.get(next_link.replace("&amp;", "&"))
        assert second.status_code == 200
        names_second = set(_bulk_names(second.text))
        assert len(names_second) == 10 and not names_first & names_second
        assert 'hx-trigger="every 5s' not in second.text  # deeper pages do not jump under the reader

        rows = ui.get("/runs", params={"part": "rows", "tag": "bulk"})
        assert rows.text.lstrip().startswith("<tbody") and "<html" not in rows.text

        bad = ui.get("/runs", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 400 and "Invalid cursor" in bad.text


def _bulk_names(html: str) -> list[str]:
    return [part.split("<")[0] for part in html.split(">bulk-")[1:]]


def test_run_page_shows_timeline_logs_subflows_and_failure(app: Any, seeded: Any) -> None:
    with ui_client(app) as ui:
        page = ui.get(f"/runs/{seeded.running}")
        assert page.status_code == 200
        html = unescape(page.text)
        for text in ("busy-otter", "extract-0", "extract-2", "child-run", "processed batch 0", '"who": "ada"'):
            assert text in html
        assert 'class="seg state-completed"' in html and 'class="seg state-running"' in html
        assert "Cancel run" in html and "Retry" not in html  # active run: cancel, not retry
        assert 'hx-get="/runs/' in html and "Load more lines" in html  # 250 lines: a second page
        assert 'role="log"' in html and 'aria-live="polite"' in html

        errors = ui.get(f"/runs/{seeded.running}", params={"level": 40})
        assert "batch 7 had a bad row" in errors.text and "processed batch 0" not in errors.text

        child = ui.get(f"/runs/{seeded.child}")
        assert "busy-otter" in child.text  # the parent run is linked

        failed = ui.get(f"/runs/{seeded.failed}")
        assert "ValueError: no rows" in failed.text and "Traceback (most recent call last)" in failed.text
        assert "Retry" in failed.text and "Cancel run" not in failed.text

        live = ui.get(f"/runs/{seeded.running}", params={"part": "live"})
        assert 'id="run-live"' in live.text and "<html" not in live.text and "every 3s" in live.text


def test_log_pages_follow_the_keyset_and_tail_while_running(app: Any, database: Any, seeded: Any) -> None:
    import datetime as dt

    from orch.control_plane.models import logs
    from orch.control_plane.schemas.logs import LogCreate

    with ui_client(app) as ui:
        page = ui.get(f"/runs/{seeded.running}")
        more = page.text.split("Load more lines")[0].rsplit('hx-get="', 1)[1].split('"')[0].replace("&amp;", "&")
        second = ui.get(more)
        assert "processed batch 249" in second.text and "processed batch 0<" not in second.text
        assert "Following new lines" in second.text  # the end: the run is active, so a poller follows
        tail = second.text.split('class="log-more muted" hx-get="')[1].split('"')[0].replace("&amp;", "&")
        assert ui.get(tail).text.count('class="log-line"') == 0
        with database.session() as session:
            logs.create_many(
                session,
                [
                    LogCreate(
                        level=20,
                        message="a brand new line",
                        timestamp=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5),
                        flow_run_id=seeded.running,
                    )
                ],
            )
        assert "a brand new line" in ui.get(tail).text


def test_unknown_run_and_deployment_answer_a_404_page(app: Any, seeded: Any) -> None:
    with ui_client(app) as ui:
        for path in (f"/runs/{uuid.uuid4()}", "/runs/not-an-id", f"/deployments/{uuid.uuid4()}", "/deployments/x"):
            response = ui.get(path)
            assert response.status_code == 404, path
            assert "<h1>" in response.text and "not found" in response.text
        assert ui.get(f"/runs/{uuid.uuid4()}/logs").status_code == 404


def test_actions_refuse_a_missing_or_wrong_csrf_token(app: Any, database: Any, seeded: Any) -> None:
    with ui_client(app) as ui:
        assert ui.post(f"/runs/{seeded.running}/cancel").status_code == 403  # no cookie, no token
        page = ui.get(f"/runs/{seeded.running}")
        token = csrf_from(page.text)
        assert ui.post(f"/runs/{seeded.running}/cancel", data={"csrf": "x" * len(token)}).status_code == 403
        cross_site = ui.post(
            f"/runs/{seeded.running}/cancel", data={"csrf": token}, headers={"Origin": "https://evil.example"}
        )
        assert cross_site.status_code == 403
        assert state_of(database, seeded.running) == "RUNNING"

        done = ui.post(f"/runs/{seeded.running}/cancel", data={"csrf": token})
        assert done.status_code == 303 and done.headers["location"].startswith(f"/runs/{seeded.running}")
        assert state_of(database, seeded.running) == "CANCELLING"
        by_htmx = ui.post(f"/runs/{seeded.failed}/retry", headers={"X-CSRF-Token": token, "HX-Request": "true"})
        assert by_htmx.status_code == 204 and by_htmx.headers["HX-Redirect"].startswith(f"/runs/{seeded.failed}")
        assert state_of(database, seeded.failed) == "SCHEDULED"

        again = ui.post(f"/runs/{seeded.running}/cancel", data={"csrf": token})
        assert again.status_code == 409 and "Refused" in again.text  # the rules' answer, shown on the page

        deleted = ui.post(f"/runs/{seeded.child}/delete", data={"csrf": token})
        assert deleted.status_code == 303 and state_of(database, seeded.child) is None
        assert ui.post(f"/runs/{seeded.child}/delete", data={"csrf": token}).status_code == 404


def test_run_form_validates_and_creates_a_typed_run(app: Any, database: Any, seeded: Any) -> None:
    from orch.control_plane.models import flow_runs

    with ui_client(app) as ui:
        page = ui.get(f"/deployments/{seeded.deployment_id}")
        assert page.status_code == 200
        html = page.text
        assert 'type="number" step="1"' in html and 'type="checkbox"' in html and "<select" in html
        assert "data-json" in html and 'value="world"' in html  # the deployment's default pre-filled
        token = csrf_from(html)
        form = {"csrf": token, "p.who": "ada", "p.times": "three", "p.excited.__bool": "1", "p.items": "[1, 2"}
        bad = ui.post(f"/deployments/{seeded.deployment_id}/run", data=form)
        assert bad.status_code == 422
        assert "Enter a whole number." in bad.text and "Not valid JSON" in bad.text
        assert 'value="three"' in bad.text  # what the user typed stays in the field

        # Past the form's own checks, the deployment model's schema validation speaks next to the field.
        form.update({"p.times": "-1", "p.items": '["a"]'})
        server_side = ui.post(f"/deployments/{seeded.deployment_id}/run", data=form)
        assert server_side.status_code == 422
        assert 'id="param-items-error"' in server_side.text or 'id="param-times-error"' in server_side.text

        form.update({"p.times": "3", "p.items": "[4, 5]", "p.excited": "true", "p.mode": "slow", "name": "from-ui"})
        created = ui.post(f"/deployments/{seeded.deployment_id}/run", data=form)
        assert created.status_code == 303, created.text
        run_id = uuid.UUID(created.headers["location"].split("/runs/")[1].split("?")[0])
    with database.session(write=False) as session:
        run = flow_runs.read(session, run_id)
        assert run is not None and run.name == "from-ui" and run.state_type == "SCHEDULED"
        assert run.parameters == {"who": "ada", "times": 3, "excited": True, "mode": "slow", "items": [4, 5]}
        assert run.work_queue_name == "default"


def test_pause_and_resume_a_deployment_and_a_queue(app: Any, database: Any, seeded: Any) -> None:
    from orch.control_plane.models import deployments, work_queues

    with ui_client(app) as ui:
        token = csrf_from(ui.get("/deployments").text)
        assert ui.post(f"/deployments/{seeded.deployment_id}/pause", data={"csrf": token}).status_code == 303
        with database.session(write=False) as session:
            row = deployments.read(session, seeded.deployment_id)
            assert row is not None and row.paused
        assert "Resume" in ui.get("/deployments").text
        assert ui.post(f"/deployments/{seeded.deployment_id}/resume", data={"csrf": token}).status_code == 303
        with database.session() as session:
            queue = work_queues.ensure(session, "default")
            queue_id = queue.id
        assert ui.post(f"/work-queues/{queue_id}/pause", data={"csrf": token}).status_code == 303
        with database.session(write=False) as session:
            queue = work_queues.read(session, queue_id)
            assert queue is not None and queue.paused


# -- authentication on ---------------------------------------------------------------------------------------------


def test_login_sets_a_signed_session_cookie_and_pages_need_it(app: Any, database: Any, seeded: Any) -> None:
    key = create_key(database, "read")
    with ui_client(app) as ui:
        away = ui.get("/runs?state=FAILED")
        assert away.status_code == 303 and away.headers["location"] == "/login?next=%2Fruns%3Fstate%3DFAILED"
        page = ui.get("/login")
        # Another last character (a key ends in "x" about one time in 60: then "x" would be the key itself).
        wrong = key[:-1] + ("y" if key.endswith("x") else "x")
        bad = ui.post("/login", data={"key": wrong, "csrf": csrf_from(page.text)})
        assert bad.status_code == 401 and "not a valid API key" in bad.text
        no_csrf = ui.post("/login", data={"key": key, "csrf": "nope"})
        assert no_csrf.status_code == 403

        done = login(ui, key)
        assert done.status_code == 303 and done.headers["location"] == "/runs"
        cookie = done.headers["set-cookie"]
        assert "orch_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Secure" not in cookie  # plain http on loopback
        assert key not in cookie and key.split("_")[2] not in cookie  # never the key itself
        assert ui.get("/runs").status_code == 200

        value = ui.cookies["orch_session"]
        forged = value[:-1] + ("0" if value[-1] != "0" else "1")  # one hex digit of the signature changed
        ui.cookies.clear()
        ui.cookies.set("orch_session", forged)
        assert ui.get("/runs").status_code == 303


def test_logout_ends_the_session_and_login_never_redirects_off_site(app: Any, database: Any) -> None:
    key = create_key(database, "read")
    with ui_client(app) as ui:
        login(ui, key)
        page = ui.get("/runs")
        assert page.status_code == 200
        assert ui.post("/logout", data={"csrf": "wrong"}).status_code == 403
        out = ui.post("/logout", data={"csrf": csrf_from(page.text)})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert ui.get("/runs").status_code == 303
        for target in ("https://evil.example/", "//evil.example/", "/\\evil.example/"):
            form = ui.get("/login")
            done = ui.post("/login", data={"key": key, "csrf": csrf_from(form.text), "next": target})
            assert done.status_code == 303 and done.headers["location"] == "/", target


def test_session_cookie_is_secure_over_https(app: Any, database: Any) -> None:
    key = create_key(database, "read")
    with ui_client(app, base_url="https://orch.example") as ui:
        done = login(ui, key)
        assert done.status_code == 303 and "Secure" in done.headers["set-cookie"]


def test_a_read_key_sees_no_actions_and_cannot_act(app: Any, database: Any, seeded: Any) -> None:
    read_key = create_key(database, "read")
    with ui_client(app) as ui:
        login(ui, read_key)
        run_page = ui.get(f"/runs/{seeded.running}")
        assert run_page.status_code == 200 and "busy-otter" in run_page.text
        for label in ("Cancel run", "Retry", "Delete"):
            assert f">{label}</button>" not in run_page.text
        deployment = ui.get(f"/deployments/{seeded.deployment_id}")
        assert "Run etl/daily" not in deployment.text and ">Pause</button>" not in deployment.text
        assert ">Pause queue</button>" not in ui.get("/work-queues").text
        assert 'href="/api-keys"' not in ui.get("/").text
        assert ui.get("/api-keys").status_code == 403

        token = csrf_from(run_page.text)  # the logout form carries the session's token
        refused = ui.post(f"/runs/{seeded.running}/cancel", data={"csrf": token})
        assert refused.status_code == 403 and "scope" in refused.text
        assert ui.post(f"/deployments/{seeded.deployment_id}/run", data={"csrf": token}).status_code == 403
        assert state_of(database, seeded.running) == "RUNNING"


def test_scopes_show_the_actions_they_allow(app: Any, database: Any, seeded: Any) -> None:
    agent_key, deploy_key = create_key(database, "agent"), create_key(database, "deploy")
    with ui_client(app) as ui:
        login(ui, agent_key)
        page = ui.get(f"/runs/{seeded.running}").text
        assert ">Cancel run</button>" in page and ">Delete</button>" not in page
    with ui_client(app) as ui:
        login(ui, deploy_key)
        page = ui.get(f"/runs/{seeded.running}").text
        assert ">Cancel run</button>" in page and ">Delete</button>" in page
        assert "Run etl/daily" in ui.get(f"/deployments/{seeded.deployment_id}").text
        assert ui.get("/api-keys").status_code == 403


def test_admin_creates_a_key_shown_once_and_revocation_ends_sessions(app: Any, database: Any) -> None:
    admin = create_key(database, "admin")
    with ui_client(app) as ui:
        login(ui, admin)
        page = ui.get("/api-keys")
        assert page.status_code == 200
        created = ui.post("/api-keys", data={"csrf": csrf_from(page.text), "name": "ci", "scope": "read"})
        assert created.status_code == 201
        new_key = created.text.split('data-testid="new-key">')[1].split("<")[0]
        assert new_key.startswith("orch_")
        listing = ui.get("/api-keys").text
        assert new_key not in listing and new_key.rsplit("_", 1)[0] in listing  # the public id only

        with ui_client(app) as reader:
            login(reader, new_key)
            assert reader.get("/runs").status_code == 200
            key_id = listing.split(f"{new_key.rsplit('_', 1)[0]}")[0]
            revoke_ids = [part.split("/revoke")[0] for part in listing.split('action="/api-keys/')[1:]]
            assert revoke_ids and key_id  # one revoke form per active key
            from orch.control_plane.models import api_keys

            with database.session(write=False) as session:
                row = api_keys.read_by_prefix(session, new_key.rsplit("_", 1)[0])
                assert row is not None and str(row.id) in revoke_ids
                target = row.id
            revoked = ui.post(f"/api-keys/{target}/revoke", data={"csrf": csrf_from(listing)})
            assert revoked.status_code == 303
            assert reader.get("/runs").status_code == 303  # the very next request: back to the login page


def test_a_bearer_header_works_without_csrf(app: Any, database: Any, seeded: Any) -> None:
    deploy_key = create_key(database, "deploy")
    with ui_client(app) as ui:
        headers = {"Authorization": f"Bearer {deploy_key}"}
        assert ui.get("/runs", headers=headers).status_code == 200
        done = ui.post(f"/runs/{seeded.running}/cancel", headers=headers)
        assert done.status_code == 303
        assert ui.get("/runs", headers={"Authorization": "Bearer orch_nope_" + "x" * 40}).status_code == 401
