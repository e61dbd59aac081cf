#!/usr/bin/env python3
"""Run LocalStack for orch on this machine, without Docker ("host mode").

LocalStack emulates the AWS services orch's control plane uses (SQS, S3, EventBridge rules, Secrets
Manager...) as one HTTP server. There is no Docker engine here, so instead of the usual container we install
`localstack-core` into its own venv (`localstack/.venv`) and run its entry point `localstack.runtime.main`
directly (through a one-line bootstrap that gives S3 a folder of the instance's own, see RUNTIME_BOOTSTRAP), with
the environment that keeps it on loopback and offline (measured in shared/notes/aws-locally.md; every variable
below was needed).

Commands (each prints one clear line and exits non-zero on failure):

    setup      create/refresh localstack/.venv from requirements.txt (fast no-op when the stamp matches)
    start      start LocalStack in the background on 127.0.0.1:PORT and wait until it is healthy
    stop       SIGTERM it, wait, and clean the folders it leaves behind
    status     print whether it runs, as JSON
    provision  create orch's resources idempotently (buckets, queues, secret, EventBridge rule) and
               print them as JSON

The pytest plugin (tests/plugins/aws.py) imports this file too, so everything a command does is a plain
function here. It uses only the standard library, except `provision`, which needs boto3 and re-executes
itself with LocalStack's venv (which has boto3) when the running interpreter lacks it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
DEFAULT_VENV = HERE / ".venv"
DEFAULT_STATE_DIR = HERE / ".state"
DEFAULT_PORT = 4566
DEFAULT_REGION = "us-east-1"
# Only what orch needs; ECS, RDS and Lambda are not here on purpose (paid tier / Docker, see README.md).
SERVICES = "sqs,s3,events,iam,sts,logs,secretsmanager,scheduler,cloudformation,ssm"
STAMP_NAME = ".orch-requirements.sha256"
PID_NAME = "localstack.pid"
INSTANCE_NAME = "instance.json"
LOG_NAME = "localstack.log"
# The preferred interpreter, then the fallback that runs the older localstack-core pinned in requirements.txt.
PREFERRED_PYTHON = (3, 13)
FALLBACK_PYTHON = (3, 11)


class CtlError(Exception):
    """A failure explained in one line; the CLI prints it and exits 1."""


def log(message: str) -> None:
    """Progress goes to stderr so that stdout stays clean JSON for `status` and `provision`."""
    print(f"[localstack] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# setup: LocalStack's own venv
# --------------------------------------------------------------------------------------------------


def _python_version(executable: Path) -> tuple[int, int] | None:
    """The (major, minor) of an interpreter that can create venvs, or None when it cannot be used."""
    try:
        out = subprocess.run(
            [str(executable), "-c", "import sys, venv, ensurepip; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
        return int(out[0]), int(out[1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _pyenv_root() -> Path | None:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    default = Path.home() / ".pyenv"
    if default.is_dir():
        return default
    pyenv = shutil.which("pyenv")
    if pyenv:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            root = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30).stdout.strip()
            if root:
                return Path(root)
    return None


def _candidates(version: tuple[int, int]) -> Iterator[Path]:
    """Interpreters of one minor version: pyenv's installs (newest patch first), then PATH."""
    major, minor = version
    root = _pyenv_root()
    if root is not None:
        installs = sorted(
            (root / "versions").glob(f"{major}.{minor}.*"),
            key=lambda p: [int(x) if x.isdigit() else -1 for x in p.name.split(".")],
            reverse=True,
        )
        for install in installs:
            yield install / "bin" / "python3"
    found = shutil.which(f"python{major}.{minor}")
    if found:
        yield Path(found)
    # the interpreter running this script, e.g. the project's 3.11 venv
    yield Path(sys.executable)


