"""What a second of generated video costs, by model: the base layer's one price lookup.

Generators (a backend) price their own requests and the cost estimate (the domain) sums them; both
go through this one function, which lives in the base layer so neither has to import the other. The
list prices themselves are in ``video_models`` (per model and per mode: Vertex and the Gemini API
bill differently, and Vertex requests are sent without audio).
"""

from __future__ import annotations

import fnmatch

from kapsule.catalog import video_models
from kapsule.core.settings import Settings


def price_per_second(model: str, settings: Settings, *, resolution: str | None = None) -> float:
    """USD per second of video for ``model`` as this deployment sends it (mode and audio from settings).

    ``resolution`` matters for the models Google prices per resolution (the Fast ones: 1080p costs
    more than 720p); without it the highest of the model's prices is returned.

    ``KAPSULE_VIDEO_PRICES_USD_PER_S`` overrides the list price when one of its keys (an id or a glob;
    the longest matching key wins) matches, e.g. for a negotiated price; it is empty by default.
    Otherwise the price is ``video_models``' for this mode, and a model not in that table raises
    ``UnknownModel``.
    """
    table = settings.video_prices_usd_per_s
    if model in table:
        return float(table[model])
    matches = [pattern for pattern in table if fnmatch.fnmatchcase(model, pattern)]
    if matches:
        return float(table[max(matches, key=len)])
    return video_models.price_per_second(model, video_models.mode_of(settings), resolution=resolution)
