"""One numbering people read, from 1: the review's ``number`` beside the API's ``index`` (from 0), the
notebooks' shot tables, and the messages that name a shot."""

from __future__ import annotations

from fastapi.testclient import TestClient

from kapsule.core.settings import Settings
from kapsule.infra.context import Stores
from kapsule.job.artifacts import Storyboard
from kapsule.job.layout import JobLayout
from kapsule.stages.report import shot_table
from tests.support.api import expect_error
from tests.support.review import paused_job_with_board


def test_the_review_numbers_shots_from_1_and_keeps_the_index(
    client: TestClient, api_settings: Settings
) -> None:
    stores = Stores.open(api_settings)
    job_id = paused_job_with_board(stores, 3)
    shots = client.get(f"/v1/jobs/{job_id}/storyboard").json()["shots"]
    assert [(s["index"], s["number"]) for s in shots] == [(0, 1), (1, 2), (2, 3)]
    # A shot that does not exist is named by its number, with the numbers that do.
    message = expect_error(
        client.patch(f"/v1/jobs/{job_id}/shots/3", json={"prompt": "x"}), 404, "shot_not_found"
    )
    assert message == "there is no shot 4; this storyboard has shots 1 to 3"

    board = Storyboard.model_validate_json(stores.storage.read_bytes(JobLayout(job_id).storyboard))
    assert [row["#"] for row in shot_table(board).rows] == [1, 2, 3]  # notebook 02's table
