"""The flow the end-to-end test deploys to LocalStack's S3 and runs through an SQS agent.

Its result is persisted (``persist_result=True``) to the result storage the agent's environment names
(``ORCH_DEFAULT_RESULT_STORAGE=s3://...``), so the test can read it back from S3. ``code_dir`` tells the test
where this file ran from: the engine's unpacked bundle, not this folder.
"""

from __future__ import annotations

from pathlib import Path

from orch import flow, task


@task
def add(a: int, b: int) -> int:
    return a + b


@flow(name="e2e-add", persist_result=True)
def add_numbers(a: int = 1, b: int = 2) -> dict[str, object]:
    return {"sum": add(a, b), "code_dir": str(Path(__file__).resolve().parent)}
