"""Review before paying and re-rolls of one shot, end to end: library, API (real app), CLI.

Everything real: the job entrypoint runs as a subprocess (``LocalLauncher``), papermill runs the
notebooks, FFmpeg encodes, SQLite and file:// storage hold the job. The billing checks use Veo
through google-genai against the local fake Google server, whose request log is the bill: a job
paused for review has asked for nothing, the approved one asks once per shot (with the edited
prompt), and a re-roll asks exactly once, for the changed shot, and records only that shot's cost.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from kapsule import media, stages
from kapsule.api.deps import get_launcher
from kapsule.api.main import create_app
from kapsule.catalog.pricing import price_per_second
from kapsule.cli.main import app as cli_app
from kapsule.control.service import JobService
from kapsule.core.errors import InvalidTransition, KapsuleError
from kapsule.core.settings import Settings
from kapsule.demo.song import synthesize_song, write_song
from kapsule.infra.context import JobContext, Stores
from kapsule.infra.launch.local import LocalLauncher, job_log_path
from kapsule.infra.status import open_status_store
from kapsule.infra.storage import open_storage
from kapsule.job.artifacts import ShotManifest, Storyboard
from kapsule.job.layout import NOTEBOOK_NAMES, JobLayout
from kapsule.job.record import JobRecord, JobState
from kapsule.job.update import JobUpdate
from kapsule.lyrics import TimedLine, lines_to_json
from kapsule.storyboard.review import edit_shots, load_board, needs_review, new_seed, review_summary
from kapsule.worker.run_job import local_command
from tests.support.api import RecordingLauncher
from tests.support.fake_google import FakeGoogle
from tests.support.review import paused_job_with_board
from tests.support.settings import replace

VIDEO_MODEL = "veo-3.1-fast-generate-001"  # veo-3.0-fast: retired by Google on Vertex AI, refused
JOB_TIMEOUT_S = 300.0


@pytest.fixture(scope="module")
def short_song(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A 12 s song (intro, verse, chorus at 120 BPM) and its true duration."""
    song = synthesize_song(seed=5, structure=[("intro", 2), ("verse", 2), ("chorus", 2)])
    path = write_song(song, tmp_path_factory.mktemp("review-song") / "short.wav")
    return path, float(json.loads(path.with_suffix(".json").read_text())["duration"])


def _stores(settings: Settings) -> Stores:
    return Stores.open(settings)


def _ctx(stores: Stores, job_id: str) -> JobContext:
    return JobContext.for_job(stores, job_id)


def _wait(settings: Settings, job_id: str, states: set[JobState]) -> JobRecord:
    status = open_status_store(settings.status_url)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        record = status.get(job_id)
        if record.state in states or record.finished:
            assert record.state in states, (record.model_dump(), _log(settings, job_id))
            return record
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached {states}: {_log(settings, job_id)}")


def _log(settings: Settings, job_id: str) -> str:
    path = job_log_path(settings, job_id)
    return path.read_text()[-3000:] if path.is_file() else "(no job log)"


def _notebooks(settings: Settings, job_id: str) -> dict[str, bytes]:
    storage = open_storage(settings.storage_url)
    layout = JobLayout(job_id)
    return {
        name: storage.read_bytes(layout.notebook(name))
        for name in NOTEBOOK_NAMES
        if storage.exists(layout.notebook(name))
    }


def _video_seconds(settings: Settings, job_id: str) -> float:
    path = open_storage(settings.storage_url).local_path(JobLayout(job_id).video)
    assert path is not None and path.is_file()
    return float(media.probe(path).duration or 0.0)


# ------------------------------------------------------------------------- library, no process


def test_needs_review_only_until_approved_and_new_seeds_change() -> None:
    assert not needs_review(JobRecord(params={}))
    assert needs_review(JobRecord(params={"review": True}))
    assert not needs_review(JobRecord(params={"review": True}, approval={"approved": True}))
    assert all(new_seed(7) != 7 for _ in range(200))


# ------------------------------------------------------------- API through the real app, with Veo


@pytest.fixture
def veo_settings(vertex_settings: Settings) -> Settings:
    return replace(
        vertex_settings,
        video_model=VIDEO_MODEL,
        prompt_model="local",
        veo_poll_interval_s=0.05,
        veo_poll_max_interval_s=0.1,
        veo_requests_per_minute=60000,
        upload_secret="review-test-secret",
        api_keys=None,
    )


