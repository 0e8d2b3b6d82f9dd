"""One contract for every status store: transitions, paging and concurrent writers."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from kapsule.core.errors import InvalidParameter, InvalidTransition, JobNotFound
from kapsule.infra.status import StatusStore, open_status_store
from kapsule.job.params import JobParams
from kapsule.job.record import JobOutputs, JobRecord, JobState, utcnow
from kapsule.job.update import (
    ApprovalChange,
    CostDelta,
    CostEstimate,
    InState,
    JobUpdate,
    Unchanged,
)


@pytest.fixture(params=["sqlite", "firestore"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StatusStore:
    if request.param == "sqlite":
        return open_status_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    if request.param == "firestore":
        emulator = request.getfixturevalue("firestore_emulator")
        emulator.reset()
        return open_status_store(f"firestore://{emulator.project}/jobs")
    raise AssertionError(request.param)


def test_a_sign_out_is_seen_by_every_replica(store: StatusStore) -> None:
    """Issue 22, probe 6: sign-out was kept per process, so another replica still took the cookie."""
    import time

    replica = open_status_store(store.url)  # another process's view of the same store
    assert not replica.session_revoked("a" * 32)
    store.revoke_session("a" * 32, int(time.time()) + 3600)
    assert replica.session_revoked("a" * 32) and store.session_revoked("a" * 32)
    assert not replica.session_revoked("b" * 32)
    store.revoke_session("a" * 32, int(time.time()) + 3600)  # signing out twice is harmless
    assert replica.session_revoked("a" * 32)


def test_create_get_update(store: StatusStore) -> None:
    record = store.create(JobRecord(owner="ana", params={"prompt": "neon city"}))
    assert store.get(record.id) == record
    updated = store.update(record.id, JobUpdate(state=JobState.running, stage="analyze", progress=0.1))
    assert updated.state == JobState.running
    assert store.get(record.id).progress == pytest.approx(0.1)
    assert store.get(record.id).params == JobParams(prompt="neon city")


def test_unknown_job(store: StatusStore) -> None:
    with pytest.raises(JobNotFound):
        store.get("j" + "f" * 20)
    with pytest.raises(JobNotFound):
        store.update("j" + "f" * 20, JobUpdate(progress=0.5))


def test_an_update_returns_what_readers_then_see(store: StatusStore) -> None:
    record = store.create(JobRecord(owner="ana"))
    updated = store.update(record.id, JobUpdate(state=JobState.running, message="analyzing"))
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
    store.update(record.id, JobUpdate(state=JobState.running))
    store.update(record.id, JobUpdate(state=JobState.succeeded, progress=1.0))
    with pytest.raises(InvalidTransition):
        store.update(record.id, JobUpdate(state=JobState.running))
    with pytest.raises(InvalidTransition):
        store.update(record.id, JobUpdate(progress=0.2))
    assert store.get(record.id).state == JobState.succeeded


def test_queued_job_cannot_succeed_directly(store: StatusStore) -> None:
    record = store.create(JobRecord())
    with pytest.raises(InvalidTransition):
        store.update(record.id, JobUpdate(state=JobState.succeeded))


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
    store.update(record.id, JobUpdate(state=JobState.running))
    barrier = threading.Barrier(21)
    refused: list[int] = []
    accepted: list[int] = []

    def beat(n: int) -> None:
        barrier.wait()
        for step in range(5):
            try:
                store.update(record.id, JobUpdate(progress=(n * 5 + step) / 100, message=f"t{n}"))
                accepted.append(n)
            except InvalidTransition:
                refused.append(n)

    def cancel() -> None:
        barrier.wait()
        store.update(record.id, JobUpdate(state=JobState.cancelled, message="cancelled by user"))

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
    """Read-modify-write through the store's transaction: 20 threads add 1 to cost.prompt_tokens."""
    record = store.create(JobRecord())
    store.update(record.id, JobUpdate(state=JobState.running))

    def add_one() -> None:
        for _ in range(3):
            _increment(store, record.id)

    threads = [threading.Thread(target=add_one) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get(record.id).cost.prompt_tokens == 60


def _increment(store: StatusStore, job_id: str) -> None:
    store.update(job_id, JobUpdate(add_cost=CostDelta(prompt_tokens=1)))


def test_two_clients_lose_no_update(store: StatusStore) -> None:
    """Two store objects (as the API and a job process have) increment one job: the store's own
    transaction, not any in-process lock, must keep every increment."""
    other = open_status_store(store.url)
    record = store.create(JobRecord())
    store.update(record.id, JobUpdate(state=JobState.running))

    def add(client: StatusStore) -> None:
        for _ in range(4):
            _increment(client, record.id)

    threads = [threading.Thread(target=add, args=(client,)) for client in (store, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get(record.id).cost.prompt_tokens == 8
    assert other.get(record.id) == store.get(record.id)


# ------------------------------------------------------------------------------- typed updates


def _running(store: StatusStore) -> JobRecord:
    return store.update(store.create(JobRecord()).id, JobUpdate(state=JobState.running))


def test_a_field_not_given_is_kept_and_one_given_as_none_is_cleared(store: StatusStore) -> None:
    beat = utcnow()
    record = store.update(
        _running(store).id, JobUpdate(stage="generate", execution="local-1", heartbeat_at=beat)
    )
    kept = store.update(record.id, JobUpdate(message="still going"))
    assert (kept.stage, kept.execution, kept.heartbeat_at) == ("generate", "local-1", beat)
    assert kept.message == "still going"
    cleared = store.update(record.id, JobUpdate(heartbeat_at=None, stage=None))
    assert cleared.heartbeat_at is None and cleared.stage is None
    assert cleared.execution == "local-1" and cleared.message == "still going"
    assert store.get(record.id) == cleared


def test_a_failing_guard_refuses_the_whole_update(store: StatusStore) -> None:
    record = _running(store)
    approve = JobUpdate(
        guards=(InState(states=(JobState.awaiting_approval,), action="approved"),),
        state=JobState.running,
        message="approved",
        change_approval=ApprovalChange(add_prompt_edits={0: "a red door"}, approve_at=utcnow()),
    )
    with pytest.raises(InvalidTransition) as info:
        store.update(record.id, approve)
    assert info.value.message == (
        f"job {record.id} is running; only a job that is awaiting approval can be approved"
    )
    assert store.get(record.id) == record  # nothing of the update was written

    stale = JobUpdate(guards=(Unchanged(attempt=record.attempt + 1),), message="taken")
    with pytest.raises(InvalidTransition, match="attempt changed from 1 to 0: another runner took the job"):
        store.update(record.id, stale)
    assert store.get(record.id) == record


def test_guards_that_hold_let_the_update_through(store: StatusStore) -> None:
    record = _running(store)
    paused = store.update(record.id, JobUpdate(state=JobState.awaiting_approval))
    seen = Unchanged(state=paused.state, attempt=paused.attempt, heartbeat_at=None)
    either = InState(states=(JobState.queued, JobState.awaiting_approval), action="resumed")
    resumed = store.update(record.id, JobUpdate(guards=(seen, either), state=JobState.running, attempt=1))
    assert resumed.state == JobState.running and resumed.attempt == 1
    wanted = "only a job that is queued or awaiting approval can be resumed"
    with pytest.raises(InvalidTransition, match=wanted):
        store.update(record.id, JobUpdate(guards=(either,), message="again"))


def test_of_runners_racing_with_a_compare_and_set_exactly_one_wins(store: StatusStore) -> None:
    """Every racer read the same record; the guard, checked in the transaction, lets one through."""
    record = _running(store)
    barrier = threading.Barrier(8)
    won: list[int] = []
    lost: list[str] = []

    def claim(n: int) -> None:
        take = JobUpdate(
            guards=(Unchanged(attempt=record.attempt, heartbeat_at=record.heartbeat_at),),
            attempt=record.attempt + 1,
            heartbeat_at=utcnow(),
            execution=f"runner-{n}",
        )
        barrier.wait()
        try:
            store.update(record.id, take)
            won.append(n)
        except InvalidTransition as exc:
            lost.append(exc.message)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and len(lost) == 7
    final = store.get(record.id)
    assert final.attempt == 1 and final.execution == f"runner-{won[0]}"
    assert all("another runner took the job" in message for message in lost)


def test_spending_added_by_concurrent_writers_is_all_counted(store: StatusStore) -> None:
    """Budget accounting: shots paid at once from several threads, beside estimates and progress."""
    record = _running(store)

    def pay() -> None:
        for _ in range(5):
            store.update(record.id, JobUpdate(add_cost=CostDelta(actual_usd=0.1)))

    def estimate() -> None:
        for n in range(5):
            priced = CostEstimate(estimated_usd=4.0, video_seconds=8.0 + n)
            store.update(record.id, JobUpdate(set_estimate=priced))

    threads = [threading.Thread(target=pay) for _ in range(8)] + [threading.Thread(target=estimate)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cost = store.get(record.id).cost
    assert cost.actual_usd == pytest.approx(4.0)
    assert (cost.estimated_usd, cost.video_seconds) == (4.0, 12.0)  # an estimate keeps the spending


def test_prompt_edits_merge_clear_and_approve(store: StatusStore) -> None:
    record = store.update(_running(store).id, JobUpdate(state=JobState.awaiting_approval))
    barrier = threading.Barrier(6)

    def edit(shot: int) -> None:
        barrier.wait()
        edits = ApprovalChange(add_prompt_edits={shot: f"shot {shot}"})
        store.update(record.id, JobUpdate(change_approval=edits))

    threads = [threading.Thread(target=edit, args=(shot,)) for shot in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get(record.id).approval.prompt_edits == {shot: f"shot {shot}" for shot in range(6)}

    replanned = store.update(record.id, JobUpdate(change_approval=ApprovalChange(clear_prompt_edits=True)))
    assert replanned.approval.prompt_edits == {} and not replanned.approval.approved
    at = utcnow()
    approved = store.update(
        record.id,
        JobUpdate(
            state=JobState.running,
            change_approval=ApprovalChange(add_prompt_edits={2: "a lake"}, approve_at=at),
        ),
    )
    assert approved.approval.approved and approved.approval.approved_at == at
    assert approved.approval.prompt_edits == {2: "a lake"}
    assert store.get(record.id) == approved


def test_outputs_read_back_with_only_the_keys_the_job_made(store: StatusStore) -> None:
    record = _running(store)
    assert record.model_dump(mode="json")["outputs"] == {}
    outputs = JobOutputs(video="jobs/x/video.mp4", delivery_url="file:///d", duration="12.500")
    done = store.update(record.id, JobUpdate(outputs=outputs))
    assert store.get(record.id).outputs == outputs == done.outputs
    assert store.get(record.id).model_dump(mode="json")["outputs"] == {
        "video": "jobs/x/video.mp4",
        "delivery_url": "file:///d",
        "duration": "12.500",
    }
