"""One Veo quota per project, model and region, shared by every job execution of the deployment.

Google's Veo quota counts *start* requests per minute per project and region (50 for the ``-001``
ids, 10 for ``-preview``). Each job used to pace itself as if it had the quota alone, so ten jobs at
once met a storm of 429s. Now every start draws a token from one bucket held in the status store,
changed in the store's transaction (``StatusStore.quota``), so every process sees the same bucket:

- **size**: the ceiling is the model's quota (``ceiling_rpm``; ``veo_requests_per_minute`` overrides
  it, e.g. for a raised quota). The bucket holds ``BURST_S`` seconds of the current rate (at least
  one start) and refills so that the burst and a minute's refill stay under the rate: no 60 s window
  sees more.
- **AIMD**: a 429 halves the rate and empties the bucket (``QuotaThrottled``); the rate grows back
  by ``GROWTH_RPM_PER_MIN`` each minute without one, up to the ceiling.
- **fair between jobs**: a job that finds no token joins the waiting list once (a numbered
  ticket); a token goes to the job that has waited longest, so jobs take turns whatever number of
  shots each has in flight. A job that stops asking leaves the list after ``WAITING_TTL_S``; one
  that is late for its turn (a spacing past when it was told to ask again) lets the next asker have
  the token, so a slow store or host never leaves the quota unused.

``grants`` counts each job's starts in the current minute: doctor and the job record show the quota
and each job's share from it. Times are seconds on a clock every process shares (``time.time``),
passed in, so the rules are pure and tests run them at any speed.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from kapsule.infra.status.base import StatusStore

BURST_S = 2.4  # the bucket holds this many seconds of the rate (2 starts at 50/min)


def capacity(rate: float) -> float:
    """The most tokens the bucket holds: ``BURST_S`` seconds of the rate, and at least one."""
    return max(1.0, rate * BURST_S / 60.0)


def refill_per_min(rate: float) -> float:
    """The bucket refills a little slower than the rate, so that a full bucket plus a minute's refill
    is still the rate (and 2 % under it, for the time a start takes to reach Google): no 60 s window,
    however Google places it, sees more starts than the quota."""
    return max(rate * 0.5, rate - capacity(rate) - 0.02 * rate)


GROWTH_RPM_PER_MIN = 5.0  # additive increase after a 429
FLOOR_RPM = 1.0
WAITING_TTL_S = 30.0
SHRINK_EVERY_S = 10.0  # 429s closer together than this are one overshoot: the rate halves once
WINDOW_S = 60.0


def spacing_s(rate: float) -> float:
    """Seconds between starts once the bucket's burst is spent, at ``rate`` per minute."""
    return 60.0 / refill_per_min(rate)


def ceiling_rpm(model: str, override: float | None = None) -> float:
    """The project's start requests per minute for ``model``: 10 for ``-preview`` ids, 50 otherwise."""
    if override:
        return float(override)
    return 10.0 if model.endswith("-preview") else 50.0


def quota_key(model: str, location: str) -> str:
    """The quota's name: Google counts per project (the deployment), model and region."""
    return re.sub(r"[^A-Za-z0-9_.~-]", "_", f"veo~{model}~{location or 'global'}")


class QuotaState(BaseModel):
    """The shared bucket as the store holds it."""

    ceiling: float
    rate: float  # requests per minute now (AIMD)
    tokens: float
    at: float  # when ``tokens`` and ``rate`` were last brought up to date
    throttled_at: float | None = None
    waiting: dict[str, int] = Field(default_factory=dict)  # job -> its ticket: the order it found no token
    next_ticket: int = 0
    asked: dict[str, float] = Field(default_factory=dict)  # job -> when it last asked
    due: dict[str, float] = Field(default_factory=dict)  # waiting job -> when it was told to ask again
    window_start: float = 0.0
    grants: dict[str, int] = Field(default_factory=dict)  # job -> starts in the current window
    throttles: int = 0  # 429s seen, ever


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QuotaAsk(_Frozen):
    """``job`` wants to send one start now."""

    job: str
    now: float
    ceiling: float


class QuotaThrottled(_Frozen):
    """Google answered 429 to a start: shrink."""

    now: float
    ceiling: float


QuotaChange = QuotaAsk | QuotaThrottled


class QuotaGrant(_Frozen):
    """The answer: ``wait_s`` 0 means send now; else ask again after ``wait_s``."""

    wait_s: float
    rate: float


def _fresh(ceiling: float, now: float) -> QuotaState:
    return QuotaState(
        ceiling=ceiling, rate=ceiling, tokens=ceiling * BURST_S / 60.0, at=now, window_start=now
    )


