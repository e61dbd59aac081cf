"""AWS emulators for orch's tests: a moto server and LocalStack, each a real process on loopback.

orch reaches AWS only through boto3, and boto3 honours `AWS_ENDPOINT_URL`, so a test points orch's unchanged code
at an emulator by setting environment variables (`aws_env`), never by patching orch.

Fixtures (tests that use the emulators are marked `aws` and `integration` automatically):

    moto_server   session   `MotoServer`: `.endpoint_url`, `.region`, `.reset()` (moto's /moto-api/reset),
                            `.client(service)`, `.env()`; ready in well under a second
    moto          function  the same server, reset before the test: each test starts from an empty account
    localstack    session   `LocalStackServer`: `.endpoint_url`, `.region`, `.resources` (what
                            `localstack/ctl.py provision` created: buckets, queues, secret, services-tick rule),
                            `.client(service)`, `.env()`, `.start_seconds`. Skips with the reason when
                            LocalStack's venv cannot be created; with ORCH_TEST_REQUIRE_LOCALSTACK=1 (CI) it
                            fails instead, so a broken setup cannot hide behind a skip.
    aws_env       function  `aws_env(emulator_or_url) -> dict`: sets AWS_ENDPOINT_URL, dummy credentials,
                            AWS_DEFAULT_REGION=us-east-1 and AWS_EC2_METADATA_DISABLED=true (monkeypatch), hides
                            ~/.aws and drops boto3's cached default session

`aws_environment(endpoint_url)` returns the same variables as a dict, for subprocesses (agents, servers) that a
test starts. The emulators' start and stop times are printed in pytest's terminal summary.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import boto3
import pytest

from tests.plugins.parallel import hand_to_controller
from tests.plugins.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
CTL_PATH = REPO_ROOT / "localstack" / "ctl.py"
REGION = "us-east-1"
REQUIRE_LOCALSTACK_VAR = "ORCH_TEST_REQUIRE_LOCALSTACK"
EMULATOR_FIXTURES = frozenset({"moto_server", "moto", "localstack"})
# Variables that would send boto3 somewhere other than the emulator, or to real credentials.
_AWS_VARS_TO_DROP = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)

# Start/stop durations, printed by pytest_terminal_summary.
_timings: dict[str, float] = {}
# Read once at import: tests/conftest.py removes every ORCH_* variable for each test, and a session fixture
# requested through getfixturevalue is set up after that has happened.
_HARNESS_ENV = {
    name: os.environ[name] for name in (REQUIRE_LOCALSTACK_VAR, "ORCH_LOCALSTACK_PYTHON") if name in os.environ
}


def aws_environment(endpoint_url: str | None) -> dict[str, str]:
    """The environment that makes any boto3 client talk to the emulator at endpoint_url with dummy credentials
    (moto's conventional ``test``/``test``: not a secret). ``None``: no endpoint, for moto's in-process
    ``mock_aws``, which catches the calls inside botocore."""
    endpoint = {"AWS_ENDPOINT_URL": endpoint_url} if endpoint_url is not None else {}
    return {
        **endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        # a developer's ~/.aws (profiles, per-service endpoint_url) must not leak into tests
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


@dataclass
class Emulator:
    """An AWS-compatible endpoint on loopback."""

    endpoint_url: str
    region: str = REGION

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for this emulator that ignores the process environment (for a test's own checks)."""
        session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=self.region)
        return session.client(service, endpoint_url=self.endpoint_url, **kwargs)  # type: ignore[call-overload]

    def env(self) -> dict[str, str]:
        return aws_environment(self.endpoint_url)


@dataclass
class MotoServer(Emulator):
    """`moto_server` running as a subprocess of the test session."""

    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    start_seconds: float = 0.0

    def reset(self) -> None:
        """Forget every resource in every service (moto's /moto-api/reset)."""
        # our own loopback server over http
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()


@dataclass
class LocalStackServer(Emulator):
    """LocalStack in host mode, started through localstack/ctl.py, with orch's resources provisioned."""

    state_dir: Path = Path()
    log_path: Path = Path()
    resources: dict[str, Any] = field(default_factory=dict)
    start_seconds: float = 0.0


def load_ctl() -> ModuleType:
    """Import localstack/ctl.py (a script folder, not a package: `localstack` would shadow LocalStack's own)."""
    name = "orch_localstack_ctl"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, CTL_PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {CTL_PATH}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (our loopback server)
            return bool(response.status < 500)
    except urllib.error.HTTPError as error:
        return error.code < 500
    except OSError:
        return False


def _moto_server_binary() -> str:
    # the one installed next to the interpreter running the tests, so moto matches the project venv
    beside = Path(sys.executable).parent / "moto_server"
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    if found is None:
        pytest.fail("moto_server is not installed: install the dev extra (`pip install -e '.[dev]'`)")
    return found


