"""The ``kapsule`` command as a user meets it: refusals in one line, JSON a script can read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from kapsule.cli.main import app
from kapsule.core.settings import Settings
from kapsule.demo.song import synthesize_song, write_song
from kapsule.infra.status import open_status_store
from kapsule.job.params import JobParams
from kapsule.job.record import JobRecord, JobState
from kapsule.job.update import JobUpdate

runner = CliRunner()


@pytest.fixture(scope="module")
def short_song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8 s song (two bars of verse, two of chorus, 120 BPM) with its ground truth beside it."""
    song = synthesize_song(seed=5, structure=[("verse", 2), ("chorus", 2)])
    return write_song(song, tmp_path_factory.mktemp("song") / "short.wav")


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _nothing_created(settings: Settings) -> None:
    data = Path(settings.storage_url.removeprefix("file://"))
    assert not data.exists() or not any(p.is_file() for p in data.rglob("*"))
    records, _ = open_status_store(settings.status_url).list("local")
    assert records == []


def test_make_refuses_a_text_file_in_one_line_and_creates_nothing(
    kapsule_env: Settings, tmp_path: Path
) -> None:
    song = tmp_path / "song.mp3"
    song.write_text("these are the lyrics, not the song\n" * 50)

    result = runner.invoke(app, ["make", str(song), "-o", str(tmp_path / "out.mp4")])

    assert result.exit_code == 2
    lines = _lines(result.output)
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error [not_audio]: ")
    assert "text file" in lines[0]
    assert not (tmp_path / "out.mp4").exists()
    _nothing_created(kapsule_env)


def test_make_refuses_a_flac_bomb_as_too_long_and_creates_nothing(
    kapsule_env: Settings, tmp_path: Path
) -> None:
    """18 KB whose header says a minute and whose frames hold three hours (issue 22, probe 3)."""
    from tests.support.bombs import flac_bomb

    song = flac_bomb(tmp_path / "song.flac", 18 * 1024)
    result = runner.invoke(app, ["make", str(song), "-o", str(tmp_path / "out.mp4")])
    assert result.exit_code == 2
    assert _lines(result.output)[0].startswith("error [too_long]: The song is longer than 10:00")
    _nothing_created(kapsule_env)


def test_make_refuses_a_missing_file_and_a_bad_aspect_ratio(kapsule_env: Settings, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["make", str(tmp_path / "nope.wav")])
    assert missing.exit_code == 2
    assert _lines(missing.output) == [f"error [file_not_found]: there is no file at {tmp_path / 'nope.wav'}"]

    song = tmp_path / "tone.wav"
    sf.write(song, np.zeros(8000 * 6, dtype=np.float32), 8000)
    bad_aspect = runner.invoke(app, ["make", str(song), "--aspect", "4:3"])
    assert bad_aspect.exit_code == 2
    (line,) = _lines(bad_aspect.output)
    assert line.startswith("error [invalid_parameter]: aspect_ratio: Input should be '16:9', '9:16' or '1:1'")
    _nothing_created(kapsule_env)


def test_analyze_refuses_a_silent_song(kapsule_env: Settings, tmp_path: Path) -> None:
    song = tmp_path / "silence.wav"
    sf.write(song, np.zeros(22050 * 8, dtype=np.float32), 22050)

    result = runner.invoke(app, ["analyze", str(song), "--json"])

    assert result.exit_code == 2
    (line,) = _lines(result.output)
    assert line.startswith("error [silent]: ")


def test_analyze_json_has_the_analysis_json_shape(kapsule_env: Settings, short_song: Path) -> None:
    result = runner.invoke(app, ["analyze", str(short_song), "--json"])

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"duration", "tempo", "beats", "downbeats", "sections", "energy"} <= set(data)
    truth = json.loads(short_song.with_suffix(".json").read_text())
    assert abs(data["duration"] - truth["duration"]) < 0.05
    assert abs(data["tempo"] - truth["tempo"]) < 2.0
    beats = data["beats"]
    assert len(beats) >= 8 and beats == sorted(beats)
    assert all(0 <= t <= data["duration"] for t in beats)
    assert set(data["downbeats"]) <= set(beats)
    sections = data["sections"]
    assert sections and all({"start", "end", "label"} == set(s) for s in sections)
    assert sections[0]["start"] == 0 and abs(sections[-1]["end"] - data["duration"]) < 0.05
    energy = data["energy"]
    assert set(energy) == {"times", "values"} and len(energy["times"]) == len(energy["values"]) > 0
    assert all(0.0 <= v <= 1.0 for v in energy["values"])


def test_analyze_summary_names_tempo_and_sections(kapsule_env: Settings, short_song: Path) -> None:
    result = runner.invoke(app, ["analyze", str(short_song)])

    assert result.exit_code == 0, result.output
    assert "BPM" in result.output and "duration" in result.output