@pytest.fixture
def api(veo_settings: Settings) -> Iterator[tuple[TestClient, LocalLauncher]]:
    launcher = LocalLauncher(veo_settings, local_command())
    app = create_app(veo_settings)
    app.dependency_overrides[get_launcher] = lambda: launcher
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, launcher
    for execution in list(launcher._procs):  # stop what this test started, if still running
        if launcher.poll(execution) is None:
            launcher.cancel(execution)


def _upload(client: TestClient, path: Path) -> str:
    data = path.read_bytes()
    body = {"filename": path.name, "content_type": "audio/wav", "size": len(data)}
    ticket = client.post("/v1/uploads", json=body)
    assert ticket.status_code == 201, ticket.text
    put = client.put(ticket.json()["url"], content=data, headers=ticket.json()["headers"])
    assert put.status_code == 200, put.text
    return str(ticket.json()["upload_id"])


def _error(response, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text


def test_review_edit_approve_then_reroll_bills_only_what_changed(
    api: tuple[TestClient, LocalLauncher],
    veo_settings: Settings,
    fake_google: FakeGoogle,
    short_song: tuple[Path, float],
) -> None:
    client, launcher = api
    song, song_seconds = short_song
    body = {"upload_id": _upload(client, song), "prompt": "a lighthouse at dusk", "review": True}
    body["lyrics_text"] = "[00:00.50]the lamp turns slowly\n"  # a re-roll keeps the lyrics and captions
    created = client.post("/v1/jobs", json=body)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]

    # Paused after the storyboard: the process exited cleanly, nothing was asked of Veo.
    paused = _wait(veo_settings, job_id, {JobState.awaiting_approval})
    deadline = time.monotonic() + 30
    while launcher.poll(paused.execution or "") is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert launcher.poll(paused.execution or "") == 0, _log(veo_settings, job_id)
    assert fake_google.requests("predict") == []
    assert set(_notebooks(veo_settings, job_id)) == {"01_analyze", "02_storyboard"}

    review = client.get(f"/v1/jobs/{job_id}/storyboard").json()
    shots = review["shots"]
    assert len(shots) >= 2 and review["video_model"] == VIDEO_MODEL
    assert all(s["prompt"] and s["seconds"] > 0 and s["request_seconds"] in (4, 6, 8) for s in shots)
    price = review["total_usd"] / sum(s["request_seconds"] for s in shots)
    table_price = price_per_second(VIDEO_MODEL, veo_settings, resolution=paused.params.resolution)
    assert price == pytest.approx(table_price, rel=0.01)  # the table's price at the job's resolution
    assert review["total_usd"] == pytest.approx(sum(s["cost_usd"] for s in shots))
    assert paused.cost.estimated_usd == pytest.approx(review["total_usd"])
    assert sum(s["seconds"] for s in shots) == pytest.approx(song_seconds, abs=0.05)

    # Edits: checked, written to storyboard.json; bad ones change nothing.
    edited = client.patch(f"/v1/jobs/{job_id}/shots/0", json={"prompt": "  a red kite over the sea  "})
    assert edited.status_code == 200, edited.text
    assert edited.json()["shots"][0]["prompt"] == "a red kite over the sea"
    _error(client.patch(f"/v1/jobs/{job_id}/shots/99", json={"prompt": "x"}), 404, "shot_not_found")
    _error(client.patch(f"/v1/jobs/{job_id}/shots/1", json={"prompt": "  "}), 422, "empty_prompt")
    _error(client.post(f"/v1/jobs/{job_id}/shots/0:reroll"), 409, "invalid_transition")
    board = Storyboard.model_validate_json(
        open_storage(veo_settings.storage_url).read_bytes(JobLayout(job_id).storyboard)
    )
    assert board.shots[0].prompt == "a red kite over the sea" and board.shots[1].prompt == shots[1]["prompt"]

    approved = client.post(f"/v1/jobs/{job_id}:approve", json={"prompts": {"1": "a ferry in fog"}})
    assert approved.status_code == 202, approved.text
    assert approved.json()["state"] == "running"
    _error(client.post(f"/v1/jobs/{job_id}:approve"), 409, "invalid_transition")
    done = _wait(veo_settings, job_id, {JobState.succeeded})
    assert _video_seconds(veo_settings, job_id) == pytest.approx(song_seconds, abs=0.1)
    asked = [r.body["instances"][0]["prompt"] for r in fake_google.requests("predict")]
    assert len(asked) == len(shots)  # one request per shot, nothing twice
    assert "a red kite over the sea" in asked and "a ferry in fog" in asked
    assert done.cost.actual_usd == pytest.approx(review["total_usd"])
    timings = done.model_dump(mode="json")["timings"]
    assert timings["analyze"]["skipped"] and timings["storyboard"]["skipped"]
    parent_notebooks = _notebooks(veo_settings, job_id)
    assert set(parent_notebooks) == set(NOTEBOOK_NAMES)

    # Re-roll shot 1 with a new random seed: a new job, one request, one shot's cost.
    fake_google.reset()
    rerolled = client.post(f"/v1/jobs/{job_id}/shots/1:reroll")
    assert rerolled.status_code == 202, rerolled.text
    child_id = rerolled.json()["id"]
    assert child_id != job_id and rerolled.json()["reroll"]["parent_job"] == job_id
    child = _wait(veo_settings, child_id, {JobState.succeeded})
    predicts = fake_google.requests("predict")
    assert len(predicts) == 1, [r.body for r in predicts]
    assert predicts[0].body["instances"][0]["prompt"] == "a ferry in fog"
    assert predicts[0].body["parameters"]["seed"] == child.reroll.seed != shots[1]["seed"]
    assert child.cost.actual_usd == pytest.approx(shots[1]["cost_usd"])
    assert _video_seconds(veo_settings, child_id) == pytest.approx(song_seconds, abs=0.1)
    child_lyrics = open_storage(veo_settings.storage_url).read_bytes(JobLayout(child_id).input_lyrics("lrc"))
    assert child.params.lyrics == done.params.lyrics and child_lyrics
    assert "the lamp turns slowly" in client.get(f"/v1/jobs/{child_id}/captions.vtt").text

    # The notebooks keep the history: the parent's are untouched, the child has its own.
    assert _notebooks(veo_settings, job_id) == parent_notebooks
    assert {"03_generate", "04_assemble"} <= set(_notebooks(veo_settings, child_id))
    parent = client.get(f"/v1/jobs/{job_id}").json()
    assert parent["state"] == "succeeded" and parent["cost"]["actual_usd"] == pytest.approx(
        done.cost.actual_usd
    )
    _error(client.post(f"/v1/jobs/{job_id}/shots/99:reroll", json={}), 404, "shot_not_found")
    _error(client.post(f"/v1/jobs/{job_id}/shots/1:reroll", json={"bogus": 1}), 422, "invalid_parameter")