def _start_moto(log_path: Path, attempts: int = 3, timeout: float = 20.0) -> MotoServer:
    binary = _moto_server_binary()
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(aws_environment("unused"))
    del env["AWS_ENDPOINT_URL"]
    for _ in range(attempts):
        # another process may take the free port between our probe and moto's bind: then try another one
        port = free_port()
        endpoint_url = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                [binary, "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                # a killed test session must not leave the server behind
                preexec_fn=load_ctl().die_with_parent(),
            )
        deadline = started + timeout
        while process.poll() is None and time.monotonic() < deadline:
            if _answers(f"{endpoint_url}/moto-api/"):
                return MotoServer(
                    endpoint_url=endpoint_url,
                    process=process,
                    start_seconds=round(time.monotonic() - started, 2),
                )
            time.sleep(0.05)
        _stop_process(process)
    tail = log_path.read_text(errors="replace").splitlines()[-10:]
    pytest.fail(f"moto_server did not answer within {timeout:.0f} s; log tail:\n" + "\n".join(tail))


def _stop_process(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A moto server for the whole session; call `.reset()` (or use `moto`) for an empty account."""
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    server = _start_moto(log_path)
    _timings["moto_server start"] = server.start_seconds
    try:
        yield server
    finally:
        assert server.process is not None
        started = time.monotonic()
        _stop_process(server.process)
        _timings["moto_server stop"] = round(time.monotonic() - started, 2)


@pytest.fixture
def moto(moto_server: MotoServer) -> MotoServer:
    """The session's moto server, reset before this test."""
    moto_server.reset()
    return moto_server


def _unavailable(reason: str) -> NoReturn:
    """Skip, or fail where LocalStack is required (CI), with the exact reason."""
    if _HARNESS_ENV.get(REQUIRE_LOCALSTACK_VAR) == "1":
        pytest.fail(f"LocalStack is required ({REQUIRE_LOCALSTACK_VAR}=1) but unavailable: {reason}")
    pytest.skip(f"LocalStack unavailable: {reason}")


@pytest.fixture(scope="session")
def localstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackServer]:
    """LocalStack on a free loopback port with orch's resources provisioned, for the whole session."""
    ctl = load_ctl()
    started = time.monotonic()
    try:
        # a no-op when localstack/setup.sh already ran (CI runs it before the tests); else installs (~2 min)
        with pytest.MonkeyPatch.context() as patch:
            if "ORCH_LOCALSTACK_PYTHON" in _HARNESS_ENV:
                patch.setenv("ORCH_LOCALSTACK_PYTHON", _HARNESS_ENV["ORCH_LOCALSTACK_PYTHON"])
            ctl.setup(network_timeout=20)
    except ctl.CtlError as error:
        _unavailable(str(error))
    _timings["LocalStack venv check/setup"] = round(time.monotonic() - started, 2)

    state_dir = tmp_path_factory.mktemp("localstack")
    instance = ctl.start(port=free_port(), state_dir=state_dir, tied_to_caller=True)
    _timings["LocalStack start"] = instance.start_seconds
    try:
        started = time.monotonic()
        resources = ctl.provision(instance.endpoint_url, region=REGION)
        _timings["LocalStack provision"] = round(time.monotonic() - started, 2)
        yield LocalStackServer(
            endpoint_url=instance.endpoint_url,
            state_dir=state_dir,
            log_path=Path(instance.log_path),
            resources=resources,
            start_seconds=instance.start_seconds,
        )
    finally:
        # LocalStack sometimes hangs in its shutdown (1 stop in 5 here, with or without xdist); its data is
        # throwaway, so kill it after 15 s instead of ctl's default 30 s (a normal stop takes 3-10 s)
        stopped = ctl.stop(state_dir, grace=15.0)
        if stopped is not None:
            _timings["LocalStack stop"] = stopped


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[Emulator | str], dict[str, str]]:
    """`aws_env(emulator)` points boto3 (and so orch's AWS adapters) at the emulator for this test."""

    def point(target: Emulator | str) -> dict[str, str]:
        return _point_boto3(monkeypatch, target if isinstance(target, str) else target.endpoint_url)

    return point


@pytest.fixture
def in_process_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's in-process ``mock_aws`` for this test, boto3 pointed at it (dummy credentials, no endpoint)."""
    from moto import mock_aws

    _point_boto3(monkeypatch, None)
    with mock_aws():
        yield


def _point_boto3(monkeypatch: pytest.MonkeyPatch, endpoint_url: str | None) -> dict[str, str]:
    for name in list(os.environ):
        # per-service endpoints (AWS_ENDPOINT_URL_SQS...) would win over AWS_ENDPOINT_URL
        if name in _AWS_VARS_TO_DROP or name.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name)
    env = aws_environment(endpoint_url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # boto3's default session caches the credentials and config it resolved first
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    return env


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses an emulator is an `aws` and `integration` test, whether or not it says so."""
    for item in items:
        if EMULATOR_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.aws)
            item.add_marker(pytest.mark.integration)


def _summary() -> list[str]:
    if not _timings:
        return []
    return ["aws emulators: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in _timings.items())]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # trylast: after the session fixtures' teardown, which records the stop times
    hand_to_controller(session.config, _summary())


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in _summary():
        terminalreporter.write_line(line)
