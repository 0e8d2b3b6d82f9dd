"""Job ids, the state machine and storage keys: the rules every other part relies on."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kapsule.core.errors import InvalidParameter, InvalidTransition
from kapsule.job.layout import JobLayout
from kapsule.job.params import JobParams
from kapsule.job.record import (
    JobRecord,
    JobState,
    check_transition,
    is_valid_job_id,
    new_job_id,
)
from kapsule.job.update import InState, JobUpdate, apply_update


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
    updated = apply_update(record, JobUpdate(state=JobState.running, progress=0.5))
    assert updated.params == JobParams(seed=3)
    assert updated.updated_at >= record.updated_at
    assert updated.id == record.id


def test_a_stored_record_reads_back_to_the_same_json() -> None:
    """Outputs and prompt edits are typed now; the JSON the API returns and the stores hold is as it was."""
    stored = JobRecord().model_dump(mode="json") | {
        "state": "succeeded",
        "approval": {
            "approved": True,
            "approved_at": "2025-01-02T03:04:05Z",
            "prompt_edits": {"3": "a lake"},
        },
        "outputs": {
            "captions_vtt": "jobs/j/output/captions.vtt",
            "video": "jobs/j/output/video.mp4",
            "delivery_url": "file:///srv/delivery",
            "poster": "jobs/j/output/poster.jpg",
            "contact_sheet": "jobs/j/output/contact_sheet.jpg",
            "duration": "31.250",
        },
    }
    record = JobRecord.model_validate(stored)
    assert record.approval.prompt_edits == {3: "a lake"}
    assert record.outputs.captions_vtt == "jobs/j/output/captions.vtt" and record.outputs.captions_srt is None
    assert record.model_dump(mode="json") == stored
    assert JobRecord().model_dump(mode="json")["outputs"] == {}


def test_none_is_refused_for_a_field_the_record_cannot_leave_empty() -> None:
    with pytest.raises(ValidationError, match="the job's state cannot be set to None"):
        JobUpdate(state=None)
    with pytest.raises(ValidationError, match="the job's progress cannot be set to None"):
        JobUpdate(progress=None, message="kept")
    with pytest.raises(ValidationError, match="the job's outputs cannot be set to None"):
        JobUpdate(outputs=None)
    assert JobUpdate(stage=None, error=None, execution=None, heartbeat_at=None).model_fields_set == {
        "stage",
        "error",
        "execution",
        "heartbeat_at",
    }


def test_a_finished_job_accepts_no_update_even_a_guarded_one() -> None:
    record = apply_update(JobRecord(), JobUpdate(state=JobState.cancelled))
    with pytest.raises(InvalidTransition, match=f"job {record.id} is already cancelled"):
        apply_update(record, JobUpdate(guards=(InState(states=(JobState.cancelled,), action="noted"),)))
    with pytest.raises(InvalidTransition, match="a queued job cannot become succeeded"):
        apply_update(JobRecord(), JobUpdate(state=JobState.succeeded))
