"""The Veo table is data (``kapsule/catalog/video_models.toml``): a slip in it fails loudly, naming it."""

from __future__ import annotations

import pytest

from kapsule.catalog.video_models import parse_table

TABLE = """
[sources]
page = "Google's model page"

[notes]
loud = "audio is always on"

[models."veo-x".vertex]
seconds = [4, 8]
resolutions = { "720p" = {}, "1080p" = { seconds = [8] } }
note = "loud"
lifecycle = { retires = 2026-06-30, source = "page", replacement = "veo-y" }
sources = ["page"]
"""


def test_rows_get_their_texts_and_the_defaults_of_what_they_leave_out() -> None:
    caps = parse_table(TABLE)["veo-x"]["vertex"]
    assert caps.note == "audio is always on"
    assert caps.lifecycle is not None and caps.lifecycle.source == "Google's model page"
    assert caps.lifecycle.confirmed and caps.limit("1080p").seconds == (8,)
    assert caps.aspects == ("16:9", "9:16") and not caps.reference_images
    assert caps.sources == ("Google's model page",) and caps.reference_aspects == ("16:9",)


@pytest.mark.parametrize(
    ("slip", "named"),
    [
        (("seconds = [4, 8]", "second = [4, 8]"), "second"),  # a misspelt key
        (("seconds = [4, 8]", 'seconds = ["four"]'), "seconds"),  # a wrong type
        ((".vertex]", ".vertx]"), "vertx"),  # a mode that does not exist
        (('source = "page"', 'source = "pgae"'), r"veo-x \(vertex\): no source 'pgae'"),
        (('note = "loud"', 'note = "lound"'), r"veo-x \(vertex\): no note 'lound'"),
        (("retires = 2026-06-30", "retires = 2026-13-30"), "line"),  # not TOML: the line is named
        (('sources = ["page"]', "sources = []"), r"veo-x \(vertex\): a row must name its sources"),
        (('sources = ["page"]', 'sources = ["pgae"]'), r"veo-x \(vertex\): no source 'pgae'"),
    ],
)
def test_a_slip_in_the_table_is_refused_naming_it(slip: tuple[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        parse_table(TABLE.replace(*slip))
