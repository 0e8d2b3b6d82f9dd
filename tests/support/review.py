"""Jobs paused for review: one with a storyboard of ``shots`` two-second shots made without running it,
and a real one (a short synthesized song analysed and planned in-process, local models)."""

from __future__ import annotations

from pathlib import Path

from kapsule import stages
from kapsule.control.service import JobService, Submission
from kapsule.core.settings import Settings
from kapsule.infra.context import JobContext, Stores
from kapsule.job.artifacts import Shot, Storyboard
from kapsule.job.layout import JobLayout
from kapsule.job.params import JobParams
from kapsule.job.record import JobRecord, JobState
from kapsule.job.update import JobUpdate
from kapsule.song.intake import LocalSong
from kapsule.storyboard.review import pause_for_review
from tests.support.api import RecordingLauncher


def paused_job_with_board(stores: Stores, shots: int) -> str:
    record = stores.status.create(JobRecord(params={"review": True}))
    stores.status.update(record.id, JobUpdate(state=JobState.running))
    stores.status.update(record.id, JobUpdate(state=JobState.awaiting_approval))
    board = Storyboard(
        duration=shots * 2.0,
        total_frames=shots * 48,
        shots=[
            Shot(index=i, start=2.0 * i, end=2.0 * i + 2, start_frame=48 * i, end_frame=48 * (i + 1),
                 request_seconds=4, section="verse", energy=0.5, prompt=f"original {i}")
            for i in range(shots)
        ],
    )  # fmt: skip
    stores.storage.write_bytes(JobLayout(record.id).storyboard, board.model_dump_json().encode())
    return record.id


def regrid_song(folder: Path) -> Path:
    """20 s at 120 BPM (intro, verse, chorus): enough bars to re-plan."""
    from kapsule.demo.song import synthesize_song, write_song

    structure = [("intro", 2), ("verse", 4), ("chorus", 4)]
    return write_song(synthesize_song(seed=13, structure=structure), folder / "song.wav")


def paused_real_job(settings: Settings, song: Path) -> tuple[JobService, JobContext]:
    """A job submitted through the service, analysed and planned in-process, awaiting approval."""
    service = JobService(Stores.open(settings), RecordingLauncher())
    params = JobParams(review=True, video_model="local", prompt_model="local")
    record, _ = service.submit(Submission(params, LocalSong(song)))
    ctx = JobContext.for_record(service.stores, record)
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    service.stores.status.update(record.id, JobUpdate(state=JobState.running))
    stages.run_analyze(ctx)
    stages.run_storyboard(ctx)
    pause_for_review(ctx)
    return service, ctx
