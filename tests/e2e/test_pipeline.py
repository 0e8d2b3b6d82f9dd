"""End to end: ``kapsule make`` on a 36 s song shaped like the demo, through the four notebooks, to a
beat-cut MP4. (The two notebook checks at the top are fast; the rest read one job, made once.)

Everything is real: the CLI launches the job entrypoint as a subprocess, papermill runs each notebook
in a fresh kernel, FFmpeg encodes, and the checks are the ones a user would make on the result.
"""

from __future__ import annotations

import ast
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import nbformat
import numpy as np
import papermill
import pytest
from typer.testing import CliRunner

from kapsule import media
from kapsule.cli.main import app
from kapsule.control.pipeline import run_job
from kapsule.core.settings import Settings
from kapsule.infra.status import open_status_store
from kapsule.infra.storage import open_storage
from kapsule.job.artifacts import Analysis, ShotManifest, Storyboard
from kapsule.job.layout import NOTEBOOK_NAMES, JobLayout
from kapsule.job.params import JobOptions
from kapsule.job.record import JobRecord, JobState, utcnow
from kapsule.stages import STAGE_NOTEBOOKS
from tests.support.clips import subtitle_packets
from tests.support.paths import REPO
from tests.support.settings import home_settings, use_environment

# One worker makes the module's job once (make test runs --dist loadgroup).
pytestmark = pytest.mark.xdist_group("demo-job")

NOTEBOOKS = REPO / "notebooks"


