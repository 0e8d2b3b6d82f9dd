"""The VideoGenerator protocol: the one seam between the pipeline and whatever draws the shots.

A backend (the local audio-reactive renderer now, Google Veo later) is picked once by
``make_video_generator`` and the rest of the code sees only these few members. The runner needs
``request_for`` separately from ``generate`` because the request's hash is the shot's storage key:
it must be known *before* generating, so a clip that already exists is never paid for twice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from kapsule.job.artifacts import Analysis, Shot, ShotRequest, ShotResult, Storyboard


@runtime_checkable
class VideoGenerator(Protocol):
    """Turns one storyboard shot into one MP4 clip."""

    name: str
    """``"local"`` or a Veo model id; recorded in every request and manifest entry."""

    exact_length: bool
    """True when clips come out with exactly ``shot.frames`` frames, so assembly can concat-copy."""

    max_workers: int
    """How many shots the runner keeps in flight at once (unless its caller says otherwise)."""

    should_stop: Callable[[], bool] | None
    """Set by the runner to the job's cancellation check; a generator that waits before paying (a Veo
    shot waiting for a slot) asks it again, one that never waits may ignore it."""

    def request_for(self, shot: Shot, board: Storyboard) -> ShotRequest:
        """Everything that decides the shot's pixels; ``request.key()`` names the clip in storage."""

    def estimate_cost_usd(self, request: ShotRequest) -> float:
        """What generating ``request`` would cost (0.0 for the local renderer), for budget checks."""

    def generate(self, request: ShotRequest, shot: Shot, analysis: Analysis, dest: Path) -> ShotResult:
        """Write the clip at ``dest`` atomically (temporary file, then ``os.replace``).

        Returns a result with state ``"done"``, the clip's frames and seconds and what it cost.
        """
