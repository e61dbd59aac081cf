"""The UI in a real browser: headless Chromium (Debian's, driven by Playwright for Python) against a real
``orch server start`` process and a real agent process (``orch agent start -q default``) running deployment runs.

One story, in order, because each step needs the previous one's state: deploy ``examples/hello`` and a small
project whose flow sleeps; open the dashboard; start a hello run from the Run form with parameters and watch it
complete; open its logs; start a long run and cancel it from its page; then create API keys (which turns
authentication on), log in with a ``read`` key and see pages without action buttons, and with an ``admin`` key see
the API keys page.

Screenshots of each main page go to the test's ``tmp_path/screenshots``; with ``ORCH_UI_SCREENSHOTS=DIR`` they are
also copied to ``DIR`` (``docs/screenshots`` keeps the latest set for the README).

Without Chromium the test is skipped with the reason; with ``ORCH_TEST_REQUIRE_BROWSER=1`` (CI, after
``scripts/install-browser.sh``) it fails instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, ServerProcess, free_port, orch_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Read at import: the autouse ``orch_home`` fixture removes every ORCH_* variable before a test runs.
REQUIRE_BROWSER = os.environ.get("ORCH_TEST_REQUIRE_BROWSER") == "1"
KEEP_SCREENSHOTS = os.environ.get("ORCH_UI_SCREENSHOTS")
SLEEPY_FLOW = textwrap.dedent(
    """
    import time

    from orch import flow, get_run_logger


    @flow(name="sleepy")
    def sleepy(seconds: float = 120.0) -> str:
        get_run_logger().info("sleeping for %s s", seconds)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.2)
        return "woke up"
    """
)
SLEEPY_YAML = textwrap.dedent(
    """
    deployments:
      - name: long
        entrypoint: flows.py:sleepy
        work_queue: default
    """
)


def _unavailable(reason: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"ORCH_TEST_REQUIRE_BROWSER=1 but {reason} (run scripts/install-browser.sh)")
    pytest.skip(reason)


@pytest.fixture
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed")
    if not Path(CHROMIUM).exists():
        _unavailable("Debian's chromium is not installed")
    with sync_playwright() as p:
        # Playwright gives each launch a fresh, empty profile folder (the --user-data-dir the flags above need).
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


def _cli(env: dict[str, str], *args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "orch.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"orch {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Shots:
    """Screenshots of the main pages, in tmp_path and (with ORCH_UI_SCREENSHOTS) a kept folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.keep = Path(KEEP_SCREENSHOTS) if KEEP_SCREENSHOTS else None
        self.taken: list[Path] = []

    def __call__(self, page: Any, name: str) -> None:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=False)
        assert path.stat().st_size > 5_000
        self.taken.append(path)
        if self.keep is not None:
            self.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, self.keep / path.name)


def _state_text(page: Any) -> str:
    return str(page.locator('[data-testid="run-state"] .state').inner_text()).strip()


