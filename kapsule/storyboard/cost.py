"""Prices, estimates and the budget check: what a storyboard will cost before anything is requested.

Veo bills per second of generated video, so the estimate is exact up to price changes: seconds asked
for x list price (``pricing.price_per_second``: the table in ``video_models``, per mode). Only shots
whose clip is not in storage yet count as new spending (never pay twice), so a retried job or a re-roll
of one shot is checked against what it would really add. ``check_budget`` raises ``BudgetExceeded``
*before* the first request, never half-way through a storyboard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kapsule.core.errors import BudgetExceeded, InvalidParameter
from kapsule.generation.base import VideoGenerator
from kapsule.job.artifacts import Storyboard
from kapsule.job.layout import JobLayout


@dataclass(frozen=True)
class CostEstimate:
    """What a storyboard costs: all shots at list price, and the part not yet in storage."""

    model: str
    shots: int
    video_seconds: float
    total_usd: float
    to_generate: int
    new_seconds: float
    new_usd: float


def estimate_storyboard(
    board: Storyboard,
    generator: VideoGenerator,
    *,
    exists: Callable[[str], bool] | None = None,
    layout: JobLayout | None = None,
) -> CostEstimate:
    """Price every shot of ``board``; with ``exists`` and ``layout``, stored clips cost nothing new."""
    total = new = seconds = new_seconds = 0.0
    to_generate = 0
    for shot in board.shots:
        request = generator.request_for(shot, board)
        usd = generator.estimate_cost_usd(request)
        total += usd
        seconds += request.seconds
        stored = exists is not None and layout is not None and exists(layout.shot(shot.index, request.key()))
        if not stored:
            new += usd
            new_seconds += request.seconds
            to_generate += 1
    return CostEstimate(
        model=generator.name,
        shots=len(board.shots),
        video_seconds=seconds,
        total_usd=round(total, 4),
        to_generate=to_generate,
        new_seconds=new_seconds,
        new_usd=round(new, 4),
    )


def check_budget(estimate: CostEstimate, budget_usd: float | None, *, spent_usd: float = 0.0) -> None:
    """Raise ``BudgetExceeded`` if ``spent_usd`` plus the new spending would pass ``budget_usd``.

    ``None`` means no cap. Called before any request, so a job never stops half-way for money.
    """
    if budget_usd is None:
        return
    if budget_usd < 0:
        raise InvalidParameter(f"budget_usd must be zero or more, got {budget_usd}")
    needed = spent_usd + estimate.new_usd
    if needed > budget_usd + 1e-9:
        raise BudgetExceeded(
            f"generating {estimate.to_generate} shots ({estimate.new_seconds:.0f} s of video with "
            f"{estimate.model}) would cost ${estimate.new_usd:.2f}"
            + (f" on top of ${spent_usd:.2f} already spent" if spent_usd else "")
            + f", over the budget of ${budget_usd:.2f}; raise budget_usd, use fewer shots (max_shots) "
            "or a cheaper model"
        )
