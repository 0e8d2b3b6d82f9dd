"""``kapsule make`` with Gemini prompts and Veo shots, end to end, against the local fake Google server.

Everything is real except Google: the CLI launches the job entrypoint as a subprocess, papermill
runs the four notebooks in fresh kernels, google-genai talks HTTP (Vertex mode, offline ADC) to the
fake server, FFmpeg encodes. The checks are what a user (and whoever pays the bill) would check:
the shots came from the server, the video is the song's length, a re-run pays for nothing, a refused
shot is filled and reported, and a budget that is too small stops the job before any request.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import nbformat
import pytest
from typer.testing import CliRunner

from kapsule import media
from kapsule.cli.main import app
from kapsule.control.pipeline import run_job
from kapsule.core.settings import Settings
from kapsule.demo.song import synthesize_song, write_song
from kapsule.infra.status import open_status_store
from kapsule.infra.storage import open_storage
from kapsule.job.artifacts import ShotManifest, Storyboard
from kapsule.job.layout import JobLayout
from kapsule.job.record import JobRecord, JobState
from tests.support.fake_google import FakeGoogle
from tests.support.settings import replace, use_environment

VIDEO_MODEL = "veo-3.1-fast-generate-001"  # veo-3.0-fast: retired by Google on Vertex AI, refused
PROMPT_MODEL = "gemini-2.5-flash"
# The fake Gemini writes "Gemini shot {i}: ..." per shot; its default answer (also what a re-phrasing
# request gets back) holds the style bible's palette. Refusing both makes shot 1 refused twice.
REFUSED_SHOT = 1
REFUSE_WORDS = (f"Gemini shot {REFUSED_SHOT}: ", "teal and amber")
REFUSAL_REASON = "may violate our policies"


@pytest.fixture(scope="module")
def short_song(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A 16 s song at 120 BPM (intro, verse, chorus) and its true duration."""
    song = synthesize_song(seed=11, structure=[("intro", 2), ("verse", 2), ("chorus", 4)])
    path = write_song(song, tmp_path_factory.mktemp("veo-song") / "short.wav")
    return path, float(json.loads(path.with_suffix(".json").read_text())["duration"])