def test_the_ui_in_a_browser_against_a_server_and_an_agent(browser: Any, orch_home: Path, tmp_path: Path) -> None:
    from tests.agents.helpers import AgentProcess

    server = ServerProcess(orch_env(orch_home), free_port(), tmp_path / "server.log")
    shots = Shots(tmp_path / "screenshots")
    try:
        server.wait_ready()
        env = orch_env(orch_home, ORCH_API_URL=server.url)
        _cli(env, "deploy", "--dir", str(REPO_ROOT / "examples" / "hello"), "--all")
        sleepy = tmp_path / "sleepy"
        sleepy.mkdir()
        (sleepy / "flows.py").write_text(SLEEPY_FLOW)
        (sleepy / "orch.yaml").write_text(SLEEPY_YAML)
        _cli(env, "deploy", "--dir", str(sleepy), "--all")
        with AgentProcess(["-q", "default", "--name", "ui-agent"], env, tmp_path / "agent.log") as agent:
            context = browser.new_context(viewport={"width": 1280, "height": 860})
            page = context.new_page()
            page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before cancel

            # The dashboard, then the deployments with their schedules in words.
            page.goto(server.url + "/")
            assert page.get_by_role("heading", name="Dashboard").is_visible()
            page.goto(server.url + "/deployments")
            assert page.get_by_text("hello/nightly").is_visible()
            assert page.get_by_text("0 2 * * *").first.is_visible()

            # Run hello from its form, with parameters; the run page follows it live to Completed.
            page.get_by_role("link", name="hello/nightly").click()
            page.get_by_label("who").fill("browser")
            page.get_by_label("times").fill("2")
            page.get_by_label("excited").check()
            shots(page, "deployment-run-form")
            page.get_by_role("button", name="Run hello/nightly").click()
            page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}\?notice=created"))
            run_url = page.url.split("?")[0]
            page.wait_for_function(
                "() => document.querySelector('[data-testid=run-state] .state')?.textContent.trim() === 'Completed'",
                timeout=120_000,
            )
            assert '"who": "browser"' in page.locator("#params ~ pre").inner_text()
            # Its logs (reloaded: the last lines may be flushed after the final state).
            _wait(
                lambda: page.goto(run_url) is not None and "Hello, browser!" in page.locator("#log-lines").inner_text(),
                60,
                "the run's log lines",
            )
            assert page.locator("#log-lines .log-line").count() >= 2
            assert page.get_by_role("heading", name="Result").is_visible()
            shots(page, "run-completed")

            # A long run, cancelled from its page while it runs.
            deployments = page.goto(server.url + "/deployments")
            assert deployments is not None
            page.get_by_role("link", name="sleepy/long").click()
            page.get_by_label("seconds").fill("300")
            page.get_by_role("button", name="Run sleepy/long").click()
            page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
            page.wait_for_function(
                "() => document.querySelector('[data-testid=run-state] .state')?.textContent.trim() === 'Running'",
                timeout=120_000,
            )
            shots(page, "run-running")
            page.get_by_role("button", name="Cancel run").click()
            page.wait_for_load_state()
            page.wait_for_function(
                "() => document.querySelector('[data-testid=run-state] .state')?.textContent.trim() === 'Cancelled'",
                timeout=60_000,
            )
            assert page.get_by_role("button", name="Retry").is_visible()

            # The other pages, for the record.
            for path, name in (
                ("/", "dashboard"),
                ("/runs", "runs"),
                ("/flows", "flows"),
                ("/deployments", "deployments"),
                ("/work-queues", "work-queues"),
            ):
                page.goto(server.url + path)
                assert page.locator("main h1").is_visible()
                shots(page, name)
            assert page.get_by_text("ui-agent").first.is_visible()  # the agent, with its last-seen time
            page.goto(server.url + "/runs")
            page.emulate_media(color_scheme="dark")
            shots(page, "runs-dark")
            page.emulate_media(color_scheme="light")
            context.close()
            assert agent.proc.poll() is None, agent.text()[-3000:]
            agent.terminate()

        # Keys turn authentication on: log in with a read key, see no action buttons; an admin sees API keys.
        admin = json.loads(_cli(env, "api-key", "create", "--name", "admin", "--scope", "admin", "--json"))["key"]
        admin_env = {**env, "ORCH_API_KEY": admin}
        reader = json.loads(_cli(admin_env, "api-key", "create", "--name", "viewer", "--scope", "read", "--json"))
        time.sleep(2.5)  # the server notices the first key within its key-check interval (2 s)

        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        page.goto(server.url + "/runs")
        page.wait_for_url(re.compile(r"/login\?next="))
        shots(page, "login")
        page.get_by_label("API key").fill(reader["key"])
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(server.url + "/runs")
        cookie = next(c for c in context.cookies() if c["name"] == "orch_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and reader["key"] not in cookie["value"]
        assert page.get_by_test_id("scope").inner_text() == "read"
        page.goto(run_url)
        assert page.get_by_role("heading", name="Parameters").is_visible()
        for label in ("Cancel run", "Retry", "Delete"):
            assert page.get_by_role("button", name=label).count() == 0
        shots(page, "run-read-only")
        page.goto(server.url + "/deployments")
        assert page.get_by_role("link", name="Run…").count() == 0
        assert page.get_by_role("link", name="API keys").count() == 0
        context.close()

        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        page.goto(server.url + "/login")
        page.get_by_label("API key").fill(admin)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(server.url + "/")
        page.get_by_role("link", name="API keys").click()
        assert page.get_by_role("cell", name="viewer").is_visible()
        shots(page, "api-keys")
        context.close()
    finally:
        server.stop()
    assert len(shots.taken) >= 10