def _brought_up_to(state: QuotaState, now: float, ceiling: float) -> QuotaState:
    """Refill the bucket and grow the rate for the time passed since ``state.at``."""
    elapsed = max(0.0, now - state.at)
    rate = min(ceiling, state.rate + GROWTH_RPM_PER_MIN * elapsed / 60.0)
    if ceiling != state.ceiling and state.rate >= state.ceiling:  # a new ceiling: follow it
        rate = ceiling
    tokens = min(capacity(rate), state.tokens + elapsed * refill_per_min(rate) / 60.0)
    window_start, grants = state.window_start, state.grants
    if now - window_start >= WINDOW_S:
        window_start, grants = now, {}
    waiting = {
        job: since
        for job, since in state.waiting.items()
        if now - state.asked.get(job, since) < WAITING_TTL_S
    }
    asked = {job: at for job, at in state.asked.items() if now - at < WAITING_TTL_S}
    return state.model_copy(
        update={
            "ceiling": ceiling,
            "rate": max(FLOOR_RPM, rate),
            "tokens": tokens,
            "at": now,
            "window_start": window_start,
            "grants": grants,
            "waiting": waiting,
            "asked": asked,
        }
    )


def apply_quota(state: QuotaState | None, change: QuotaChange) -> tuple[QuotaState, QuotaGrant]:
    """The bucket after ``change``, and the answer to give; stores call it inside their transaction."""
    state = _brought_up_to(state or _fresh(change.ceiling, change.now), change.now, change.ceiling)
    if isinstance(change, QuotaThrottled):
        if state.throttled_at is not None and change.now - state.throttled_at < SHRINK_EVERY_S:
            # The same overshoot answered several starts at once: shrink once for it, not per answer.
            state = state.model_copy(update={"tokens": 0.0, "throttles": state.throttles + 1})
            return state, QuotaGrant(wait_s=60.0 / state.rate, rate=state.rate)
        rate = max(FLOOR_RPM, state.rate / 2)
        state = state.model_copy(
            update={"rate": rate, "tokens": 0.0, "throttled_at": change.now, "throttles": state.throttles + 1}
        )
        return state, QuotaGrant(wait_s=60.0 / rate, rate=rate)
    job, now = change.job, change.now
    asked = {**state.asked, job: now}
    first = min(state.waiting.items(), key=lambda item: item[1], default=None)
    per_token = spacing_s(state.rate)
    # The first in line has the turn, unless it is late (a slow store, a sleepy host): then the token
    # goes to whoever asks, rather than to nobody.
    late = first is not None and now > state.due.get(first[0], now) + per_token
    turn = first is None or first[0] == job or late
    if state.tokens >= 1.0 and turn:
        waiting = {other: ticket for other, ticket in state.waiting.items() if other != job}
        grants = {**state.grants, job: state.grants.get(job, 0) + 1}
        due = {other: at for other, at in state.due.items() if other in waiting}
        state = state.model_copy(
            update={
                "tokens": state.tokens - 1.0,
                "waiting": waiting,
                "grants": grants,
                "asked": asked,
                "due": due,
            }
        )
        return state, QuotaGrant(wait_s=0.0, rate=state.rate)
    ticket = state.waiting.get(job, state.next_ticket)
    waiting = {**state.waiting, job: ticket}
    ahead = sum(1 for other in waiting.values() if other < ticket)
    wait = max(0.0, 1.0 - state.tokens) * per_token + ahead * per_token
    # Asking again sooner than its turn can come is only load on the store; the ticket keeps its place
    # as long as the job asks within WAITING_TTL_S.
    wait = max(per_token / 20, min(wait, WAITING_TTL_S / 2))
    next_ticket = state.next_ticket + (job not in state.waiting)
    due = {**{o: at for o, at in state.due.items() if o in waiting}, job: now + wait}
    state = state.model_copy(
        update={"waiting": waiting, "asked": asked, "next_ticket": next_ticket, "due": due}
    )
    return state, QuotaGrant(wait_s=wait, rate=state.rate)


def describe_quota(key: str, state: QuotaState | None, ceiling: float) -> str:
    """One line for doctor: the quota, its rate now, the 429s seen, and each job's share this minute."""
    if state is None:
        return f"{key}: {ceiling:g}/min, unused so far"
    shares = ", ".join(f"{job} {count}" for job, count in sorted(state.grants.items(), key=lambda i: -i[1]))
    return (
        f"{key}: {state.ceiling:g}/min, now {state.rate:.1f}/min, {state.throttles} 429s seen, "
        f"{len(state.waiting)} job(s) waiting; starts this minute: {shares or 'none'}"
    )


class SharedQuota:
    """A job execution's handle on the shared bucket: ``wait`` before each start, ``throttled`` on a 429."""

    def __init__(
        self,
        status: StatusStore,
        key: str,
        job: str,
        ceiling: float,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.status, self.key, self.job, self.ceiling = status, key, job, ceiling
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()  # this job's threads ask one at a time: one place in the queue

    def wait(self) -> float:
        """Block until this job may send a start; return how long it waited."""
        began = self._clock()
        with self._lock:
            while True:
                grant = self.status.quota(
                    self.key, QuotaAsk(job=self.job, now=self._clock(), ceiling=self.ceiling)
                )
                if grant.wait_s <= 0:
                    return self._clock() - began
                self._sleep(grant.wait_s)

    def throttled(self) -> None:
        self.status.quota(self.key, QuotaThrottled(now=self._clock(), ceiling=self.ceiling))
