"""End to end on the cloud backends: ``kapsule make`` with its files in (emulated) Cloud Storage and
its job record in (emulated) Firestore, selected only by settings, as on Google Cloud.

What a user checks: the MP4 they get, the executed notebooks beside the job in the private bucket,
the final video (and only the final outputs) in the public delivery bucket, and a finished job
record in the collection.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from typer.testing import CliRunner

from kapsule import media
from kapsule.cli.main import app
from kapsule.core.settings import Settings
from kapsule.infra.status import open_status_store
from kapsule.infra.storage import open_storage
from kapsule.job.layout import NOTEBOOK_NAMES, JobLayout
from kapsule.job.record import JobState
from tests.support.settings import use_environment


def _content_type(url: str, key: str) -> str:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    bucket = url.removeprefix("gs://")
    blob = storage.Client(project="t", credentials=AnonymousCredentials()).bucket(bucket).get_blob(key)
    return blob.content_type


@pytest.fixture
def short_song(demo_song_file: Path, tmp_path: Path) -> Path:
    """The demo song's first 12 s: the backends are under test here, not the renderer's stamina."""
    import soundfile

    audio, rate = soundfile.read(demo_song_file)
    path = tmp_path / "short-song.wav"
    soundfile.write(path, audio[: 12 * rate], rate)
    return path


def test_make_on_gcs_and_firestore(
    cloud_settings: Settings, short_song: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out" / "video.mp4"
    use_environment(cloud_settings, monkeypatch)  # what `kapsule make` reads

    result = CliRunner().invoke(app, ["make", str(short_song), "-o", str(out)])

    assert result.exit_code == 0, result.output
    records, _ = open_status_store(cloud_settings.status_url).list("local")
    assert len(records) == 1
    job = records[0]
    assert job.state == JobState.succeeded and job.progress == 1.0 and job.error is None
    layout = JobLayout(job.id)

    info = media.probe(out)
    assert [v.codec for v in info.real_video] == ["h264"] and [a.codec for a in info.audio] == ["aac"]

    private = open_storage(cloud_settings.storage_url)
    delivery = open_storage(cloud_settings.effective_delivery_url)
    assert private.local_path(layout.video) is None  # really in a bucket, not on disk
    assert delivery.read_bytes(layout.video) == out.read_bytes()
    assert _content_type(cloud_settings.effective_delivery_url, layout.video) == "video/mp4"
    assert not private.exists(layout.video)  # the private bucket keeps no public output
    assert private.list(layout.root + "/input/")  # the song, as uploaded
    # The work folder (RAM on Cloud Run) keeps no clip and no copy of the delivered video.
    assert sorted(Path(cloud_settings.work_dir).rglob("*.mp4")) == []

    for name in NOTEBOOK_NAMES:
        notebook = nbformat.reads(private.read_bytes(layout.notebook(name)).decode(), as_version=4)
        # Only the job's id is injected: the kernel found the bucket and Firestore from the settings.
        assert notebook.metadata.papermill.parameters == {"job_id": job.id}
        assert not notebook.metadata.papermill.exception
        assert b"<html" in private.read_bytes(layout.notebook(name, "html"))
        assert _content_type(cloud_settings.storage_url, layout.notebook(name, "html")).startswith(
            "text/html"
        )
