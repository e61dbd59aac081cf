"""The AWS emulation harness works: moto and LocalStack behave like the AWS parts orch relies on.

Everything here talks to real emulator processes over HTTP (tests/plugins/aws.py starts them): SQS long polling,
deletion and dead-letter redrive, S3 objects and presigned URLs fetched with httpx, the resources that
`localstack/ctl.py provision` creates, and an EventBridge `rate(1 minute)` rule that really delivers to SQS
(LocalStack only: moto never fires scheduled rules). The last tests drive `localstack/ctl.py` as a user would.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.plugins.aws import CTL_PATH, Emulator, LocalStackServer, MotoServer, load_ctl


def unique(prefix: str) -> str:
    """LocalStack lives for the whole session and is never reset: every test names its own resources."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["moto", "localstack"])
def emulator(request: pytest.FixtureRequest) -> Emulator:
    """Each behaviour is checked against both emulators: unit tests use moto, integration tests LocalStack."""
    server: Emulator = request.getfixturevalue(request.param)
    return server


# ------------------------------------------------------------------------------------------------------------
# SQS
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.aws
@pytest.mark.integration
def test_sqs_long_poll_receives_a_message_sent_while_waiting_then_delete_removes_it(emulator: Emulator) -> None:
    sqs = emulator.client("sqs")
    url = sqs.create_queue(QueueName=unique("harness-sqs"))["QueueUrl"]

    # sent a second after the receive started: only a long poll that really waits can return it
    sender = threading.Timer(1.0, lambda: sqs.send_message(QueueUrl=url, MessageBody='{"flow_run_id": "r1"}'))
    sender.start()
    try:
        received = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10, MaxNumberOfMessages=1)
    finally:
        sender.join()
    messages = received.get("Messages", [])
    assert [json.loads(m["Body"]) for m in messages] == [{"flow_run_id": "r1"}]

    sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
    counts = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert counts == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1, VisibilityTimeout=0)


@pytest.mark.aws
@pytest.mark.integration
def test_sqs_redrives_a_message_to_the_dlq_after_max_receive_count_receives(emulator: Emulator) -> None:
    sqs = emulator.client("sqs")
    dlq_url = sqs.create_queue(QueueName=unique("harness-dlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=unique("harness-work"),
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})},
    )["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="poison")

    # a consumer that never deletes: VisibilityTimeout=0 makes the message visible again at once
    receive_counts = []
    for _ in range(8):
        messages = sqs.receive_message(
            QueueUrl=url, WaitTimeSeconds=1, VisibilityTimeout=0, AttributeNames=["ApproximateReceiveCount"]
        ).get("Messages", [])
        if not messages:
            break
        receive_counts.append(int(messages[0]["Attributes"]["ApproximateReceiveCount"]))

    assert receive_counts == [1, 2, 3, 4, 5]
    dead = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=5).get("Messages", [])
    assert [m["Body"] for m in dead] == ["poison"]


# ------------------------------------------------------------------------------------------------------------
# S3
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.aws
@pytest.mark.integration
def test_s3_put_get_and_presigned_urls_work_over_plain_http(emulator: Emulator) -> None:
    s3 = emulator.client("s3")
    bucket = unique("harness-code")
    s3.create_bucket(Bucket=bucket)
    key = "bundles/sha256/ab/abcdef.zip"
    payload = b"PK\x03\x04" + bytes(range(256)) * 64

    s3.put_object(Bucket=bucket, Key=key, Body=payload)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == payload

    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    fetched = httpx.get(get_url, timeout=30)
    assert fetched.status_code == 200
    assert fetched.content == payload

    # the engine uploads results the same way: a presigned PUT, no AWS SDK on the other side
    result_key = "results/run-1.pickle"
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": result_key}, ExpiresIn=300)
    assert httpx.put(put_url, content=b"result bytes", timeout=30).status_code == 200
    assert s3.get_object(Bucket=bucket, Key=result_key)["Body"].read() == b"result bytes"

    # a presigned URL names one object: for a key that does not exist the emulator answers 404, not data
    missing_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "bundles/missing.zip"}, ExpiresIn=300
    )
    assert httpx.get(missing_url, timeout=30).status_code == 404