def find_python() -> Path:
    """The interpreter for LocalStack's venv: $ORCH_LOCALSTACK_PYTHON, else Python 3.13, else Python 3.11."""
    override = os.environ.get("ORCH_LOCALSTACK_PYTHON")
    if override:
        if _python_version(Path(override)) is None:
            raise CtlError(f"ORCH_LOCALSTACK_PYTHON={override} is not a Python that can create a venv")
        return Path(override)
    for version in (PREFERRED_PYTHON, FALLBACK_PYTHON):
        for candidate in _candidates(version):
            if candidate.exists() and _python_version(candidate) == version:
                return candidate
    raise CtlError(
        "no Python 3.13 (pyenv: `pyenv install 3.13.0`) nor Python 3.11 found to run LocalStack; "
        "set ORCH_LOCALSTACK_PYTHON to one"
    )


def requirements_stamp(python_version: tuple[int, int]) -> str:
    """What an installed venv must match: the requirements file and the interpreter's minor version."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    digest.update(f"python{python_version[0]}.{python_version[1]}".encode())
    return digest.hexdigest()


def venv_python(venv: Path = DEFAULT_VENV) -> Path:
    return venv / "bin" / "python"


def venv_is_current(venv: Path = DEFAULT_VENV) -> bool:
    """True when the venv was installed from the current requirements.txt (the fast path of `setup`)."""
    stamp = venv / STAMP_NAME
    python = venv_python(venv)
    if not (stamp.is_file() and python.exists()):
        return False
    version = _python_version(python)
    return version is not None and stamp.read_text().strip() == requirements_stamp(version)


def _run_pip(python: Path, log_path: Path, network_timeout: int | None) -> None:
    """pip install -r requirements.txt, full output to a log file, a progress line every 25 packages."""
    cmd = [str(python), "-m", "pip", "install", "--progress-bar", "off", "--disable-pip-version-check"]
    if network_timeout is not None:
        # fail within about a minute without a registry instead of pip's long retry schedule
        cmd += ["--timeout", str(network_timeout), "--retries", "1"]
    cmd += ["-r", str(REQUIREMENTS)]
    started = time.monotonic()
    collected = 0
    with (
        log_path.open("w") as out,
        subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL
        ) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if line.startswith("Collecting"):
                collected += 1
                if collected % 25 == 0:
                    log(f"  resolved {collected} packages ({time.monotonic() - started:.0f} s)")
            elif line.startswith("Installing collected packages"):
                log(f"  installing {collected} packages ({time.monotonic() - started:.0f} s)")
        code = proc.wait()
    if code != 0:
        tail = [line.strip() for line in log_path.read_text().splitlines() if line.strip()][-1:]
        reason = tail[0] if tail else f"exit code {code}"
        raise CtlError(f"pip install failed: {reason} (full log: {log_path})")


def setup(venv: Path = DEFAULT_VENV, state_dir: Path = DEFAULT_STATE_DIR, network_timeout: int | None = None) -> Path:
    """Create or refresh LocalStack's venv; a no-op (well under a second) when its stamp is current.

    network_timeout (seconds) makes pip give up quickly when the package registry cannot be reached.
    """
    if venv_is_current(venv):
        log(f"venv up to date: {venv}")
        return venv_python(venv)
    python = find_python()
    version = _python_version(python)
    assert version is not None
    existing = _python_version(venv_python(venv)) if venv_python(venv).exists() else None
    if existing != version and venv.exists():
        # a venv of another Python (or a broken one) cannot be upgraded in place
        log(f"removing {venv} (Python {existing} != {version})")
        shutil.rmtree(venv)
    started = time.monotonic()
    if not venv.exists():
        log(f"creating venv {venv} with {python} (Python {version[0]}.{version[1]})")
        result = subprocess.run([str(python), "-m", "venv", str(venv)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise CtlError(f"creating the venv with {python} failed: {last}")
    state_dir.mkdir(parents=True, exist_ok=True)
    log(f"installing {REQUIREMENTS.name} (1.5-4.5 minutes and 500 MB the first time)")
    (venv / STAMP_NAME).unlink(missing_ok=True)
    _run_pip(venv_python(venv), state_dir / "setup.log", network_timeout)
    (venv / STAMP_NAME).write_text(requirements_stamp(version) + "\n")
    log(f"venv ready in {time.monotonic() - started:.1f} s")
    return venv_python(venv)


# --------------------------------------------------------------------------------------------------
# start / stop / status
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    """A running LocalStack: what `start` writes to instance.json and what the other commands read back."""

    pid: int
    port: int
    endpoint_url: str
    state_dir: str
    log_path: str
    start_seconds: float


# LocalStack's S3 keeps object data under a fixed folder (provider.py: DEFAULT_S3_TMP_DIR =
# "/tmp/localstack-s3-storage"), whatever TMPDIR says, and no setting moves it: two instances on one machine (two
# test sessions, or pytest-xdist workers) would share it, and one's bucket deletion or clean-up would pull the other's
# object files away. So LocalStack is started through this bootstrap, which points that module constant at a folder
# of the instance's own state dir before the S3 provider is created, then runs LocalStack's usual entry point.
# The command line still names `localstack.runtime.main`, which is how _is_localstack recognises the process.
S3_DIR_VAR = "ORCH_LOCALSTACK_S3_DIR"
RUNTIME_BOOTSTRAP = (
    "import os, runpy; import localstack.services.s3.provider as s3; "
    f"s3.DEFAULT_S3_TMP_DIR = os.environ['{S3_DIR_VAR}']; "
    "runpy.run_module('localstack.runtime.main', run_name='__main__', alter_sys=True)"
)


def localstack_env(port: int, state_dir: Path, venv: Path = DEFAULT_VENV) -> dict[str, str]:
    """The environment that keeps LocalStack offline and on loopback (each one was needed, see the notes)."""
    # Start from the caller's environment for PATH, HOME and locale, but drop anything that could reach real
    # AWS or a LocalStack account: the emulator gets dummy credentials only.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "LOCALSTACK_", "PYTHON", "VIRTUAL_ENV"))
        and key not in {"API_ENDPOINT", "ANALYTICS_API", "DOCKER_HOST", "SERVICES", "DEBUG"}
    }
    host = f"127.0.0.1:{port}"
    env.update(
        {
            "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            # the default server binds 0.0.0.0; hypercorn honours the loopback address
            "GATEWAY_LISTEN": host,
            "GATEWAY_SERVER": "hypercorn",
            "LOCALSTACK_HOST": host,
            # queue URLs with a host name that does not resolve here otherwise
            "SQS_ENDPOINT_STRATEGY": "path",
            "OVERRIDE_IN_DOCKER": "0",
            "FILESYSTEM_ROOT": str(state_dir / "fs"),
            # LocalStack deletes $TMPDIR/localstack on start and stop: it must be a folder of ours
            "TMPDIR": str(state_dir / "tmp"),
            # S3's object data: this instance's own folder (see RUNTIME_BOOTSTRAP)
            S3_DIR_VAR: str(state_dir / "s3"),
            "DNS_ADDRESS": "0",
            # otherwise shutdown hangs offline trying to flush analytics events
            "DISABLE_EVENTS": "1",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            # calls to paid services would phone home; point them at the discard port on loopback
            "API_ENDPOINT": "http://127.0.0.1:9/v1",
            "ANALYTICS_API": "http://127.0.0.1:9/v1",
            "SERVICES": SERVICES,
            # check presigned URLs' signatures and expiry as S3 does (LocalStack skips that by default), so a
            # wrongly signed URL from orch fails here rather than on AWS
            "S3_SKIP_SIGNATURE_VALIDATION": "0",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": DEFAULT_REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def health(endpoint_url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """LocalStack's /_localstack/health document, or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"{endpoint_url}/_localstack/health", timeout=timeout) as response:  # noqa: S310
            document: dict[str, Any] = json.loads(response.read())
            return document
    except (OSError, ValueError):
        return None


