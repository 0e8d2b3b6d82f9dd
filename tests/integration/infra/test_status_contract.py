"""One contract for every status store: transitions, paging and concurrent writers."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from kapsule.core.errors import InvalidParameter, InvalidTransition, JobNotFound
from kapsule.infra.status import StatusStore, open_status_store
from kapsule.job.params import JobParams
from kapsule.job.record import JobRecord, JobState, utcnow


@pytest.fixture(params=["sqlite", "firestore"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StatusStore:
    if request.param == "sqlite":
        return open_status_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    if request.param == "firestore":
        emulator = request.getfixturevalue("firestore_emulator")
        emulator.reset()
        return open_status_store(f"firestore://{emulator.project}/jobs")
    raise AssertionError(request.param)


def test_create_get_update(store: StatusStore) -> None:
    record = store.create(JobRecord(owner="ana", params={"prompt": "neon city"}))
    assert store.get(record.id) == record
    updated = store.update(record.id, {"state": JobState.running, "stage": "analyze", "progress": 0.1})
    assert updated.state == JobState.running
    assert store.get(record.id).progress == pytest.approx(0.1)
    assert store.get(record.id).params == JobParams(prompt="neon city")


def test_unknown_job(store: StatusStore) -> None:
    with pytest.raises(JobNotFound):
        store.get("j" + "f" * 20)
    with pytest.raises(JobNotFound):
        store.update("j" + "f" * 20, {"progress": 0.5})


def test_an_update_returns_what_readers_then_see(store: StatusStore) -> None:
    record = store.create(JobRecord(owner="ana"))
    updated = store.update(record.id, {"state": JobState.running, "message": "analyzing"})
    assert store.get(record.id) == updated


def test_ids_are_unique_and_odd_ids_are_unknown(store: StatusStore) -> None:
    record = store.create(JobRecord())
    with pytest.raises(InvalidParameter) as info:
        store.create(JobRecord(id=record.id, owner="mallory"))
    assert info.value.code == "job_exists"
    assert store.get(record.id).owner == "local"
    for odd in ("../" + record.id, record.id + "/x", ""):
        with pytest.raises(JobNotFound):
            store.get(odd)


def test_a_bad_page_cursor_is_refused(store: StatusStore) -> None:
    with pytest.raises(InvalidParameter) as info:
        store.list("ana", cursor="not-a-cursor")
    assert info.value.code == "bad_cursor"


def test_finished_job_is_never_reopened(store: StatusStore) -> None:
    record = store.create(JobRecord())
    store.update(record.id, {"state": JobState.running})
    store.update(record.id, {"state": JobState.succeeded, "progress": 1.0})
    with pytest.raises(InvalidTransition):
        store.update(record.id, {"state": JobState.running})
    with pytest.raises(InvalidTransition):
        store.update(record.id, {"progress": 0.2})
    assert store.get(record.id).state == JobState.succeeded


def test_queued_job_cannot_succeed_directly(store: StatusStore) -> None:
    record = store.create(JobRecord())
    with pytest.raises(InvalidTransition):
        store.update(record.id, {"state": JobState.succeeded})


def test_list_is_per_owner_newest_first_and_paged(store: StatusStore) -> None:
    start = utcnow()
    mine = [store.create(JobRecord(owner="ana", created_at=start + timedelta(seconds=i))) for i in range(5)]
    store.create(JobRecord(owner="bob"))
    page1, cursor = store.list("ana", limit=2)
    page2, cursor2 = store.list("ana", limit=2, cursor=cursor)
    page3, cursor3 = store.list("ana", limit=2, cursor=cursor2)
    ids = [r.id for r in page1 + page2 + page3]
    assert ids == [r.id for r in reversed(mine)]
    assert cursor3 is None
    assert all(r.owner == "ana" for r in page1 + page2 + page3)


def test_concurrent_progress_and_a_racing_cancel(store: StatusStore) -> None:
    """20 threads write progress while one cancels: no torn write, and nothing reopens the job."""
    record = store.create(JobRecord())
    store.update(record.id, {"state": JobState.running})
    barrier = threading.Barrier(21)
    refused: list[int] = []
    accepted: list[int] = []

    def beat(n: int) -> None:
        barrier.wait()
        for step in range(5):
            try:
                store.update(record.id, {"progress": (n * 5 + step) / 100, "message": f"t{n}"})
                accepted.append(n)
            except InvalidTransition:
                refused.append(n)

    def cancel() -> None:
        barrier.wait()
        store.update(record.id, {"state": JobState.cancelled, "message": "cancelled by user"})

    threads = [threading.Thread(target=beat, args=(n,)) for n in range(20)]
    threads.append(threading.Thread(target=cancel))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = store.get(record.id)
    assert final.state == JobState.cancelled
    assert final.message == "cancelled by user"  # no progress write landed after the cancel
    assert len(accepted) + len(refused) == 100


def test_concurrent_counter_loses_no_update(store: StatusStore) -> None:
    """Read-modify-write through the store's transaction: 20 threads add 1 to cost.video_seconds."""
    record = store.create(JobRecord())
    store.update(record.id, {"state": JobState.running})

    def add_one() -> None:
        for _ in range(3):
            _increment(store, record.id)

    threads = [threading.Thread(target=add_one) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get(record.id).cost.video_seconds == 60


def _increment(store: StatusStore, job_id: str) -> None:
    store.update(job_id, {"cost": lambda cost: {**cost, "video_seconds": cost["video_seconds"] + 1}})


def test_two_clients_lose_no_update(store: StatusStore) -> None:
    """Two store objects (as the API and a job process have) increment one job: the store's own
    transaction, not any in-process lock, must keep every increment."""
    other = open_status_store(store.url)
    record = store.create(JobRecord())
    store.update(record.id, {"state": JobState.running})

    def add(client: StatusStore) -> None:
        for _ in range(4):
            _increment(client, record.id)

    threads = [threading.Thread(target=add, args=(client,)) for client in (store, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get(record.id).cost.video_seconds == 8
    assert other.get(record.id) == store.get(record.id)
