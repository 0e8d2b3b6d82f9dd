"""Issue 22, probe 1: submit then cancel, in a loop, with a fake Veo that holds its operations.

It started 12 Veo operations ($9.60) against a $5 budget with $0 recorded: spending was counted when a
shot finished, and a cancelled job counted only that. Now each start is reserved in the ledger first,
so what the fake started is what the owner's ledger holds, and it never passes the daily cap.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from kapsule.control.service import JobService
from kapsule.core.settings import Settings
from kapsule.infra.context import Stores
from kapsule.job.ledger import ChargeState
from tests.support.api import RecordingLauncher, sine_wav
from tests.support.fake_google import FakeGoogle
from tests.support.ledger_loops import run_loops, shot_usd
from tests.support.settings import replace


def test_submit_cancel_and_reroll_loops_never_start_more_than_the_cap_and_the_ledger_holds_every_start(
    vertex_settings: Settings, fake_google: FakeGoogle, tmp_path: Path
) -> None:
    settings = replace(vertex_settings, allowed_models={"ana": ["local", "veo-*"]}, owner_daily_cap_usd=5.0)
    fake_google.hold_s = 0.2
    service = JobService(Stores.open(settings), RecordingLauncher())
    song = sine_wav(tmp_path / "song.wav", 6.0)

    tally = run_loops(service, "ana", song, tmp_path / "work", loops=4, rounds=4)

    started = fake_google.operations()
    status = service.stores.status
    entries = [e for job in _jobs(service, "ana") for e in status.ledger(job)]
    billed = [e for e in entries if e.state != ChargeState.released]
    day = status.day_total("ana", datetime.now(UTC).date().isoformat())
    assert len(billed) == len(started) > 0
    assert {e.operation for e in billed} == set(started)  # every operation Google bills is in the ledger
    assert day == pytest.approx(len(started) * shot_usd(settings))
    assert day <= 5.0 + 1e-9  # the cap held, cancelled jobs included
    assert tally.cancelled > 0 and tally.refused["submit: daily_cap_reached"] > 0


def _jobs(service: JobService, owner: str) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page, cursor = service.list_jobs(owner, limit=100, cursor=cursor)
        ids += [r.id for r in page]
        if cursor is None:
            return ids