def _is_localstack(pid: int) -> bool:
    """True when pid is a live LocalStack runtime (a pid file may outlive its process, and pids recycle)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"localstack.runtime.main" in cmdline


def read_instance(state_dir: Path = DEFAULT_STATE_DIR) -> Instance | None:
    """The instance recorded in state_dir if its process still runs, else None."""
    path = state_dir / INSTANCE_NAME
    try:
        instance = Instance(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return instance if _is_localstack(instance.pid) else None


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as servers do: connections of a stopped instance lingering in TIME_WAIT do not make the port busy
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that has Linux send the child SIGTERM when the process that started it dies (else None).

    For test sessions: a pytest run that is killed (CI timeout) must not leave a 300 MB emulator behind.
    prctl is looked up here, before the fork: importing in the forked child of a threaded process can deadlock.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sigterm)

    return preexec


def start(
    port: int = DEFAULT_PORT,
    state_dir: Path = DEFAULT_STATE_DIR,
    venv: Path = DEFAULT_VENV,
    timeout: float = 90.0,
    tied_to_caller: bool = False,
) -> Instance:
    """Start LocalStack in the background and wait for its health check; return the running instance.

    Idempotent: when the instance recorded in state_dir still runs, it is returned as it is. The command line
    leaves it running after it exits; with tied_to_caller (the test fixture) it stops when the caller dies.
    """
    running = read_instance(state_dir)
    if running is not None:
        log(f"already running: pid {running.pid} at {running.endpoint_url}")
        return running
    if not port_is_free(port):
        raise CtlError(f"port {port} on 127.0.0.1 is already in use; choose another with --port")
    python = venv_python(venv)
    if not python.exists():
        raise CtlError(f"LocalStack is not installed: run localstack/setup.sh first ({python} is missing)")
    state_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("fs", "tmp", "s3"):
        (state_dir / sub).mkdir(exist_ok=True)
    log_path = state_dir / LOG_NAME
    endpoint_url = f"http://127.0.0.1:{port}"
    log(f"starting LocalStack on {endpoint_url} (state in {state_dir})")
    started = time.monotonic()
    with log_path.open("w") as log_file:
        # own session: the server outlives this command, and `stop` signals its whole process group
        proc = subprocess.Popen(
            [str(python), "-c", RUNTIME_BOOTSTRAP],
            cwd=state_dir,
            env=localstack_env(port, state_dir, venv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent() if tied_to_caller else None,
        )
    (state_dir / PID_NAME).write_text(f"{proc.pid}\n")
    deadline = started + timeout
    while True:
        if proc.poll() is not None:
            _forget(state_dir)
            code = proc.returncode
            raise CtlError(f"LocalStack exited with code {code} while starting; log tail:\n{_log_tail(log_path)}")
        if health(endpoint_url) is not None:
            break
        if time.monotonic() > deadline:
            _terminate(proc.pid, grace=10.0)
            _forget(state_dir)
            raise CtlError(f"LocalStack was not healthy within {timeout:.0f} s; log tail:\n{_log_tail(log_path)}")
        time.sleep(0.2)
    instance = Instance(
        pid=proc.pid,
        port=port,
        endpoint_url=endpoint_url,
        state_dir=str(state_dir),
        log_path=str(log_path),
        start_seconds=round(time.monotonic() - started, 2),
    )
    (state_dir / INSTANCE_NAME).write_text(json.dumps(asdict(instance), indent=2) + "\n")
    log(f"ready in {instance.start_seconds:.1f} s (pid {proc.pid})")
    return instance


def _terminate(pid: int, grace: float) -> bool:
    """SIGTERM the process group we started, SIGKILL it after `grace` s; True if SIGTERM was enough."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _is_localstack(pid) or _is_zombie(pid):
            return True
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return False


