"""The spend ledger's contract, on every status store: reserve before spending, settle once known."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kapsule.core.errors import BudgetExceeded, DailyCapReached, InvalidTransition, KapsuleError
from kapsule.infra.status import StatusStore, open_status_store
from kapsule.job.ledger import Charge, ChargeState, Settlement
from kapsule.job.record import JobRecord, JobState
from kapsule.job.update import JobUpdate


@pytest.fixture(params=["sqlite", "firestore"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StatusStore:
    if request.param == "sqlite":
        return open_status_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    emulator = request.getfixturevalue("firestore_emulator")
    emulator.reset()
    return open_status_store(f"firestore://{emulator.project}/jobs")


def _running(store: StatusStore, owner: str = "ana", budget: float = 5.0) -> JobRecord:
    return store.create(JobRecord(owner=owner, state=JobState.running, params={"budget_usd": budget}))


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def test_a_reservation_counts_in_the_job_and_the_day_and_the_budget_refuses_the_next(
    store: StatusStore,
) -> None:
    job = _running(store, budget=2.0)
    store.reserve(job.id, Charge(key="shot-0", usd=0.8))
    store.reserve(job.id, Charge(key="shot-1", usd=0.8))
    with pytest.raises(BudgetExceeded):
        store.reserve(job.id, Charge(key="shot-2", usd=0.8))
    cost = store.get(job.id).cost
    assert (cost.reserved_usd, cost.actual_usd) == (pytest.approx(1.6), 0.0)
    assert store.day_total("ana", _today()) == pytest.approx(1.6)
    assert [e.key for e in store.ledger(job.id)] == ["shot-0", "shot-1"]


def test_the_daily_cap_counts_every_job_of_the_owner_and_not_the_local_operator(store: StatusStore) -> None:
    first, second = _running(store), _running(store)
    store.reserve(first.id, Charge(key="a", usd=1.5, cap_usd=2.0))
    with pytest.raises(DailyCapReached):
        store.reserve(second.id, Charge(key="b", usd=0.8, cap_usd=2.0))
    store.reserve(second.id, Charge(key="b", usd=0.5, cap_usd=2.0))
    assert store.day_total("ana", _today()) == pytest.approx(2.0)
    assert store.day_total("bob", _today()) == 0.0
    local = _running(store, owner="local")
    store.reserve(local.id, Charge(key="a", usd=3.0, cap_usd=2.0))  # the operator has no daily cap


def test_settling_moves_reserved_money_to_spent_or_releases_it(store: StatusStore) -> None:
    job = _running(store)
    store.reserve(job.id, Charge(key="a", usd=0.8))
    store.reserve(job.id, Charge(key="b", usd=0.8))
    started = store.settle(job.id, "a", Settlement(state=ChargeState.started, operation="ops/1"))
    assert started.operation == "ops/1" and store.get(job.id).cost.reserved_usd == pytest.approx(1.6)
    store.settle(job.id, "a", Settlement(state=ChargeState.spent, usd=0.6))
    store.settle(job.id, "a", Settlement(state=ChargeState.spent, usd=0.6))  # a repeat changes nothing
    store.settle(job.id, "b", Settlement(state=ChargeState.released))
    cost = store.get(job.id).cost
    assert (cost.actual_usd, cost.reserved_usd) == (pytest.approx(0.6), 0.0)
    assert store.day_total("ana", _today()) == pytest.approx(0.6)
    with pytest.raises(InvalidTransition):
        store.settle(job.id, "a", Settlement(state=ChargeState.released))


def test_a_key_is_charged_once_unless_it_was_released(store: StatusStore) -> None:
    job = _running(store)
    store.reserve(job.id, Charge(key="a", usd=0.8))
    with pytest.raises(InvalidTransition, match="never sent twice"):
        store.reserve(job.id, Charge(key="a", usd=0.8))
    store.settle(job.id, "a", Settlement(state=ChargeState.released))
    store.reserve(job.id, Charge(key="a", usd=0.8))
    assert store.get(job.id).cost.reserved_usd == pytest.approx(0.8)


def test_a_cancel_stops_new_reservations_not_the_bill_of_started_ones(store: StatusStore) -> None:
    job = _running(store)
    store.reserve(job.id, Charge(key="a", usd=0.8))
    store.settle(job.id, "a", Settlement(state=ChargeState.started, operation="ops/1"))
    store.update(job.id, JobUpdate(state=JobState.cancelled))
    with pytest.raises(InvalidTransition):
        store.reserve(job.id, Charge(key="b", usd=0.8))
    assert store.day_total("ana", _today()) == pytest.approx(0.8)  # still counted while it runs
    store.settle(job.id, "a", Settlement(state=ChargeState.spent))
    record = store.get(job.id)
    assert record.state == JobState.cancelled
    assert (record.cost.actual_usd, record.cost.reserved_usd) == (pytest.approx(0.8), 0.0)
    assert store.day_total("ana", _today()) == pytest.approx(0.8)


def test_racing_reservations_never_pass_the_cap(store: StatusStore) -> None:
    jobs = [_running(store, budget=0) for _ in range(3)]
    won: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()

    def spend(n: int) -> None:
        try:
            store.reserve(jobs[n % 3].id, Charge(key=f"k{n}", usd=0.5, cap_usd=2.0))
        except KapsuleError as exc:
            with lock:
                refused.append(exc.code)
        else:
            with lock:
                won.append(f"k{n}")

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 4 and refused == ["daily_cap_reached"] * 5
    assert store.day_total("ana", _today()) == pytest.approx(2.0)
    assert sum(store.get(job.id).cost.reserved_usd for job in jobs) == pytest.approx(2.0)
    assert sum(len(store.ledger(job.id)) for job in jobs) == 4