def test_committed_notebooks_are_what_the_build_script_writes() -> None:
    """The notebooks are generated code: no hand edits, no stored outputs."""
    proc = subprocess.run(
        [sys.executable, str(NOTEBOOKS / "_build.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in NOTEBOOK_NAMES:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        assert all(
            not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code"
        )


@pytest.mark.parametrize(("stage", "name"), list(STAGE_NOTEBOOKS.items()))
def test_each_notebook_declares_the_job_and_every_option_with_its_default(stage: str, name: str) -> None:
    """Every notebook declares ``job_id`` (the one parameter the pipeline injects) and every value a
    user gives (``JobOptions``), with the model's defaults, for a run by hand."""
    declared = papermill.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb"))
    expected = {"job_id": "", **{k: v.default for k, v in JobOptions.model_fields.items()}}
    assert {k: ast.literal_eval(v["default"]) for k, v in declared.items()} == expected


LYRICS = (
    "[00:09.00]<00:09.00>paper <00:09.60>boats <00:10.20>on <00:10.60>silver <00:11.40>streams\n"
    "[00:13.00]we sail until the morning\n"
    "[00:19.00]neon rivers glow\n"
    "[00:25.00]夜空の星\n"
    "[00:31.00]home again\n"
    "[00:34.00]\n"
)
LYRIC_STARTS = [9.0, 13.0, 19.0, 25.0, 31.0]


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """36 s with the demo song's shape (intro, verse, chorus, verse, outro at 120 BPM), its ground
    truth beside it: five shots or more, at 60 % of the 60 s demo song's cost."""
    from kapsule.demo.song import synthesize_song, write_song

    structure = [("intro", 2), ("verse", 4), ("chorus", 4), ("verse", 4), ("outro", 4)]
    return write_song(
        synthesize_song(seed=7, structure=structure), tmp_path_factory.mktemp("e2e-song") / "song.wav"
    )


@dataclass(frozen=True)
class Made:
    settings: Settings
    video: Path
    job: JobRecord
    song_seconds: float

    @property
    def layout(self) -> JobLayout:
        return JobLayout(self.job.id)

    def storage_file(self, key: str) -> Path:
        path = open_storage(self.settings.storage_url).local_path(key)
        assert path is not None
        return path


@pytest.fixture(scope="module")
def e2e_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A Kapsule home of the module's own, exported to the environment `kapsule make` reads."""
    with pytest.MonkeyPatch.context() as patch:
        yield use_environment(home_settings(tmp_path_factory.mktemp("e2e")), patch)


@pytest.fixture(scope="module")
def made(
    e2e_settings: Settings,
    song: Path,
    artifacts_dir: Path,
) -> Made:
    out = artifacts_dir / "e2e-demo.mp4"
    lyrics = song.with_name("my words.lrc")  # the name the musician gave, shown as given
    lyrics.write_text(LYRICS, encoding="utf-8")
    args = ["make", str(song), "-o", str(out), "--prompt", "a paper boat on a neon river"]
    args += ["--lyrics", str(lyrics), "--captions", "both"]  # the lyric path rides on the same job
    args += ["--force"]  # test-artifacts/ keeps the last run's video: replace it

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(out)
    records, _ = open_status_store(e2e_settings.status_url).list("local")
    assert len(records) == 1
    # Per-stage wall time, cell time and papermill overhead, for whoever reads the artifacts.
    (artifacts_dir / "e2e-timings.json").write_text(records[0].model_dump_json(include={"timings"}, indent=2))
    truth = json.loads(song.with_suffix(".json").read_text())
    return Made(e2e_settings, out, records[0], truth["duration"])


def test_video_is_h264_and_aac_as_long_as_the_song(made: Made) -> None:
    assert made.job.state == JobState.succeeded and made.job.error is None
    info = media.probe(made.video)

    assert [v.codec for v in info.real_video] == ["h264"]
    assert [a.codec for a in info.audio] == ["aac"]
    assert info.duration is not None and abs(info.duration - made.song_seconds) <= 0.05
    assert (info.real_video[0].width, info.real_video[0].height) == (1280, 720)
    assert made.job.outputs.video == made.layout.video
    assert made.storage_file(made.layout.poster).stat().st_size > 0
    assert made.storage_file(made.layout.contact_sheet).stat().st_size > 0


def test_cuts_fall_on_the_beats(made: Made) -> None:
    analysis = Analysis.model_validate_json(made.storage_file(made.layout.analysis).read_text())
    board = Storyboard.model_validate_json(made.storage_file(made.layout.storyboard).read_text())
    tolerance = 1 / board.fps + 0.01

    cuts = media.scene_cuts(made.video)

    planned = [shot.start for shot in board.shots[1:]]
    assert len(planned) >= 4
    found_planned = [c for c in cuts if min(abs(c - p) for p in planned) <= tolerance]
    assert len(found_planned) >= len(planned) // 2, (cuts, planned)
    off_beat = [c for c in cuts if min(abs(c - b) for b in analysis.beats) > tolerance]
    assert off_beat == [], f"cuts off the beat: {off_beat}"


def test_every_notebook_is_stored_executed_with_outputs(made: Made) -> None:
    for name in NOTEBOOK_NAMES:
        nb = nbformat.read(made.storage_file(made.layout.notebook(name)), as_version=4)
        html = made.storage_file(made.layout.notebook(name, "html")).read_text()
        assert not nb.metadata.papermill.exception
        # The job's id is all the pipeline injects: its inputs come from its record, its settings
        # from the environment, and the setup cell shows them.
        assert nb.metadata.papermill.parameters == {"job_id": made.job.id}
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert {c.metadata.papermill.status for c in code} == {"completed"}, name
        stage_cell = next(c for c in code if "stage" in c.metadata.get("tags", []))
        assert stage_cell.outputs and stage_cell.execution_count, name
        setup = next(c for c in code if "setup" in c.metadata.get("tags", []))
        shown = "".join(o.get("data", {}).get("text/html", "") for o in setup.outputs)
        assert "a paper boat on a neon river" in shown and "my words.lrc" in shown, name
        assert "<html" in html and "<table" in html
        assert "Traceback" not in html

    def mimes(name: str) -> list[str]:
        nb = nbformat.read(made.storage_file(made.layout.notebook(name)), as_version=4)
        return [m for c in nb.cells if c.cell_type == "code" for o in c.outputs for m in o.get("data", {})]

    assert mimes("01_analyze").count("image/png") == 2  # waveform with beats/sections, energy
    assert mimes("02_storyboard").count("image/png") == 1  # the shot timeline
    assert "image/jpeg" in mimes("03_generate")  # the contact sheet
    assert "<video" in made.storage_file(made.layout.notebook("04_assemble", "html")).read_text()


def test_lyrics_are_timed_steer_the_shots_and_become_captions(made: Made) -> None:
    """From a timed LRC: lyrics.json, shots that know their lines, a mov_text track whose cues are the
    file's within a frame, burned captions visible at the cue (the shot's own clip has none), and the
    .srt/.vtt beside the MP4; notebooks 02 and 04 show the lines and a captioned frame."""
    from kapsule.lyrics import lines_from_json

    assert made.storage_file(made.layout.input_lyrics("lrc")).is_file()
    lines = lines_from_json(made.storage_file(made.layout.lyrics).read_bytes())
    assert [round(line.start, 2) for line in lines] == LYRIC_STARTS
    board = Storyboard.model_validate_json(made.storage_file(made.layout.storyboard).read_text())
    sung = [text for shot in board.shots for text in shot.lyrics]
    assert "paper boats on silver streams" in sung and "夜空の星" in sung

    cues = subtitle_packets(made.video)
    assert [round(a, 2) for a, _ in cues] == pytest.approx(LYRIC_STARTS, abs=1 / board.fps)
    assert [s.codec for s in media.probe(made.video).subtitles] == ["mov_text"]
    vtt = made.video.with_suffix(".vtt").read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT") and "00:00:09.000 --> " in vtt and "夜空の星" in vtt
    assert "paper boats" in made.video.with_suffix(".srt").read_text(encoding="utf-8")
    assert made.job.outputs.captions_vtt == made.layout.captions("vtt")

    at = 14.0  # inside "we sail until the morning": the final frame against its shot's own clip
    shot = next(s for s in board.shots if s.start <= at < s.end)
    manifest = ShotManifest.model_validate_json(made.storage_file(made.layout.manifest).read_text())
    result = manifest.by_index(shot.index)
    assert result is not None and result.file
    clip = made.storage_file(result.file)
    final, raw = (
        _rgb_frame(made.video, round(at * board.fps)),
        _rgb_frame(clip, round(at * board.fps) - shot.start_frame),
    )
    diff = np.abs(final - raw).max(axis=2) > 60
    assert diff.sum() > 2000, "no burned caption at the cue"
    assert np.flatnonzero(diff.any(axis=1)).min() > 720 * 0.6, "captions sit low in the frame"

    html02 = made.storage_file(made.layout.notebook("02_storyboard", "html")).read_text()
    assert "paper boats on silver streams" in html02
    nb04 = nbformat.read(made.storage_file(made.layout.notebook("04_assemble")), as_version=4)
    outputs = [o for c in nb04.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/jpeg" in o.get("data", {}) for o in outputs), "04 shows a captioned frame"


def _rgb_frame(video: Path, frame: int) -> np.ndarray:  # type: ignore[type-arg]
    result = media.run([
        "ffmpeg", "-nostdin", "-v", "error", "-i", str(video), "-vf", f"select='eq(n,{frame})'",
        "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
    ])  # fmt: skip
    return np.frombuffer(result.stdout, dtype=np.uint8).reshape(720, 1280, 3).astype(int)


def _reopen_as_crashed(settings: Settings, job_id: str) -> None:
    """Put the record back as a runner that died during assemble leaves it: running, heartbeat stale.

    A finished record accepts no write through the store (by design), so the test writes the row.
    """
    db = settings.status_url.removeprefix("sqlite://")
    with sqlite3.connect(db) as conn:
        (body,) = conn.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
        record = JobRecord.model_validate_json(body)
        crashed = record.model_copy(
            update={
                "state": JobState.running,
                "stage": "assemble",
                "heartbeat_at": utcnow() - timedelta(minutes=10),
            }
        )
        conn.execute("UPDATE jobs SET body = ? WHERE id = ?", (crashed.model_dump_json(), job_id))


def test_rerun_of_a_crashed_job_skips_the_finished_stages(made: Made) -> None:
    storage = open_storage(made.settings.storage_url)
    layout = made.layout
    shots_before = {k: made.storage_file(k).stat().st_mtime_ns for k in storage.list(layout.shots_prefix)}
    notebooks_before = {n: made.storage_file(layout.notebook(n)).stat().st_mtime_ns for n in NOTEBOOK_NAMES}
    storage.delete(layout.video)  # the attempt died before the video was delivered
    _reopen_as_crashed(made.settings, made.job.id)

    proc = subprocess.run(
        [sys.executable, "-m", "kapsule.worker"],
        cwd=REPO,
        env={**os.environ, "KAPSULE_JOB_ID": made.job.id},
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = open_status_store(made.settings.status_url).get(made.job.id)
    assert record.state == JobState.succeeded and record.attempt == made.job.attempt + 1
    timings = record.model_dump(mode="json")["timings"]
    assert {stage: t["skipped"] for stage, t in timings.items()} == {
        "analyze": True,
        "storyboard": True,
        "generate": True,
        "assemble": False,
    }
    assert {
        k: made.storage_file(k).stat().st_mtime_ns for k in storage.list(layout.shots_prefix)
    } == shots_before
    notebooks_after = {n: made.storage_file(layout.notebook(n)).stat().st_mtime_ns for n in NOTEBOOK_NAMES}
    assert [n for n in NOTEBOOK_NAMES if notebooks_after[n] != notebooks_before[n]] == ["04_assemble"]
    info = media.probe(made.storage_file(layout.video))
    assert info.duration is not None and abs(info.duration - made.song_seconds) <= 0.05


def test_failing_stage_leaves_its_partial_notebook_and_names_the_cell(made: Made, song: Path) -> None:
    status = open_status_store(made.settings.status_url)
    job = status.create(JobRecord(params={"prompt": "this one breaks"}))
    layout = JobLayout(job.id)
    # Corrupt input lands in storage after the job was created: a WAV cut off at a third of its length.
    whole = song.read_bytes()
    open_storage(made.settings.storage_url).write_bytes(layout.input_song("wav"), whole[: len(whole) // 3])

    record = run_job(job.id, made.settings)

    assert record.state == JobState.failed and record.error is not None
    assert (record.error.code, record.error.stage) == ("undecodable", "analyze")
    nb = nbformat.read(made.storage_file(layout.notebook("01_analyze")), as_version=4)
    assert nb.metadata.papermill.exception is True
    (failed,) = [c for c in nb.cells if c.cell_type == "code" and c.metadata.papermill.status == "failed"]
    (error,) = [o for o in failed.outputs if o.output_type == "error"]
    assert error.ename == "Undecodable" and "cut short" in error.evalue
    assert record.error.message.startswith(f"01_analyze failed in cell [{failed.execution_count}]")
    assert "Undecodable: " in record.error.message and "cut short" in record.error.message
    assert "Undecodable" in made.storage_file(layout.notebook("01_analyze", "html")).read_text()
    assert not open_storage(made.settings.storage_url).exists(layout.notebook("02_storyboard"))
    assert record.model_dump(mode="json")["timings"]["analyze"]["skipped"] is False