def _is_zombie(pid: int) -> bool:
    """A child of ours that exited but was not reaped yet (when start and stop run in one Python process)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    if fields and fields[0] == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return True
    return False


def _forget(state_dir: Path) -> None:
    for name in (PID_NAME, INSTANCE_NAME):
        (state_dir / name).unlink(missing_ok=True)


def _clean(state_dir: Path) -> None:
    """Remove what LocalStack leaves behind: its temp folder and S3's object data (state is not persisted)."""
    for sub in ("tmp", "s3"):
        shutil.rmtree(state_dir / sub, ignore_errors=True)


def stop(state_dir: Path = DEFAULT_STATE_DIR, grace: float = 30.0) -> float | None:
    """Stop the instance recorded in state_dir; return how long it took, or None when none was running."""
    instance = read_instance(state_dir)
    if instance is None:
        _forget(state_dir)
        _clean(state_dir)
        log("not running")
        return None
    log(f"stopping pid {instance.pid}")
    started = time.monotonic()
    graceful = _terminate(instance.pid, grace)
    elapsed = round(time.monotonic() - started, 2)
    _forget(state_dir)
    _clean(state_dir)
    how = "" if graceful else f" (killed: still running {grace:.0f} s after SIGTERM)"
    log(f"stopped in {elapsed:.1f} s{how}")
    return elapsed


