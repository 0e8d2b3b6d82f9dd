"""Job ids, the state machine and storage keys: the rules every other part relies on."""

from __future__ import annotations

import pytest

from kapsule.core.errors import InvalidParameter, InvalidTransition
from kapsule.job.layout import JobLayout
from kapsule.job.params import JobParams
from kapsule.job.record import (
    JobRecord,
    JobState,
    apply_update,
    check_transition,
    is_valid_job_id,
    new_job_id,
)


def test_new_ids_are_unique_and_valid() -> None:
    ids = {new_job_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_valid_job_id(i) for i in ids)


@pytest.mark.parametrize(
    "bad", ["", "../etc", "j../../../x", "J" + "0" * 20, "j" + "0" * 19 + "/", "j" + "g" * 20]
)
def test_foreign_ids_are_refused_before_any_path_is_built(bad: str) -> None:
    assert not is_valid_job_id(bad)
    with pytest.raises(InvalidParameter):
        JobLayout(bad)


def test_layout_matches_design() -> None:
    layout = JobLayout("j" + "a" * 20)
    root = "jobs/j" + "a" * 20
    assert layout.input_song("mp3") == f"{root}/input/song.mp3"
    assert layout.analysis == f"{root}/work/analysis.json"
    assert layout.storyboard == f"{root}/work/storyboard.json"
    assert layout.shot(3, "abc123") == f"{root}/work/shots/003-abc123.mp4"
    assert layout.manifest == f"{root}/work/shots/manifest.json"
    assert layout.notebook("01_analyze") == f"{root}/notebooks/01_analyze.ipynb"
    assert layout.notebook("04_assemble", "html") == f"{root}/notebooks/04_assemble.html"
    assert layout.video == f"{root}/output/video.mp4"
    with pytest.raises(InvalidParameter):
        layout.notebook("../../secrets")
    with pytest.raises(InvalidParameter):
        layout.input_song("mp3/../../x")


@pytest.mark.parametrize(
    ("current", "new", "ok"),
    [
        (JobState.queued, JobState.running, True),
        (JobState.queued, JobState.cancelled, True),
        (JobState.queued, JobState.succeeded, False),
        (JobState.running, JobState.awaiting_approval, True),
        (JobState.awaiting_approval, JobState.running, True),
        (JobState.running, JobState.queued, False),
        (JobState.succeeded, JobState.running, False),
        (JobState.cancelled, JobState.cancelled, False),
    ],
)
def test_transitions(current: JobState, new: JobState, ok: bool) -> None:
    if ok:
        check_transition(current, new)
    else:
        with pytest.raises(InvalidTransition):
            check_transition(current, new)


def test_apply_update_refreshes_timestamp_and_keeps_other_fields() -> None:
    record = JobRecord(params={"seed": 3})
    updated = apply_update(record, {"state": JobState.running, "progress": 0.5})
    assert updated.params == JobParams(seed=3)
    assert updated.updated_at >= record.updated_at
    assert updated.id == record.id