# ------------------------------------------------------------- API: cancel while awaiting approval


def test_cancel_while_awaiting_approval_stops_nothing_and_ends_the_review(settings: Settings) -> None:
    status = open_status_store(settings.status_url)
    record = status.create(JobRecord(params={"review": True}, execution="local-999999"))
    status.update(record.id, JobUpdate(state=JobState.running))
    status.update(record.id, JobUpdate(state=JobState.awaiting_approval))
    launcher = RecordingLauncher()
    app = create_app(settings)
    app.dependency_overrides[get_launcher] = lambda: launcher
    with TestClient(app, base_url="http://127.0.0.1") as client:
        _error(client.get(f"/v1/jobs/{record.id}/storyboard"), 409, "storyboard_not_ready")
        cancelled = client.post(f"/v1/jobs/{record.id}:cancel")
        assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
        assert launcher.cancelled == []  # no process waits on a review: the old pid is not signalled
        _error(client.post(f"/v1/jobs/{record.id}:approve"), 409, "invalid_transition")
        _error(client.patch(f"/v1/jobs/{record.id}/shots/0", json={"prompt": "x"}), 409, "invalid_transition")
        _error(client.post(f"/v1/jobs/{record.id}/shots/0:reroll"), 409, "invalid_transition")
        _error(client.post("/v1/jobs/j0000000000000000beef:approve"), 404, "job_not_found")
    assert launcher.launched == []
    assert status.get(record.id).state == JobState.cancelled