def test_jobs_list_and_show_print_job_records(kapsule_env: Settings) -> None:
    status = open_status_store(kapsule_env.status_url)
    first = status.create(JobRecord(params={"prompt": "first"}))
    second = status.create(JobRecord(params={"prompt": "second"}))
    status.update(second.id, JobUpdate(state=JobState.running, stage="generate", progress=0.4))

    listed = runner.invoke(app, ["jobs", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    records = [JobRecord.model_validate(r) for r in json.loads(listed.stdout)]
    assert [r.id for r in records] == [second.id, first.id]  # newest first
    assert records[0].state == JobState.running and records[0].progress == 0.4

    shown = runner.invoke(app, ["jobs", "show", first.id, "--json"])
    assert shown.exit_code == 0, shown.output
    record = JobRecord.model_validate(json.loads(shown.stdout))
    assert (
        record.id == first.id
        and record.params == JobParams(prompt="first")
        and record.state == JobState.queued
    )

    table = runner.invoke(app, ["jobs", "list"])
    assert table.exit_code == 0 and "running" in table.output


def test_jobs_show_unknown_job_is_one_line(kapsule_env: Settings) -> None:
    result = runner.invoke(app, ["jobs", "show", "j" + "f" * 20])

    assert result.exit_code == 1
    assert _lines(result.output) == [f"error [job_not_found]: there is no job 'j{'f' * 20}'"]


def test_serve_app_answers_health_checks() -> None:
    from fastapi.testclient import TestClient

    from kapsule import __version__
    from kapsule.api.main import app as api_app

    response = TestClient(api_app, base_url="http://127.0.0.1").get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


def test_jobs_list_fits_80_columns_with_the_whole_id_song_state_and_age(kapsule_env: Settings) -> None:
    status = open_status_store(kapsule_env.status_url)
    long_name = "a very long song title that would never fit in a narrow terminal (remastered 2024).flac"
    old = status.create(JobRecord(params={"song": "sung.mp3"}))
    new = status.create(JobRecord(params={"song": long_name}))
    status.update(new.id, JobUpdate(state=JobState.running, stage="storyboard", progress=0.1))
    status.update(new.id, JobUpdate(state=JobState.awaiting_approval, progress=0.15))

    listed = runner.invoke(app, ["jobs", "list"], terminal_width=80)
    assert listed.exit_code == 0, listed.output
    lines = _lines(listed.stdout)
    assert lines[0].split() == ["id", "state", "age", "song"]
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[1].startswith(f"{new.id}  awaiting approval") and "a very long song" in lines[1]
    assert lines[1].endswith("…")  # only the song is shortened, never the id
    assert lines[2].split()[0] == old.id and lines[2].endswith("sung.mp3")
    assert " s " in lines[2] or " min " in lines[2]  # the age


def test_jobs_list_from_another_folder_reads_the_same_jobs(
    kapsule_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Job records live in one place (the user's data folder, or the settings'), not the working folder."""
    record = open_status_store(kapsule_env.status_url).create(JobRecord(params={"song": "sung.mp3"}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    listed = runner.invoke(app, ["jobs", "list"])
    assert record.id in listed.stdout
    assert list(elsewhere.iterdir()) == []  # nothing created in the working folder


def test_the_default_home_is_the_users_data_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("KAPSULE_STORAGE_URL", "KAPSULE_STATUS_URL", "KAPSULE_WORK_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
    settings = Settings()
    home = tmp_path / "data-home" / "kapsule"
    assert settings.storage_url == f"file://{home / 'data'}"
    assert settings.status_url == f"sqlite:///{home / 'jobs.db'}"
    assert settings.work_dir == home / "work"


def test_make_never_overwrites_an_existing_out_file(
    kapsule_env: Settings, short_song: Path, tmp_path: Path
) -> None:
    target = tmp_path / "mine.mp4"
    target.write_bytes(b"a video I keep")
    result = runner.invoke(app, ["make", str(short_song), "-o", str(target)])
    assert result.exit_code == 2
    assert _lines(result.output) == [
        f"error [output_exists]: {target} exists; pass --force to replace it, or choose another -o"
    ]
    assert target.read_bytes() == b"a video I keep"
    _nothing_created(kapsule_env)


def test_every_video_is_named_by_its_song_and_job_and_never_lands_on_another(kapsule_env: Settings) -> None:
    from kapsule.cli.common import video_target

    record = JobRecord(params={"song": "My Song.flac"})
    target = video_target(record, None)
    assert target == Path(kapsule_env.work_dir).parent / "videos" / f"My Song-{record.id[-6:]}.mp4"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"an older video")
    assert video_target(record, None).name == f"My Song-{record.id}.mp4"
    assert video_target(record, Path("chosen.mp4")) == Path("chosen.mp4")


def test_jobs_show_prints_the_ledgers_spent_and_reserved_money(kapsule_env: Settings) -> None:
    from kapsule.job.ledger import Charge, ChargeState, Settlement

    status = open_status_store(kapsule_env.status_url)
    job = status.create(JobRecord(state=JobState.running))
    status.reserve(job.id, Charge(key="a", usd=0.8))
    status.reserve(job.id, Charge(key="b", usd=0.4))
    status.settle(job.id, "a", Settlement(state=ChargeState.spent))
    shown = runner.invoke(app, ["jobs", "show", job.id])
    assert shown.exit_code == 0, shown.output
    assert "$0.80 spent, $0.40 reserved" in shown.output
