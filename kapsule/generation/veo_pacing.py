"""How fast the Veo generator may go: a quota-window rate limiter and a learned poll schedule.

Kept apart from ``veo.py`` because both are pure timing logic with injectable clocks, tested without
any server, while ``veo.py`` is about requests and answers.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """At most ``per_minute`` calls in any 60 s window, across threads (a quota is per project).

    A sliding window rather than even spacing: eight shots under a 10/min quota start together
    instead of 6 s apart, and only a call that would break the quota waits. Any fixed minute is
    also a window, so this never exceeds a per-minute quota however Google counts it.
    ``clock``/``sleep`` are injectable so tests check the schedule without waiting.
    """

    def __init__(
        self,
        per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.capacity = max(1, int(per_minute))
        self.window = 60.0 * self.capacity / per_minute  # < 1/min: one call per 60/per_minute s
        self._starts: deque[float] = deque(maxlen=self.capacity)
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Block until a call may go out; return how long it waited."""
        with self._lock:
            now = self._clock()
            start = now
            if len(self._starts) == self.capacity:  # the oldest of the last `capacity` calls must age out
                start = max(now, self._starts[0] + self.window)
            self._starts.append(start)
        if start > now:
            self._sleep(start - now)
        return start - now


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


__all__ = ["PollSchedule", "RateLimiter"]
