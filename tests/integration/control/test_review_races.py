"""Review actions racing each other win or lose cleanly: a 409, never a half-applied change, never a 500.

The probes of issue 22: a regrid racing an approval (the approval said "running", then the regrid put
the job back to awaiting approval and the launched run did nothing), and four simultaneous regrids of
one job (three 500s from a shared temporary file in the job's folder).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kapsule import stages
from kapsule.control.service import GridChange
from kapsule.core.errors import InvalidTransition
from kapsule.core.settings import Settings
from kapsule.infra.context import JobContext
from kapsule.job.artifacts import Storyboard
from kapsule.job.record import JobState
from tests.support.api import RecordingLauncher, api_client
from tests.support.review import paused_real_job, regrid_song


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return regrid_song(tmp_path_factory.mktemp("races"))


def _during_the_replan(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> None:
    """Run ``action`` once, while a regrid is half-way (its analysis read, its storyboard not planned)."""
    plan = stages.run_storyboard
    done = threading.Event()

    def racing(ctx: JobContext) -> Storyboard:
        if not done.is_set():
            done.set()
            action()
        return plan(ctx)

    monkeypatch.setattr(stages, "run_storyboard", racing)


def test_an_approval_during_a_regrid_is_refused_and_the_regrid_lands(
    settings: Settings, song: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, ctx = paused_real_job(settings, song)
    assert isinstance(service.launcher, RecordingLauncher)
    launched = list(service.launcher.launched)  # the submission's
    refused: list[str] = []

    def approve() -> None:
        try:
            service.approve("local", ctx.job_id)
        except InvalidTransition as exc:
            refused.append(exc.message)

    _during_the_replan(monkeypatch, approve)
    review = service.regrid("local", ctx.job_id, GridChange(tempo="double"))
    assert refused and "being re-planned" in refused[0]
    record = ctx.record()
    assert record.state == JobState.awaiting_approval and not record.approval.approved
    assert review.state == "awaiting_approval"
    assert record.approval.replan_token is None  # the hold ended with the new plan
    assert service.launcher.launched == launched  # the refused approval launched nothing
    service.approve("local", ctx.job_id)  # and now it can be approved
    assert ctx.record().state == JobState.running


def test_a_regrid_that_loses_to_an_approval_or_a_cancel_never_reopens_the_review(
    settings: Settings, song: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, ctx = paused_real_job(settings, song)
    service.approve("local", ctx.job_id)
    with pytest.raises(InvalidTransition):
        service.regrid("local", ctx.job_id, GridChange(tempo="double"))
    assert ctx.record().state == JobState.running

    service, ctx = paused_real_job(settings, song)
    _during_the_replan(monkeypatch, lambda: service.cancel("local", ctx.job_id))
    with pytest.raises(InvalidTransition):
        service.regrid("local", ctx.job_id, GridChange(tempo="half"))
    assert ctx.record().state == JobState.cancelled


def test_four_simultaneous_regrids_of_one_job_are_one_success_and_three_409s(
    api_settings: Settings, song: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ctx = paused_real_job(api_settings, song)
    others_answered = threading.Event()
    plan = stages.run_storyboard

    def slow(ctx: JobContext) -> Storyboard:  # the winner holds the review until the others have their answer
        others_answered.wait(timeout=20)
        return plan(ctx)

    monkeypatch.setattr(stages, "run_storyboard", slow)
    with api_client(RecordingLauncher(), api_settings) as client, ThreadPoolExecutor(4) as pool:
        answers: list[int] = []
        lock = threading.Lock()

        def regrid(tempo: str) -> int:
            status = client.post(f"/v1/jobs/{ctx.job_id}:regrid", json={"tempo": tempo}).status_code
            with lock:
                answers.append(status)
                if answers.count(409) == 3:
                    others_answered.set()
            return status

        statuses = sorted(pool.map(regrid, ["double", "half", "double", "half"]))
    assert statuses == [200, 409, 409, 409]
    record = ctx.record()
    assert record.state == JobState.awaiting_approval and record.approval.replan_token is None
    leftovers = [p.name for p in Path(api_settings.work_dir).iterdir() if p.name.startswith("regrid-")]
    assert leftovers == []  # each request's scratch folder is its own, and removed