# --------------------------------------------------------------------------- CLI, local renderer


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, list(args))
    return result.exit_code, result.output


def test_cli_make_review_approve_and_reroll(
    kapsule_env: Settings, short_song: tuple[Path, float], tmp_path: Path
) -> None:
    song, song_seconds = short_song
    code, output = _cli(
        "make", str(song), "--review", "--prompt", "paper boats", "-o", str(tmp_path / "a.mp4")
    )
    records, _ = open_status_store(kapsule_env.status_url).list("local")
    assert len(records) == 1
    job_id = records[0].id
    assert code == 0, output + _log(kapsule_env, job_id)
    assert records[0].state == JobState.awaiting_approval
    assert f"kapsule approve {job_id}" in output and "estimated $0.00" in output
    # Shots are numbered from 1 on the command line, as in the contact sheet: the first starts at 0 s.
    assert re.search(r"│ 1 +│ 0\.00 s", output) and not re.search(r"│ 0 +│", output), output
    assert not (tmp_path / "a.mp4").exists()
    storage = open_storage(kapsule_env.storage_url)
    assert not storage.exists(JobLayout(job_id).manifest)  # nothing generated before approval

    code, output = _cli("approve", job_id, "--prompt", "bad edit")
    assert code == 2 and "N=" in output
    code, output = _cli("approve", job_id, "--prompt", "2=a paper crane", "-o", str(tmp_path / "a.mp4"))
    assert code == 0, output + _log(kapsule_env, job_id)
    # The summary lists every deliverable with its path.
    for what in ("video", "contact sheet", "poster", "job folder", "notebook 04_assemble"):
        assert what in output, output
    assert media.probe(tmp_path / "a.mp4").duration == pytest.approx(song_seconds, abs=0.1)
    board = Storyboard.model_validate_json(storage.read_bytes(JobLayout(job_id).storyboard))
    assert board.shots[1].prompt == "a paper crane"
    parent = ShotManifest.model_validate_json(storage.read_bytes(JobLayout(job_id).manifest))

    code, output = _cli("reroll", job_id, "99")
    assert code == 2 and "there is no shot 99" in output
    code, output = _cli("reroll", job_id, "0")
    assert code == 2 and "numbered from 1" in output
    code, output = _cli("reroll", job_id, "1", "-o", str(tmp_path / "a.mp4"))  # never a silent overwrite
    assert code == 2 and "output_exists" in output and "--force" in output
    assert len(open_status_store(kapsule_env.status_url).list("local")[0]) == 1  # refused before any job
    code, output = _cli("reroll", job_id, "1", "--seed", "4242", "-o", str(tmp_path / "b.mp4"))
    children = [r for r in open_status_store(kapsule_env.status_url).list("local")[0] if r.id != job_id]
    assert len(children) == 1
    child_id = children[0].id
    assert code == 0, output + _log(kapsule_env, child_id)
    assert media.probe(tmp_path / "b.mp4").duration == pytest.approx(song_seconds, abs=0.1)
    child = ShotManifest.model_validate_json(storage.read_bytes(JobLayout(child_id).manifest))
    child_board = Storyboard.model_validate_json(storage.read_bytes(JobLayout(child_id).storyboard))
    assert child_board.shots[0].seed == 4242 and child_board.shots[1].prompt == "a paper crane"
    # Only the first shot changed: its request key is new; every other clip is the parent's, byte for byte.
    assert child.shots[0].key != parent.shots[0].key
    for before, after in zip(parent.shots[1:], child.shots[1:], strict=True):
        assert after.key == before.key
        assert storage.read_bytes(after.file) == storage.read_bytes(before.file)
    assert storage.read_bytes(child.shots[0].file) != storage.read_bytes(parent.shots[0].file)
    assert (tmp_path / "a.mp4").read_bytes() != (tmp_path / "b.mp4").read_bytes()

    code, output = _cli("reroll", job_id, "1", "--seed", str(board.shots[0].seed))
    assert code == 2 and "nothing_to_reroll" in output


def test_reroll_refuses_an_unfinished_job_without_creating_one(settings: Settings) -> None:
    stores = _stores(settings)
    record = stores.status.create(JobRecord())
    launcher = RecordingLauncher()
    with pytest.raises(Exception) as caught:
        JobService(stores, launcher).reroll("local", record.id, 0)
    assert getattr(caught.value, "code", "") == "invalid_transition"
    assert launcher.launched == [] and len(stores.status.list("local")[0]) == 1


