"""The same good job made through ``kapsule make --review`` (which runs its analysis and storyboard
kernels) and over the API holds equal ``JobParams``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from kapsule.cli.main import app as cli_app
from kapsule.cli.options import flag_for
from kapsule.core.settings import Settings
from kapsule.infra.status import open_status_store
from kapsule.job.params import JobParams
from kapsule.job.record import JobState
from tests.support.api import (
    sine_wav,
    upload_file,
)


def test_the_same_job_through_the_cli_and_the_api_holds_the_same_params(
    api: Any,
    kapsule_env: Settings,
    tmp_path: Path,
) -> None:
    """A job made with ``kapsule make --review`` (which runs until its storyboard) and one made over the
    API from the same values hold equal ``JobParams``."""
    client, _ = api
    song = sine_wav(tmp_path / "tune.wav", 6.0)
    values = {
        "prompt": "a paper boat",
        "style": "watercolour",
        "aspect_ratio": "9:16",
        "resolution": "1080p",
        "max_shots": 2,
        "seed": 9,
        "transition": "crossfade",
        "video_model": "local",
        "prompt_model": "local",
        "budget_usd": 3.5,
        "continuity": "last_frame",
    }
    created = client.post("/v1/jobs", json={"upload_id": upload_file(client, song), **values, "review": True})
    assert created.status_code == 202, created.text

    args = ["make", str(song), "--review"]
    for name, value in values.items():
        args += [flag_for(name), str(value)]
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0, result.output

    records = {r.id: r for r in open_status_store(kapsule_env.status_url).list("local")[0]}
    over_api = records.pop(created.json()["id"])
    (over_cli,) = records.values()
    assert over_cli.state == JobState.awaiting_approval
    assert over_cli.params == over_api.params == JobParams(**values, review=True, song="tune.wav")
