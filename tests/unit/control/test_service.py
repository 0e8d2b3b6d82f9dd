"""The job service's submission: refused before anything exists, and never two songs in one job.

Two requests racing with one Idempotency-Key (the same job id) but different songs used to both copy
their song into the job's ``input/`` before either record existed, so the job could run the losing
request's song. The service now creates the record first and writes files only once it owns the id.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import pytest

from kapsule.control.service import JobService, Submission, request_hash
from kapsule.core.errors import IdempotencyConflict, KapsuleError, UnknownModel
from kapsule.core.settings import Settings
from kapsule.infra.context import Stores
from kapsule.job.layout import JobLayout
from kapsule.job.params import JobParams
from kapsule.job.record import JobState, new_job_id
from kapsule.song.intake import LocalSong
from tests.support.api import (
    RecordingLauncher,
    sine_wav,
)
from tests.support.review import paused_job_with_board
from tests.support.settings import replace


class SlowSong(LocalSong):
    """A real song whose inspection waits for every racer, so all of them pass the checks together."""

    barrier: threading.Barrier

    def inspect(self, settings: Settings):  # type: ignore[no-untyped-def]
        info = super().inspect(settings)
        self.barrier.wait(timeout=30)
        return info


def test_racing_submissions_with_one_key_make_one_job_holding_one_song(
    settings: Settings, tmp_path: Path
) -> None:
    service = JobService(Stores.open(settings), RecordingLauncher())
    job_id = new_job_id()
    barrier = threading.Barrier(2)
    songs = [sine_wav(tmp_path / "a.wav", 6.0, 0.5), sine_wav(tmp_path / "b.wav", 7.0, 0.3)]
    outcomes: list[object] = [None, None]

    def submit(i: int) -> None:
        song = SlowSong(songs[i])
        object.__setattr__(song, "barrier", barrier)
        body = songs[i].read_bytes()
        try:
            outcomes[i] = service.submit(
                Submission(JobParams(), song, job_id=job_id, request_hash=request_hash(body))
            )
        except KapsuleError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    created = [o for o in outcomes if isinstance(o, tuple)]
    refused = [o for o in outcomes if isinstance(o, IdempotencyConflict)]
    assert len(created) == 1 and len(refused) == 1, outcomes
    winner = songs[outcomes.index(created[0])]
    layout = JobLayout(job_id)
    stored = [k for k in service.stores.storage.list(layout.input_prefix) if "/song." in k]
    assert stored == [layout.input_song("wav")]
    assert service.stores.storage.read_bytes(stored[0]) == winner.read_bytes()
    assert service.launcher.launched == [job_id]  # type: ignore[attr-defined]


def test_an_unknown_model_is_refused_before_anything_exists(settings: Settings, tmp_path: Path) -> None:
    service = JobService(Stores.open(settings), RecordingLauncher())
    with pytest.raises(UnknownModel):
        service.submit(
            Submission(JobParams(video_model="sora-9"), LocalSong(sine_wav(tmp_path / "s.wav", 6.0)))
        )
    assert service.list_jobs("local") == ([], None)
    assert service.stores.storage.list("jobs/") == []


def test_an_approval_racing_a_cancel_never_leaves_an_execution_running(settings: Settings) -> None:
    """Issue 14: approve racing cancel launched an execution nobody cancelled in 10 of 40 trials."""

    stores = Stores.open(settings)
    leaks = 0
    for _ in range(40):
        launcher = RecordingLauncher()
        service = JobService(stores, launcher)
        job_id = paused_job_with_board(stores, 2)
        barrier = threading.Barrier(2)

        def approve(
            service: JobService = service, job_id: str = job_id, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait()
            with contextlib.suppress(KapsuleError):
                service.approve("local", job_id)

        def cancel(
            service: JobService = service, job_id: str = job_id, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait()
            with contextlib.suppress(KapsuleError):
                service.cancel("local", job_id)

        threads = [threading.Thread(target=approve), threading.Thread(target=cancel)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        final = stores.status.get(job_id)
        deadline = time.monotonic() + 5
        while set(launcher.launched) - {e.removeprefix("test-") for e in launcher.cancelled}:
            if final.state != JobState.cancelled or time.monotonic() > deadline:
                break
            time.sleep(0.02)  # the service stops executions from a background thread
        running = set(launcher.launched) - {e.removeprefix("test-") for e in launcher.cancelled}
        if final.state == JobState.cancelled and running:
            leaks += 1
    assert leaks == 0


def test_a_model_the_owner_may_not_use_is_refused_as_not_theirs(settings: Settings, tmp_path: Path) -> None:
    """Issue 22: on a deployment without Google credentials, an owner's Veo job was refused for the
    deployment's credentials; the owner may not use Veo at all, and that is what they are told."""
    from kapsule.core.errors import ModelNotAllowed

    deployment = replace(settings, allowed_models={"*": ["local"]})  # and no Google credentials
    service = JobService(Stores.open(deployment), RecordingLauncher())
    song = LocalSong(sine_wav(tmp_path / "s.wav", 6.0))
    with pytest.raises(ModelNotAllowed, match="not allowed for your key"):
        service.submit(Submission(JobParams(video_model="veo-3.0-fast-generate-001"), song, owner="bob"))


