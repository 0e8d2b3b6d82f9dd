"""Every API route that can start paid work passes the checks of a new job (issue 22, probe 2).

A re-roll was accepted (202) when the owner's daily cap was already reached, and after the operator
removed Veo from the owner's allowed models; it reached $5.60 against a $5 cap. Here the owner's day
is spent in the ledger, and each route that could start paid work (a new job, an approval, a regrid,
a re-roll) is refused before anything is created or launched.

The CLI's commands (make, demo, approve, reroll, regrid) run as the machine's operator (owner
``local``), whom the settings exempt from the allow-list and the daily cap; they call the same
service methods, and their paid requests go through the same ledger and job budget.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kapsule.core.settings import Settings
from kapsule.infra.context import JobContext, Stores
from kapsule.job.ledger import Charge, ChargeState, Settlement
from kapsule.job.record import JobRecord, JobState
from kapsule.job.update import JobUpdate
from tests.support.api import RecordingLauncher, api_client, expect_error, sine_wav, upload_file
from tests.support.ledger_loops import MODEL
from tests.support.settings import replace
from tests.support.veo import veo_analysis, veo_board

KEY = "ana-" + "k" * 32
ANA = {"Authorization": f"Bearer {KEY}"}


def _deployment(api_settings: Settings, allowed: list[str]) -> Settings:
    return replace(
        api_settings,
        gemini_api_key="not-a-real-key",  # a deployment that could call Veo
        api_keys=f"ana={KEY}",
        allowed_models={"ana": allowed},
        owner_daily_cap_usd=5.0,
        default_job_budget_usd=2.0,
    )


def _job(stores: Stores, state: JobState, **params: object) -> JobContext:
    record = stores.status.create(
        JobRecord(owner="ana", state=JobState.running, params={"video_model": MODEL, **params})
    )
    ctx = JobContext.for_record(stores, record)
    board = veo_board(["a", "b"]).model_copy(update={"video_model": MODEL})
    ctx.write_model(ctx.layout.storyboard, board)
    ctx.write_model(ctx.layout.analysis, veo_analysis(board.duration))
    if state != JobState.running:
        stores.status.update(record.id, JobUpdate(state=state))
    return ctx


def _spend(stores: Stores, ctx: JobContext, usd: float) -> None:
    stores.status.reserve(ctx.job_id, Charge(key="spent", usd=usd))
    stores.status.settle(ctx.job_id, "spent", Settlement(state=ChargeState.spent))


def test_every_route_that_can_start_paid_work_is_refused_when_the_day_is_spent(
    api_settings: Settings, tmp_path: Path
) -> None:
    settings = _deployment(api_settings, ["local", "veo-*"])
    stores = Stores.open(settings)
    parent = _job(stores, JobState.running, budget_usd=5.0)
    _spend(stores, parent, 5.0)  # the whole day, in the ledger
    stores.status.update(parent.job_id, JobUpdate(state=JobState.succeeded))
    paused = _job(stores, JobState.awaiting_approval, budget_usd=1.0, review=True)
    launcher = RecordingLauncher()
    with api_client(launcher, settings) as client:
        song = upload_file(client, sine_wav(tmp_path / "song.wav", 6.0), headers=ANA)
        routes = {
            "new job": client.post("/v1/jobs", json={"upload_id": song, "video_model": MODEL}, headers=ANA),
            "approve": client.post(f"/v1/jobs/{paused.job_id}:approve", headers=ANA),
            "regrid": client.post(f"/v1/jobs/{paused.job_id}:regrid", json={"tempo": "double"}, headers=ANA),
            "re-roll": client.post(f"/v1/jobs/{parent.job_id}/shots/0:reroll", json={}, headers=ANA),
        }
        for route, response in routes.items():
            assert response.status_code == 402, (route, response.text)
            expect_error(response, 402, "daily_cap_reached")
        assert len(client.get("/v1/jobs", headers=ANA).json()["jobs"]) == 2  # nothing new
    assert launcher.launched == []
    assert stores.status.get(paused.job_id).state == JobState.awaiting_approval


def test_a_re_roll_is_refused_once_the_operator_removes_the_model_from_the_owner(
    api_settings: Settings,
) -> None:
    settings = _deployment(api_settings, ["local", "veo-*"])
    stores = Stores.open(settings)
    parent = _job(stores, JobState.running, budget_usd=5.0)
    stores.status.update(parent.job_id, JobUpdate(state=JobState.succeeded))
    launcher = RecordingLauncher()
    with api_client(launcher, replace(settings, allowed_models={"ana": ["local"]})) as client:
        response = client.post(f"/v1/jobs/{parent.job_id}/shots/0:reroll", json={}, headers=ANA)
        expect_error(response, 403, "model_not_allowed")
        assert len(client.get("/v1/jobs", headers=ANA).json()["jobs"]) == 1
    assert launcher.launched == []


def test_a_re_roll_that_fits_the_day_is_accepted_with_the_shots_price_as_its_budget(
    api_settings: Settings,
) -> None:
    settings = _deployment(api_settings, ["local", "veo-*"])
    stores = Stores.open(settings)
    parent = _job(stores, JobState.running, budget_usd=5.0)
    _spend(stores, parent, 4.0)  # $4.00 + $0.80 fits the $5.00 day; the parent's $5 budget would not
    stores.status.update(parent.job_id, JobUpdate(state=JobState.succeeded))
    with api_client(RecordingLauncher(), settings) as client:
        response = client.post(f"/v1/jobs/{parent.job_id}/shots/0:reroll", json={}, headers=ANA)
        assert response.status_code == 202, response.text
        assert response.json()["params"]["budget_usd"] == pytest.approx(0.8)  # a 4 s shot, twice at most
