"""``kapsule prices``: what a minute of song costs with each Veo model, from the catalog's list prices.

A video is as long as its song, and each shot is asked of the model in 4, 6 or 8 s clips, so a
minute of song bills a little over a minute of video: the table gives the list price of 60 s of
video per model, mode (Vertex AI or the Gemini API) and resolution, as Kapsule sends the requests.
``--markdown`` prints the table the README carries (a test checks the two agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, get_args

import typer

from kapsule.catalog import video_models

MODE_NAMES = {"vertex": "Vertex AI", "gemini_api": "Gemini API"}


@dataclass(frozen=True)
class PriceRow:
    model: str
    mode: str
    usd_per_minute: dict[str, float]  # resolution -> USD for 60 s of video
    retires: str  # "" when no date is known


def price_rows() -> list[PriceRow]:
    """One row per Veo model and mode the catalog lists, cheapest first."""
    rows = []
    for mode in get_args(video_models.Mode):
        for model, modes in video_models.VIDEO_MODELS.items():
            caps = modes.get(mode)
            if caps is None:
                continue
            prices = {
                res: round(60 * video_models.price_per_second(model, mode, resolution=res), 2)
                for res in sorted(caps.resolutions)
            }
            life = caps.lifecycle
            rows.append(PriceRow(model, MODE_NAMES[mode], prices, life.retires.isoformat() if life else ""))
    return sorted(rows, key=lambda r: (r.mode != "Vertex AI", min(r.usd_per_minute.values()), r.model))


def _usd(amount: float | None) -> str:
    return f"${amount:.2f}" if amount is not None else "—"


def markdown_table() -> str:
    lines = [
        "| Veo model | through | 720p, per minute of song | 1080p, per minute of song | served until |",
        "|---|---|---|---|---|",
    ]
    for row in price_rows():
        cells = [
            f"${row.usd_per_minute[r]:.2f}" if r in row.usd_per_minute else "—" for r in ("720p", "1080p")
        ]
        lines.append(f"| `{row.model}` | {row.mode} | {cells[0]} | {cells[1]} | {row.retires or '—'} |")
    return "\n".join(lines)


def prices(
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the README's Markdown table.")] = False,
) -> None:
    """What a minute of song costs with each Veo model (list prices; the local renderer is free)."""
    if markdown:
        typer.echo(markdown_table())
        return
    typer.echo(f"{'model':<32} {'through':<11} {'720p/min':>9} {'1080p/min':>10}  until")
    for row in price_rows():
        cells = [_usd(row.usd_per_minute.get(r)) for r in ("720p", "1080p")]
        typer.echo(f"{row.model:<32} {row.mode:<11} {cells[0]:>9} {cells[1]:>10}  {row.retires or '—'}")
    typer.echo("The local renderer is free. A minute of song bills a little over a minute of video.")