def test_api_owners_get_the_allow_list_a_default_budget_and_a_daily_cap(
    settings: Settings, tmp_path: Path
) -> None:
    """Issue 14: any key could spend without limit. Now a keyed owner may use only the models the
    operator allows (default: local), a paid job without a budget gets the default one, and an owner's
    jobs of one day may not reserve more than the daily cap. The machine's own user is exempt."""
    from kapsule.core.errors import DailyCapReached, ModelNotAllowed

    deployment = replace(
        settings,
        gemini_api_key="not-a-real-key",  # a deployment that could call Veo
        allowed_models={"ana": ["local", "veo-3.0-fast-*"], "*": ["local"]},
        default_job_budget_usd=5,
        owner_daily_cap_usd=8,
    )
    service = JobService(Stores.open(deployment), RecordingLauncher())
    song = LocalSong(sine_wav(tmp_path / "s.wav", 6.0))
    veo = JobParams(video_model="veo-3.0-fast-generate-001")

    with pytest.raises(ModelNotAllowed):
        service.submit(Submission(veo, song, owner="bob"))
    record, _ = service.submit(Submission(veo, song, owner="ana"))
    assert record.params.budget_usd == 5.0  # the default budget, since the job set none
    with pytest.raises(DailyCapReached):  # 5 reserved today + 5 > 8
        service.submit(Submission(veo, song, owner="ana"))
    cheap, _ = service.submit(Submission(veo.model_copy(update={"budget_usd": 3.0}), song, owner="ana"))
    assert cheap.params.budget_usd == 3.0  # 5 + 3 fits the cap of 8
    mine, _ = service.submit(Submission(veo, song))  # the operator: no allow-list, no daily cap
    assert mine.owner == "local" and service.list_jobs("bob") == ([], None)


def test_max_shots_below_what_the_song_needs_is_refused_before_the_job_exists(
    settings: Settings, tmp_path: Path
) -> None:
    """Issue 22: ``max_shots=2`` on a 20 s song was accepted and failed later, inside the job."""
    service = JobService(Stores.open(settings), RecordingLauncher())
    song = LocalSong(sine_wav(tmp_path / "s.wav", 20.0))
    with pytest.raises(KapsuleError, match="needs at least 3 shots") as info:
        service.submit(Submission(JobParams(max_shots=2), song))
    assert info.value.code == "invalid_parameter"
    assert service.list_jobs("local") == ([], None)
    record, _ = service.submit(Submission(JobParams(max_shots=3), song))
    assert record.params.max_shots == 3
