"""A job paused for review with a storyboard of ``shots`` two-second shots, made without running it."""

from __future__ import annotations

from kapsule.infra.context import Stores
from kapsule.job.artifacts import Shot, Storyboard
from kapsule.job.layout import JobLayout
from kapsule.job.record import JobRecord, JobState
from kapsule.job.update import JobUpdate


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
