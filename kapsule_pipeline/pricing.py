"""What a second of generated video costs, by model: the base layer's one lookup of the price table.

Generators (a backend) price their own requests and the cost estimate (the domain) sums them; both
read the table (``settings.video_prices_usd_per_s``) through this one function, which lives in the
base layer so neither has to import the other.
"""

from __future__ import annotations

import fnmatch

from kapsule_pipeline.errors import ConfigError
from kapsule_pipeline.settings import Settings


def price_per_second(model: str, settings: Settings) -> float:
    """USD per second of video for ``model``: the longest matching key (id or glob) of the table wins."""
    table = settings.video_prices_usd_per_s
    if model in table:
        return float(table[model])
    matches = [pattern for pattern in table if fnmatch.fnmatchcase(model, pattern)]
    if not matches:
        raise ConfigError(
            f"no price for video model {model!r}: add it to KAPSULE_VIDEO_PRICES_USD_PER_S "
            f'(JSON, e.g. {{"{model}": 0.40}}) so the budget can be checked'
        )
    return float(table[max(matches, key=len)])