@pytest.fixture
def veo_env(vertex_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Vertex mode against the fake server, Veo and Gemini as the models, waits shrunk; exported to
    the environment, which `kapsule make` (run in this process) reads."""
    veo = replace(
        vertex_settings,
        video_model=VIDEO_MODEL,
        prompt_model=PROMPT_MODEL,
        veo_poll_interval_s=0.05,
        veo_poll_max_interval_s=0.1,
        veo_requests_per_minute=60000,
    )
    return use_environment(veo, monkeypatch)


def _make(song: Path, out: Path, budget: float) -> tuple[int, str]:
    args = ["make", str(song), "-o", str(out), "--prompt", "a violinist in the rain", "--budget", str(budget)]
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def _only_job(settings: Settings) -> JobRecord:
    records, _ = open_status_store(settings.status_url).list("local")
    assert len(records) == 1
    return records[0]


def _job_log(settings: Settings, job_id: str) -> str:
    path = Path(settings.work_dir) / job_id / "job.log"
    return path.read_text()[-3000:] if path.is_file() else "(no job log)"


def _reopen(settings: Settings, job_id: str) -> None:
    """Put a finished record back to running, as a crashed attempt leaves it (the store refuses this)."""
    with sqlite3.connect(settings.status_url.removeprefix("sqlite://")) as conn:
        (body,) = conn.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
        record = JobRecord.model_validate_json(body).model_copy(update={"state": JobState.running})
        conn.execute("UPDATE jobs SET body = ? WHERE id = ?", (record.model_dump_json(), job_id))


def test_make_with_veo_and_gemini_fills_a_refused_shot_and_a_rerun_pays_nothing(
    veo_env: Settings,
    fake_google: FakeGoogle,
    fake_clip: bytes,
    short_song: tuple[Path, float],
    tmp_path: Path,
) -> None:
    song, song_seconds = short_song
    fake_google.refuse_words = REFUSE_WORDS
    out = tmp_path / "video.mp4"

    code, output = _make(song, out, budget=50.0)

    job = _only_job(veo_env)
    assert code == 0, output + _job_log(veo_env, job.id)
    assert job.state == JobState.succeeded
    storage = open_storage(veo_env.storage_url)
    layout = JobLayout(job.id)
    board = Storyboard.model_validate_json(storage.read_bytes(layout.storyboard))
    manifest = ShotManifest.model_validate_json(storage.read_bytes(layout.manifest))
    assert len(board.shots) >= 3 and board.prompt_model == PROMPT_MODEL and not board.prompt_writer_note
    assert all(s.prompt.startswith(f"Gemini shot {s.index}: ") for s in board.shots)

    # One predictLongRunning per shot, on Vertex, for the job's model; the refused shot once more,
    # with the re-phrased prompt.
    predicts = fake_google.requests("predict")
    vertex_path = f"projects/fake-project/locations/us-central1/publishers/google/models/{VIDEO_MODEL}:"
    assert predicts and all(vertex_path in r.path for r in predicts)
    asked = [r.body["instances"][0]["prompt"] for r in predicts]
    for shot in board.shots:
        assert asked.count(shot.prompt) == 1, shot.index
    assert len(asked) == len(board.shots) + 1
    assert fake_google.requests("generate")  # Gemini wrote the storyboard (and the re-phrasing)

    # Every other shot is the server's clip, byte for byte; the refused one was rendered locally.
    for result in manifest.shots:
        if result.index == REFUSED_SHOT:
            assert (result.state, result.generator, result.cost_usd) == ("fallback", "local-fallback", 0.0)
            assert len(result.refusals) == 2 and REFUSAL_REASON in result.refusals[0]
            assert "local renderer" in result.note
            assert storage.read_bytes(result.file) != fake_clip
        else:
            assert (result.state, result.generator) == ("done", VIDEO_MODEL)
            assert result.cost_usd > 0 and not result.refusals
            assert storage.read_bytes(result.file) == fake_clip

    info = media.probe(out)
    assert [v.codec for v in info.real_video] == ["h264"] and [a.codec for a in info.audio] == ["aac"]
    assert info.duration is not None and abs(info.duration - song_seconds) <= 0.05

    paid = round(sum(r.cost_usd for r in manifest.shots), 4)
    # The job's cost is its spend ledger's: every start sent, the refused shot's two operations too
    # (Google documents no refund for a filtered video: they count, the manifest's clips do not).
    ledger = open_status_store(veo_env.status_url).ledger(job.id)
    assert len(ledger) == len(predicts) and all(e.state == "spent" for e in ledger)
    refused_usd = sum(e.spent_usd for e in ledger if e.key.startswith(f"shot-{REFUSED_SHOT}-"))
    assert job.cost.actual_usd == pytest.approx(paid + refused_usd) and paid > 0 and refused_usd > 0
    assert job.cost.reserved_usd == 0
    assert job.cost.estimated_usd >= paid and job.cost.video_seconds >= 4 * len(board.shots)
    assert job.cost.prompt_tokens > 0

    # The executed notebooks show the estimate (02) and the refusal, filled locally (03).
    storyboard_html = storage.read_bytes(layout.notebook("02_storyboard", "html")).decode()
    assert "Cost estimate" in storyboard_html and f"${job.cost.estimated_usd:.2f}" in storyboard_html
    generate_nb = nbformat.reads(storage.read_bytes(layout.notebook("03_generate")).decode(), as_version=4)
    shown = json.dumps([c.get("outputs", []) for c in generate_nb.cells if c.cell_type == "code"])
    assert "local-fallback" in shown and REFUSAL_REASON in shown and "image/jpeg" in shown

    # A re-run of the same job (its storyboard and video gone) re-plans, regenerates nothing, pays nothing.
    predicts_before = len(fake_google.requests("predict"))
    storage.delete(layout.storyboard)
    storage.delete(layout.video)
    _reopen(veo_env, job.id)

    again = run_job(job.id, veo_env)

    assert again.state == JobState.succeeded, again.error
    assert again.timings["generate"].skipped is False  # the stage ran, every clip was reused
    assert len(fake_google.requests("predict")) == predicts_before
    assert again.cost.actual_usd == pytest.approx(paid + refused_usd)
    rerun = ShotManifest.model_validate_json(storage.read_bytes(layout.manifest))
    assert [(r.key, r.state) for r in rerun.shots] == [(r.key, r.state) for r in manifest.shots]
    redone = media.probe(storage.local_path(layout.video))  # type: ignore[arg-type]
    assert redone.duration is not None and abs(redone.duration - song_seconds) <= 0.05


def test_a_budget_too_small_for_the_song_is_refused_before_the_job_exists(
    veo_env: Settings, fake_google: FakeGoogle, short_song: tuple[Path, float], tmp_path: Path
) -> None:
    """No storyboard can cost less than the song's length of video: a budget below that is refused at
    submission (issue 14: every estimate is checked before a job is accepted). A budget that the
    planned shots exceed fails the generate stage before any request (test_veo's budget tests)."""
    song, _ = short_song

    code, output = _make(song, tmp_path / "video.mp4", budget=0.05)

    assert code == 2, output
    (line,) = [line for line in output.splitlines() if line.strip()]
    assert line.startswith("error [budget_exceeded]: ") and "over the budget of $0.05" in line
    assert open_status_store(veo_env.status_url).list("local") == ([], None)
    assert fake_google.requests("predict") == []
    assert not (tmp_path / "video.mp4").exists()
