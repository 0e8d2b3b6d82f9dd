"""How often the Veo generator polls: a poll schedule learned from how long operations take.

Kept apart from ``veo.py`` because it is pure timing logic, tested without any server, while
``veo.py`` is about requests and answers. How fast starts may go is the project's shared quota
(``kapsule.infra.quota``).
"""

from __future__ import annotations

import statistics
import threading
from collections import deque


class PollSchedule:
    """When to poll an operation next, learned from how long this generator's operations took.

    Operations of one model take about the same time. Until one has finished, polls back off from
    ``first`` (x1.5) to ``longest``. Then an operation sleeps until just before the typical
    duration (the median of recent ones), polls every ``first`` seconds up to 1.5x of it, and
    backs off again after that: fewer requests, and a ready video is noticed within ``first``.
    """

    LEAD = 0.95  # wake this fraction of the typical duration in, in case this one is quicker

    def __init__(self, first: float, longest: float) -> None:
        self.first, self.longest = first, max(first, longest)
        self._seen: deque[float] = deque(maxlen=16)
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._seen.append(seconds)

    @property
    def expected(self) -> float | None:
        with self._lock:
            return statistics.median(self._seen) if self._seen else None

    def delay(self, elapsed: float, previous: float | None) -> float:
        """Seconds to sleep before the next poll, ``elapsed`` s after the operation started."""
        expected = self.expected
        if expected is not None:
            wake = expected * self.LEAD
            if elapsed + self.first < wake:
                return wake - elapsed
            if elapsed < expected * 1.5:
                return self.first
        return self.first if previous is None else min(self.longest, previous * 1.5)


__all__ = ["PollSchedule"]
