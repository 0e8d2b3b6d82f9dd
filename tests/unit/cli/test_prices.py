"""``kapsule prices`` and the README's price table come from the catalog, and agree."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from kapsule.catalog import video_models
from kapsule.cli.main import app
from kapsule.cli.prices import markdown_table, price_rows

README = Path(__file__).resolve().parents[3] / "README.md"


def test_the_readme_price_table_is_the_catalogs() -> None:
    text = README.read_text()
    table = text.split("<!-- prices:start -->\n", 1)[1].split("\n<!-- prices:end -->", 1)[0]
    assert table == markdown_table(), "README.md's prices are stale: paste `kapsule prices --markdown`"


def test_a_minute_of_song_costs_sixty_seconds_of_video_at_list_price() -> None:
    rows = {(r.model, r.mode): r for r in price_rows()}
    fast = rows[("veo-3.1-fast-generate-001", "Gemini API")]
    per_s = video_models.price_per_second("veo-3.1-fast-generate-001", "gemini_api", resolution="720p")
    assert fast.usd_per_minute["720p"] == round(60 * per_s, 2) > 0
    listed = CliRunner().invoke(app, ["prices"])
    assert listed.exit_code == 0 and "veo-3.1-fast-generate-001" in listed.stdout
    assert "local renderer is free" in listed.stdout