def status(state_dir: Path = DEFAULT_STATE_DIR) -> dict[str, Any]:
    instance = read_instance(state_dir)
    if instance is None:
        return {"running": False}
    return {"running": True, **asdict(instance), "health": health(instance.endpoint_url)}


# --------------------------------------------------------------------------------------------------
# provision: orch's resources in the emulator
# --------------------------------------------------------------------------------------------------


def provision(endpoint_url: str, prefix: str = "orch", region: str = DEFAULT_REGION) -> dict[str, Any]:
    """Create, idempotently, what orch's control plane expects to find in its AWS account.

    Lambda, ECS and RDS are not emulated here (README.md); the services tick that EventBridge would deliver
    to a Lambda goes to the SQS queue `<prefix>-services-tick` instead, which a test consumes.
    Returns names, URLs and ARNs; never the secret's value.
    """
    import boto3  # only this command needs it; see main() for the re-exec into LocalStack's venv

    # the emulator's dummy credentials: never the caller's real ones
    session = boto3.session.Session(
        aws_access_key_id="test",
        aws_secret_access_key="test",  # noqa: S106
        region_name=region,
    )
    s3 = session.client("s3", endpoint_url=endpoint_url)
    sqs = session.client("sqs", endpoint_url=endpoint_url)
    events = session.client("events", endpoint_url=endpoint_url)
    secrets = session.client("secretsmanager", endpoint_url=endpoint_url)

    buckets: dict[str, dict[str, str]] = {}
    existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
    for role in ("code", "results"):
        name = f"{prefix}-{role}"
        if name not in existing:
            s3.create_bucket(Bucket=name)  # us-east-1 takes no LocationConstraint
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        buckets[role] = {"name": name, "arn": f"arn:aws:s3:::{name}"}

    def queue(name: str, attributes: dict[Any, str]) -> dict[str, str]:
        # create with SSE only, then set the rest: create_queue fails when an existing queue's attributes
        # differ, set_queue_attributes applies a changed setting on a second run
        url = sqs.create_queue(QueueName=name, Attributes={"SqsManagedSseEnabled": "true"})["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"SqsManagedSseEnabled": "true", **attributes})
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return {"name": name, "url": url, "arn": arn}

    dlq = queue(f"{prefix}-default-dlq", {"MessageRetentionPeriod": str(14 * 24 * 3600)})
    default = queue(
        f"{prefix}-default",
        {
            "VisibilityTimeout": "60",
            "ReceiveMessageWaitTimeSeconds": "20",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq["arn"], "maxReceiveCount": 5}),
        },
    )
    ecs_events = queue(f"{prefix}-ecs-events", {})
    tick_queue = queue(f"{prefix}-services-tick", {})

    rule_name = f"{prefix}-services-tick"
    rule_arn = events.put_rule(
        Name=rule_name,
        ScheduleExpression="rate(1 minute)",
        State="ENABLED",
        Description="orch control plane services tick (delivered to SQS here: no Lambda in LocalStack)",
    )["RuleArn"]
    # EventBridge may send to the queue only for this rule, as on AWS
    sqs.set_queue_attributes(
        QueueUrl=tick_queue["url"],
        Attributes={
            "Policy": json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "AllowServicesTickRule",
                            "Effect": "Allow",
                            "Principal": {"Service": "events.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": tick_queue["arn"],
                            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                        }
                    ],
                }
            )
        },
    )
    events.put_targets(Rule=rule_name, Targets=[{"Id": "services-tick-queue", "Arn": tick_queue["arn"]}])

    secret_name = f"{prefix}/bootstrap-admin-key"
    try:
        secret_arn = secrets.describe_secret(SecretId=secret_name)["ARN"]
    except secrets.exceptions.ResourceNotFoundException:
        # a random key for the emulator only; created once, never printed
        secret_arn = secrets.create_secret(
            Name=secret_name,
            Description="orch bootstrap admin API key",
            SecretString=secrets.get_random_password(PasswordLength=48, ExcludePunctuation=True)["RandomPassword"],
        )["ARN"]

    return {
        "endpoint_url": endpoint_url,
        "region": region,
        "buckets": buckets,
        "queues": {
            "default": {**default, "max_receive_count": 5},
            "default_dlq": dlq,
            "ecs_events": ecs_events,
            "services_tick": tick_queue,
        },
        "secrets": {"bootstrap_admin_key": {"name": secret_name, "arn": secret_arn}},
        "rules": {
            "services_tick": {
                "name": rule_name,
                "arn": rule_arn,
                "schedule": "rate(1 minute)",
                "target": tick_queue["arn"],
            }
        },
    }


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="localstack/ctl.py", description=__doc__.split("\n\n")[0])
    # every command takes --state-dir, after the command name as the wrapper scripts pass it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("ORCH_LOCALSTACK_STATE_DIR", DEFAULT_STATE_DIR)),
        help="pid file, log, FILESYSTEM_ROOT and TMPDIR (default: localstack/.state)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup", parents=[common], help="create or refresh localstack/.venv")
    start_cmd = commands.add_parser("start", parents=[common], help="start in the background, wait for health")
    start_cmd.add_argument("--port", type=int, default=int(os.environ.get("ORCH_LOCALSTACK_PORT", DEFAULT_PORT)))
    start_cmd.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for health")
    commands.add_parser("stop", parents=[common], help="stop it and clean its temporary data")
    commands.add_parser("status", parents=[common], help="print the running instance as JSON")
    provision_cmd = commands.add_parser(
        "provision", parents=[common], help="create orch's resources; print them as JSON"
    )
    provision_cmd.add_argument("--endpoint-url", help="default: the running instance's")
    provision_cmd.add_argument("--prefix", default="orch")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    state_dir: Path = args.state_dir.resolve()
    try:
        if args.command == "setup":
            setup(state_dir=state_dir)
        elif args.command == "start":
            if not 0 < args.port < 65536:
                raise CtlError(f"--port {args.port} is not a TCP port")
            print(json.dumps(asdict(start(args.port, state_dir, timeout=args.timeout)), indent=2))
        elif args.command == "stop":
            stop(state_dir)
        elif args.command == "status":
            print(json.dumps(status(state_dir), indent=2))
        elif args.command == "provision":
            endpoint_url = args.endpoint_url
            if endpoint_url is None:
                instance = read_instance(state_dir)
                if instance is None:
                    raise CtlError("LocalStack is not running: run localstack/start.sh or pass --endpoint-url")
                endpoint_url = instance.endpoint_url
            try:
                import boto3  # noqa: F401
            except ImportError:
                python = venv_python()
                if not python.exists() or Path(sys.executable) == python:
                    raise CtlError("provision needs boto3: run localstack/setup.sh first") from None
                # our own script with an argument list, no shell
                rest = argv if argv is not None else sys.argv[1:]
                os.execv(python, [str(python), __file__, *rest])  # noqa: S606
            print(json.dumps(provision(endpoint_url, prefix=args.prefix), indent=2))
    except CtlError as error:
        print(f"localstack: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("localstack: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # botocore errors from provision: one line, not a traceback
        print(f"localstack: {args.command} failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