# ------------------------------------------------------------------------------------------------------------
# fixtures: aws_env and moto reset
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.aws
@pytest.mark.integration
def test_aws_env_points_an_unconfigured_boto3_client_at_the_emulator(
    moto: MotoServer, aws_env: Callable[[Emulator | str], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a developer's shell may name a profile that does not exist here; aws_env must not let it through
    monkeypatch.setenv("AWS_PROFILE", "someone-elses-profile")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9")

    env = aws_env(moto)

    assert env["AWS_ENDPOINT_URL"] == moto.endpoint_url
    sqs = boto3.client("sqs")  # exactly what orch's adapters do: no endpoint, no credentials in code
    assert sqs.meta.endpoint_url == moto.endpoint_url
    name = unique("harness-env")
    sqs.create_queue(QueueName=name)
    assert [url.rsplit("/", 1)[-1] for url in moto.client("sqs").list_queues()["QueueUrls"]] == [name]
    assert boto3.client("sts").get_caller_identity()["Account"] == "123456789012"  # moto's account


@pytest.mark.aws
@pytest.mark.integration
def test_moto_reset_forgets_every_resource(moto_server: MotoServer) -> None:
    sqs = moto_server.client("sqs")
    sqs.create_queue(QueueName=unique("harness-reset"))
    assert sqs.list_queues().get("QueueUrls")

    moto_server.reset()

    assert "QueueUrls" not in sqs.list_queues()


# ------------------------------------------------------------------------------------------------------------
# LocalStack: provisioned resources and a scheduled rule that really fires
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.aws
@pytest.mark.integration
def test_localstack_has_orchs_resources_and_provisioning_again_changes_nothing(
    localstack: LocalStackServer,
) -> None:
    res: dict[str, Any] = localstack.resources
    sqs = localstack.client("sqs")
    default = sqs.get_queue_attributes(QueueUrl=res["queues"]["default"]["url"], AttributeNames=["All"])
    attributes = default["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == res["queues"]["default_dlq"]["arn"]
    assert int(redrive["maxReceiveCount"]) == 5
    assert attributes["SqsManagedSseEnabled"] == "true"
    assert attributes["QueueArn"] == res["queues"]["default"]["arn"]
    for queue in ("default_dlq", "ecs_events", "services_tick"):
        assert sqs.get_queue_url(QueueName=res["queues"][queue]["name"])["QueueUrl"] == res["queues"][queue]["url"]

    s3 = localstack.client("s3")
    for bucket in res["buckets"].values():
        s3.head_bucket(Bucket=bucket["name"])
        encryption = s3.get_bucket_encryption(Bucket=bucket["name"])["ServerSideEncryptionConfiguration"]
        assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    secret = res["secrets"]["bootstrap_admin_key"]
    assert secret["name"] == "orch/bootstrap-admin-key"
    assert "value" not in secret
    assert "SecretString" not in json.dumps(res)
    value = localstack.client("secretsmanager").get_secret_value(SecretId=secret["name"])["SecretString"]
    assert len(value) == 48

    events = localstack.client("events")
    rule = events.describe_rule(Name=res["rules"]["services_tick"]["name"])
    assert (rule["ScheduleExpression"], rule["State"]) == ("rate(1 minute)", "ENABLED")
    targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert [t["Arn"] for t in targets] == [res["queues"]["services_tick"]["arn"]]

    # idempotent: a second run finds everything in place and reports the same names, URLs and ARNs
    assert load_ctl().provision(localstack.endpoint_url) == res
    assert localstack.client("secretsmanager").get_secret_value(SecretId=secret["name"])["SecretString"] == value


@pytest.mark.aws
@pytest.mark.integration
def test_localstack_refuses_tampered_and_expired_presigned_urls(localstack: LocalStackServer) -> None:
    """ctl.py turns on S3 signature checks (moto never checks them), so a badly signed URL fails here too."""
    s3 = localstack.client("s3")
    bucket = localstack.resources["buckets"]["code"]["name"]
    key = f"bundles/{unique('signed')}.zip"
    s3.put_object(Bucket=bucket, Key=key, Body=b"bundle")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    assert httpx.get(url, timeout=30).content == b"bundle"

    assert httpx.get(url.replace("Signature=", "Signature=0"), timeout=30).status_code == 403
    short_lived = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=1)
    time.sleep(2)
    assert httpx.get(short_lived, timeout=30).status_code == 403


@pytest.mark.aws
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_localstack_rate_rule_delivers_the_services_tick_to_sqs(localstack: LocalStackServer) -> None:
    """rate(1 minute) fires once a minute from the rule's creation: wait up to 75 s for one tick."""
    sqs = localstack.client("sqs")
    tick = localstack.resources["queues"]["services_tick"]
    rule_arn = localstack.resources["rules"]["services_tick"]["arn"]

    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 75
    while not messages and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=tick["url"], WaitTimeSeconds=20).get("Messages", [])

    assert messages, "no services tick arrived within 75 s"
    event = json.loads(messages[0]["Body"])
    assert event["source"] == "aws.events"
    assert event["detail-type"] == "Scheduled Event"
    assert event["resources"] == [rule_arn]
    sqs.delete_message(QueueUrl=tick["url"], ReceiptHandle=messages[0]["ReceiptHandle"])


@pytest.mark.aws
@pytest.mark.integration
def test_localstack_fixture_records_its_start_and_runs_on_loopback(localstack: LocalStackServer) -> None:
    assert localstack.start_seconds > 0
    assert localstack.endpoint_url.startswith("http://127.0.0.1:")
    health = httpx.get(f"{localstack.endpoint_url}/_localstack/health", timeout=10).json()
    for service in ("sqs", "s3", "events", "secretsmanager"):
        assert health["services"][service] in {"available", "running"}


@pytest.mark.aws
@pytest.mark.integration
def test_localstack_keeps_s3_data_in_its_own_state_dir(localstack: LocalStackServer) -> None:
    """LocalStack's S3 writes to a fixed /tmp folder of its own unless ctl.py moves it: with it moved, two
    instances (two test sessions, or pytest-xdist workers) cannot touch each other's objects."""
    s3 = localstack.client("s3")
    bucket = unique("harness-own-dir")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")

    assert (localstack.state_dir / "s3" / bucket).is_dir()
    assert not (Path("/tmp/localstack-s3-storage") / bucket).exists()
    s3.delete_object(Bucket=bucket, Key="k")
    s3.delete_bucket(Bucket=bucket)
    assert not (localstack.state_dir / "s3" / bucket).exists()


# ------------------------------------------------------------------------------------------------------------
# localstack/ctl.py as a command
# ------------------------------------------------------------------------------------------------------------


def run_ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CTL_PATH), *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.integration
def test_ctl_start_on_a_busy_port_fails_with_one_clear_line(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_ctl("start", "--port", str(port), "--state-dir", str(tmp_path))

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        f"localstack: port {port} on 127.0.0.1 is already in use; choose another with --port"
    )
    assert not (tmp_path / "localstack.pid").exists()