def test_concurrent_prompt_edits_all_survive_and_none_lands_after_the_approval(settings: Settings) -> None:
    """Eight reviewers edit eight shots at once: every edit is in the storyboard the job generates from."""
    stores = _stores(settings)
    job_id = paused_job_with_board(stores, 8)
    with ThreadPoolExecutor(max_workers=8) as pool:
        boards = list(pool.map(lambda i: edit_shots(_ctx(stores, job_id), {i: f"edited {i}"}), range(8)))
    assert all(board.shots[i].prompt == f"edited {i}" for i, board in enumerate(boards))
    assert [s.prompt for s in load_board(_ctx(stores, job_id)).shots] == [f"edited {i}" for i in range(8)]
    launcher = RecordingLauncher()
    JobService(stores, launcher).approve("local", job_id, {3: "approved with this one"})
    assert launcher.launched == [job_id]
    stored = Storyboard.model_validate_json(stores.storage.read_bytes(JobLayout(job_id).storyboard))
    expected = [f"edited {i}" for i in range(8)]
    expected[3] = "approved with this one"
    assert [s.prompt for s in stored.shots] == expected  # what the generate stage reads
    with pytest.raises(InvalidTransition):
        edit_shots(_ctx(stores, job_id), {0: "too late"})
    stored = Storyboard.model_validate_json(stores.storage.read_bytes(JobLayout(job_id).storyboard))
    assert stored.shots[0].prompt == "edited 0"


def test_the_review_lists_the_lyric_lines_and_marks_the_unsure_ones(settings: Settings) -> None:
    stores = _stores(settings)
    job_id = paused_job_with_board(stores, 2)
    assert review_summary(_ctx(stores, job_id)).lyrics == []  # a job without lyrics
    lines = [
        TimedLine(start=0.5, end=1.5, text="walking down the river road"),
        TimedLine(start=2.0, end=3.5, text="every light is turning gold", confidence=0.3),
    ]
    stores.storage.write_bytes(JobLayout(job_id).lyrics, lines_to_json(lines).encode())
    review = review_summary(_ctx(stores, job_id))
    assert [(line.text, line.start, line.sure) for line in review.lyrics] == [
        ("walking down the river road", 0.5, True),
        ("every light is turning gold", 2.0, False),
    ]
    assert review.model_dump()["lyrics"][1]["confidence"] == 0.3


def test_a_bad_edit_among_good_ones_records_none_of_them(settings: Settings) -> None:
    stores = _stores(settings)
    job_id = paused_job_with_board(stores, 2)
    with pytest.raises(KapsuleError) as caught:
        edit_shots(_ctx(stores, job_id), {0: "fine", 5: "no such shot"})
    assert caught.value.code == "shot_not_found"
    with pytest.raises(KapsuleError) as caught:
        edit_shots(_ctx(stores, job_id), {0: "fine", 1: "   "})
    assert caught.value.code == "empty_prompt"
    assert [s.prompt for s in load_board(_ctx(stores, job_id)).shots] == [
        "original 0",
        "original 1",
    ]


def test_the_generate_stage_reads_every_recorded_edit_even_if_the_file_lags(kapsule_env: Settings) -> None:
    """An edit's late file write lost the race to another one: the record is authoritative.
    (``stages.open_job`` is what a notebook kernel calls: it reads the environment.)"""
    stores = _stores(kapsule_env)
    job_id = paused_job_with_board(stores, 3)
    edit_shots(_ctx(stores, job_id), {1: "kept in the record"})
    stale = load_board(_ctx(stores, job_id)).model_copy(deep=True)
    stale.shots[1].prompt = "original 1"
    stores.storage.write_bytes(JobLayout(job_id).storyboard, stale.model_dump_json().encode())
    stores.status.update(job_id, JobUpdate(state=JobState.running))
    board = stages.load_storyboard(stages.open_job(kapsule_env, job_id))
    assert board.shots[1].prompt == "kept in the record"
    stored = Storyboard.model_validate_json(stores.storage.read_bytes(JobLayout(job_id).storyboard))
    assert stored.shots[1].prompt == "kept in the record"  # the audit trail is put right too
