"""Smoke: the in-process API on both databases creates and drives a run."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_run_lifecycle(api) -> None:
    flow = api.post("/flows/", json={"name": "smoke"}).json()
    run = api.post("/flow_runs/", json={"flow_id": flow["id"], "state": {"type": "SCHEDULED"}}).json()
    assert run["state"]["type"] == "SCHEDULED"
    claim = api.post(f"/flow_runs/{run['id']}/set_state", json={"state": {"type": "PENDING"}})
    assert claim.status_code == 201, claim.text
    again = api.post(f"/flow_runs/{run['id']}/set_state", json={"state": {"type": "PENDING"}}).json()
    assert again["status"] == "REJECT"