@pytest.mark.integration
def test_ctl_without_a_running_instance_stops_cleanly_and_refuses_to_provision(tmp_path: Path) -> None:
    stopped = run_ctl("stop", "--state-dir", str(tmp_path))
    assert stopped.returncode == 0
    assert stopped.stderr.strip() == "[localstack] not running"

    status = run_ctl("status", "--state-dir", str(tmp_path))
    assert (status.returncode, json.loads(status.stdout)) == (0, {"running": False})

    provision = run_ctl("provision", "--state-dir", str(tmp_path))
    assert provision.returncode == 1
    assert provision.stderr.strip() == (
        "localstack: LocalStack is not running: run localstack/start.sh or pass --endpoint-url"
    )


@pytest.mark.integration
def test_ctl_rejects_a_port_out_of_range(tmp_path: Path) -> None:
    result = run_ctl("start", "--port", "70000", "--state-dir", str(tmp_path))
    assert (result.returncode, result.stderr.strip()) == (1, "localstack: --port 70000 is not a TCP port")


@pytest.mark.unit
def test_ctl_setup_without_a_usable_python_fails_with_the_reason_the_fixture_skips_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctl = load_ctl()
    monkeypatch.setenv("ORCH_LOCALSTACK_PYTHON", str(tmp_path / "no-python"))

    with pytest.raises(ctl.CtlError) as raised:
        ctl.setup(venv=tmp_path / "venv", state_dir=tmp_path / "state")

    assert (
        str(raised.value) == f"ORCH_LOCALSTACK_PYTHON={tmp_path / 'no-python'} is not a Python that can create a venv"
    )
    assert not (tmp_path / "venv").exists()
