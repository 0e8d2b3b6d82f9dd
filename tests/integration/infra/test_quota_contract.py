"""The shared Veo quota on every status store: one bucket for all jobs, AIMD on a 429, turns between jobs.

Time is a fake clock handed to ``SharedQuota`` (the store keeps whatever times it is given), so a
minute of quota passes in no time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kapsule.infra.quota import (
    QuotaAsk,
    QuotaThrottled,
    SharedQuota,
    capacity,
    ceiling_rpm,
    quota_key,
    spacing_s,
)
from kapsule.infra.status import StatusStore, open_status_store

KEY = quota_key("veo-3.1-generate-001", "us-central1")


@pytest.fixture(params=["sqlite", "firestore"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StatusStore:
    if request.param == "sqlite":
        return open_status_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    emulator = request.getfixturevalue("firestore_emulator")
    emulator.reset()
    return open_status_store(f"firestore://{emulator.project}/jobs")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_ceiling_comes_from_the_model_and_an_operator_may_raise_it() -> None:
    assert ceiling_rpm("veo-3.1-generate-001") == 50.0
    assert ceiling_rpm("veo-3.1-fast-generate-preview") == 10.0
    assert ceiling_rpm("veo-3.1-generate-001", 120.0) == 120.0
    assert quota_key("veo-3.1-generate-001", "us-central1") == "veo~veo-3.1-generate-001~us-central1"


def test_a_burst_goes_at_once_then_starts_are_spaced_at_the_rate(store: StatusStore) -> None:
    clock = Clock()
    quota = SharedQuota(store, KEY, "job-a", 50.0, clock=clock, sleep=clock.sleep)
    burst = int(capacity(50.0))
    assert [quota.wait() for _ in range(burst)] == [0.0] * burst
    began = clock.now
    for _ in range(10):
        quota.wait()
    assert clock.now - began == pytest.approx(10 * spacing_s(50.0), rel=0.05)
    assert 1.2 < spacing_s(50.0) < 1.3  # a little over 60 / 50 s: no minute sees more than 50


def test_two_stores_on_one_database_share_one_bucket(store: StatusStore, tmp_path: Path) -> None:
    clock = Clock()
    other = open_status_store(store.url)  # another process of the deployment
    a = SharedQuota(store, KEY, "job-a", 50.0, clock=clock, sleep=clock.sleep)
    b = SharedQuota(other, KEY, "job-b", 50.0, clock=clock, sleep=clock.sleep)
    began = clock.now
    for _ in range(20):
        a.wait()
        b.wait()
    elapsed = clock.now - began
    burst = int(capacity(50.0))
    assert elapsed == pytest.approx((40 - burst) * spacing_s(50.0), rel=0.1)  # one rate for both


def test_a_429_halves_the_rate_and_it_grows_back_slowly(store: StatusStore) -> None:
    clock = Clock()
    quota = SharedQuota(store, KEY, "job-a", 50.0, clock=clock, sleep=clock.sleep)
    quota.wait()
    quota.throttled()
    state = store.quota_state(KEY)
    assert state is not None and state.rate == pytest.approx(25.0) and state.tokens == 0.0
    assert state.throttles == 1
    clock.now += 60.0
    store.quota(KEY, QuotaAsk(job="job-a", now=clock.now, ceiling=50.0))
    state = store.quota_state(KEY)
    assert state is not None and state.rate == pytest.approx(30.0)  # +5 per minute without a 429
    store.quota(KEY, QuotaThrottled(now=clock.now, ceiling=50.0))
    store.quota(KEY, QuotaThrottled(now=clock.now, ceiling=50.0))  # the same overshoot: halved once
    assert store.quota_state(KEY).rate == pytest.approx(15.0)  # type: ignore[union-attr]
    clock.now += 12.0
    store.quota(KEY, QuotaThrottled(now=clock.now, ceiling=50.0))  # a new one
    assert store.quota_state(KEY).rate == pytest.approx((15.0 + 1.0) / 2)  # type: ignore[union-attr]


def test_jobs_take_turns_whatever_number_of_requests_each_has_waiting(store: StatusStore) -> None:
    """A job that keeps asking cannot starve one that asked once: once both wait, they alternate."""
    clock = Clock()
    ask = lambda job: store.quota(KEY, QuotaAsk(job=job, now=clock.now, ceiling=10.0))  # noqa: E731
    while ask("greedy").wait_s == 0:  # empty the bucket
        pass
    order: list[str] = []
    clock.now += 0.1
    ask("patient")  # waits behind greedy, whose last ask found the bucket empty
    for _ in range(6):
        clock.now += spacing_s(10.0)  # one token at 10/min
        for job in ("greedy", "patient", "greedy"):
            if ask(job).wait_s == 0:
                order.append(job)
    assert order == ["greedy", "patient"] * 3
    state = store.quota_state(KEY)
    assert state is not None and state.grants["patient"] == 3


def test_doctor_shows_the_quota_its_rate_and_each_jobs_share(tmp_path: Path) -> None:
    from kapsule.control.doctor import check_quota
    from tests.support.settings import home_settings, replace

    settings = replace(
        home_settings(tmp_path / "home"), video_model="veo-3.1-generate-001", gemini_api_key="k"
    )
    store = open_status_store(settings.status_url)
    key = quota_key("veo-3.1-generate-001", "global")
    assert "50/min, unused so far" in check_quota(settings, store).check
    clock = Clock()
    for job in ("j-one", "j-one", "j-two"):
        SharedQuota(store, key, job, 50.0, clock=clock, sleep=clock.sleep).wait()
    line = check_quota(settings, store).check
    assert "now 50.0/min, 0 429s seen" in line and "j-one 2, j-two 1" in line
