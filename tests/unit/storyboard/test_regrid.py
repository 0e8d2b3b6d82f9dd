"""The musician fixes the beat grid before paying: double, half, shift, BPM, and a free re-plan.

A real job (the demo song, local models) is analysed and planned in-process and paused for review;
then its grid is changed through the job service and over the API. The storyboard's cuts must land on
the new grid, the click preview must be rewritten, and nothing may be launched or generated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kapsule.control.service import GridChange
from kapsule.core.errors import InvalidTransition
from kapsule.core.settings import Settings
from kapsule.infra.context import JobContext
from kapsule.job.artifacts import Analysis, Storyboard
from kapsule.job.record import JobState
from kapsule.song.click_track import grid_key
from tests.support.api import (
    RecordingLauncher,
    api_client,
)
from tests.support.review import paused_real_job, regrid_song


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 s at 120 BPM (intro, verse, chorus): enough bars to re-plan, a third of the demo song's analysis."""
    return regrid_song(tmp_path_factory.mktemp("regrid"))


_paused_job = paused_real_job


def _cut_times(ctx: JobContext) -> list[float]:
    board = ctx.read_model(ctx.layout.storyboard, Storyboard)
    return [shot.start for shot in board.shots[1:]]


def _on(times: list[float], grid: list[float], fps: int = 24) -> bool:
    grid_arr = np.asarray(grid)
    return all(np.min(np.abs(grid_arr - t)) <= 1.0 / fps for t in times)


def test_double_half_and_shift_re_plan_the_storyboard_on_the_new_grid_for_free(
    settings: Settings, song: Path
) -> None:
    service, ctx = _paused_job(settings, song)
    before = ctx.read_model(ctx.layout.analysis, Analysis)
    click_before = ctx.storage.read_bytes(ctx.layout.click_preview)

    review = service.regrid("local", ctx.job_id, GridChange(tempo="double"))
    doubled = ctx.read_model(ctx.layout.analysis, Analysis)
    assert doubled.tempo == pytest.approx(2 * before.tempo, rel=0.01)
    assert len(doubled.beats) >= 2 * len(before.beats) - 2
    assert _on(_cut_times(ctx), doubled.beats)
    assert ctx.storage.read_bytes(ctx.layout.click_preview) != click_before
    assert review.state == JobState.awaiting_approval.value and review.to_generate == len(review.shots)

    service.regrid("local", ctx.job_id, GridChange(tempo="half"))
    service.regrid("local", ctx.job_id, GridChange(shift_beats=1))
    shifted = ctx.read_model(ctx.layout.analysis, Analysis)
    assert shifted.tempo == pytest.approx(before.tempo, rel=0.01)
    period = 60.0 / before.tempo
    assert shifted.downbeats[0] == pytest.approx(before.downbeats[0] + period, abs=0.05) or (
        shifted.downbeats[0]
        == pytest.approx(before.downbeats[0] + period - before.beats_per_bar * period, abs=0.05)
    )
    assert _on(_cut_times(ctx), shifted.beats)
    assert service.launcher.launched == [ctx.job_id]  # type: ignore[attr-defined]  # submit's only
    assert ctx.record().state == JobState.awaiting_approval


def test_a_bpm_analyses_again_and_only_a_paused_job_can_be_re_planned(settings: Settings, song: Path) -> None:
    service, ctx = _paused_job(settings, song)
    before = ctx.read_model(ctx.layout.analysis, Analysis)
    service.regrid("local", ctx.job_id, GridChange(bpm=before.tempo / 2))
    again = ctx.read_model(ctx.layout.analysis, Analysis)
    assert again.tempo == pytest.approx(before.tempo / 2, rel=0.02) and again.hints is not None
    service.cancel("local", ctx.job_id)
    with pytest.raises(InvalidTransition):
        service.regrid("local", ctx.job_id, GridChange(tempo="double"))


def test_the_api_re_plans_and_serves_the_grid_and_the_click_preview(
    api_settings: Settings, song: Path
) -> None:
    _, ctx = _paused_job(api_settings, song)
    with api_client(RecordingLauncher(), api_settings) as client:
        grid = client.get(f"/v1/jobs/{ctx.job_id}/analysis")
        assert grid.status_code == 200 and grid.json()["beats"]
        click = client.get(f"/v1/jobs/{ctx.job_id}/click")
        assert click.status_code == 200 and click.headers["content-type"] == "audio/mp4"
        replanned = client.post(f"/v1/jobs/{ctx.job_id}:regrid", json={"tempo": "double"})
        assert replanned.status_code == 200, replanned.text
        assert replanned.json()["shots"]
        bad = client.post(f"/v1/jobs/{ctx.job_id}:regrid", json={"tempo": "triple"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_parameter"


def test_the_api_and_notebook_01_play_each_reading_as_clicks(api_settings: Settings, song: Path) -> None:
    from kapsule.stages import report

    _, ctx = _paused_job(api_settings, song)
    analysis = ctx.read_model(ctx.layout.analysis, Analysis)
    # notebook 01: one player when the analysis is sure; both readings and the command when unsure
    assert (
        report.click_player(ctx, analysis.model_copy(update={"close_call": None})).data.count("<audio") == 1
    )
    unsure = report.click_player(ctx, analysis.model_copy(update={"close_call": "half_tempo"})).data
    assert unsure.count("<audio") == 2 and "unsure" in unsure
    assert "kapsule regrid JOB_ID --tempo half" in unsure
    half = next(r for r in analysis.alternatives if r.kind == "half_tempo")
    with api_client(RecordingLauncher(), api_settings) as client:
        chosen = client.get(f"/v1/jobs/{ctx.job_id}/click")
        slow = client.get(f"/v1/jobs/{ctx.job_id}/click", params={"reading": "half_tempo"})
        assert slow.status_code == 200 and slow.headers["content-type"] == "audio/mp4"
        assert slow.content != chosen.content
        # rendered once, then kept under a name of that grid
        assert (
            ctx.storage.read_bytes(
                ctx.layout.reading_click_preview("half_tempo", grid_key(half.beats, half.downbeats))
            )
            == slow.content
        )
        assert client.get(f"/v1/jobs/{ctx.job_id}/click", params={"reading": "triple"}).status_code == 422
        client.post(f"/v1/jobs/{ctx.job_id}:regrid", json={"tempo": "half"})  # chosen: no runner-up left
        gone = client.get(f"/v1/jobs/{ctx.job_id}/click", params={"reading": "half_tempo"})
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
