"""The spend ledger: every paid request is reserved before it is sent, and settled once its bill is known.

Veo bills an operation once it has started, whether or not anyone waits for its result. So money is
counted when it is *committed*, not when a clip arrives:

1. ``reserve``: before a paid request is sent, its price is reserved by a ``Charge``. The status store
   does it in ONE transaction with the job record and the owner's day total, so the job's budget and
   the owner's daily cap are checked against what every writer has committed, and two racing jobs
   cannot both take the last dollar. A job that is not running (cancelled, finished, awaiting
   approval) reserves nothing: a cancel stops new requests.
2. ``settle``: the entry moves on as the request's fate is learnt (``Settlement``):
   ``reserved → started`` (the operation's name is recorded, so a later attempt can find it),
   ``→ unknown`` (the start's answer was lost: it may bill, so it stays counted and is never sent again),
   ``→ spent`` (the price is final) or ``→ released`` (Google refused the start: nothing was billed).
   Settling is allowed on a finished job: a cancel does not stop the bill of started operations.

What an entry counts: reserved, started and unknown count their reserved price, spent its final
price, released nothing. The job record's ``cost.reserved_usd`` (open entries) and ``cost.actual_usd``
(spent) and the owner's day total are written in the same transaction, so the numbers a user sees are
the ledger's. The day is the UTC date of the reservation.

Gemini's prompt tokens do NOT go through the ledger: their price is not known before the call (it
depends on the answer's length), a storyboard's prompts cost about a cent, and the owner's cap is about
video. They are recorded after the call (``cost.prompt_tokens``), as before; the allow-list gates who
may use Gemini at all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from kapsule.core.access import LOCAL_OWNER
from kapsule.core.errors import BudgetExceeded, DailyCapReached, InvalidTransition, JobNotFound
from kapsule.job.record import JobCost, JobRecord, JobState, utcnow

_EPSILON = 1e-9


class ChargeState(StrEnum):
    reserved = "reserved"  # checked and counted; the request is about to be sent
    started = "started"  # Google accepted it: an operation exists and bills
    unknown = "unknown"  # the answer to the start was lost: it may bill; never sent again
    spent = "spent"  # final
    released = "released"  # refused by Google before it started: nothing billed


OPEN_STATES = frozenset({ChargeState.reserved, ChargeState.started, ChargeState.unknown})
_NEXT: dict[ChargeState, frozenset[ChargeState]] = {
    ChargeState.reserved: frozenset(
        {ChargeState.started, ChargeState.unknown, ChargeState.spent, ChargeState.released}
    ),
    ChargeState.started: frozenset({ChargeState.spent, ChargeState.unknown}),
    ChargeState.unknown: frozenset({ChargeState.started, ChargeState.spent}),
    ChargeState.spent: frozenset(),
    ChargeState.released: frozenset(),
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Charge(_Frozen):
    """A paid request about to be sent: its key (one per request, e.g. a shot's request key and
    attempt), its price, and the owner's daily cap to check it against (``None``: no cap)."""

    key: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$")
    usd: float = Field(ge=0.0)
    cap_usd: float | None = Field(None, ge=0.0)
    what: str = ""  # for people reading the ledger: "shot 3 (veo-3.0-generate-001, 8 s)"


class Settlement(_Frozen):
    """What became of a reserved request: ``state`` (not ``reserved``), the operation's name if it
    started, and the final price when it is spent (default: the reserved price)."""

    state: ChargeState
    operation: str | None = None
    usd: float | None = Field(None, ge=0.0)


class LedgerEntry(BaseModel):
    """One paid request of one job, as the ledger holds it."""

    job_id: str
    owner: str
    day: str  # UTC date of the reservation, YYYY-MM-DD: the day total it counts in
    key: str
    what: str = ""
    reserved_usd: float
    spent_usd: float = 0.0
    state: ChargeState = ChargeState.reserved
    operation: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def counted_usd(self) -> float:
        """What this entry adds to its job's and its owner's totals."""
        if self.state in OPEN_STATES:
            return self.reserved_usd
        return self.spent_usd if self.state == ChargeState.spent else 0.0


def day_of(at: datetime) -> str:
    return at.date().isoformat()


def reserve(
    record: JobRecord, day_total: float, existing: LedgerEntry | None, charge: Charge, now: datetime
) -> tuple[JobRecord, LedgerEntry, float]:
    """The record, the new entry and the owner's new day total once ``charge`` is reserved, or a refusal.

    Refused: a job that is not running (``InvalidTransition``), a key already charged and not
    released (``InvalidTransition``: one request is never sent twice), the job's budget
    (``BudgetExceeded``) and the owner's day (``DailyCapReached``; the local owner, the machine's
    operator, has no daily cap, as at submission). Stores call this inside their
    transaction, on what it read, and write all three results or nothing.
    """
    if record.state != JobState.running:
        raise InvalidTransition(f"job {record.id} is {record.state.value}: it may not start paid work")
    if existing is not None and existing.state != ChargeState.released:
        raise InvalidTransition(
            f"{charge.key} of job {record.id} was already charged ({existing.state.value}); "
            "it is never sent twice"
        )
    committed = record.cost.actual_usd + record.cost.reserved_usd
    budget = record.params.budget_usd
    if budget and committed + charge.usd > budget + _EPSILON:
        raise BudgetExceeded(
            f"{charge.what or charge.key} costs ${charge.usd:.2f}; the job has ${committed:.2f} spent or "
            f"reserved of its ${budget:.2f} budget"
        )
    if charge.cap_usd and record.owner != LOCAL_OWNER and day_total + charge.usd > charge.cap_usd + _EPSILON:
        raise DailyCapReached(
            f"{charge.what or charge.key} costs ${charge.usd:.2f}; your jobs of today have ${day_total:.2f} "
            f"spent or reserved of your ${charge.cap_usd:.2f} daily cap: wait until tomorrow (UTC)"
        )
    entry = LedgerEntry(
        job_id=record.id,
        owner=record.owner,
        day=day_of(now),
        key=charge.key,
        what=charge.what,
        reserved_usd=round(charge.usd, 4),
        created_at=now,
        updated_at=now,
    )
    cost = _with(record.cost, reserved=entry.reserved_usd)
    return record.model_copy(update={"cost": cost, "updated_at": now}), entry, _money(day_total + charge.usd)


def settle(
    record: JobRecord, entry: LedgerEntry, day_total: float, settlement: Settlement, now: datetime
) -> tuple[JobRecord, LedgerEntry, float]:
    """The record, entry and day total once ``entry`` is settled; allowed on a finished job.

    Settling an entry to the state it is in is a no-op (a retried transaction, a repeated call).
    """
    if settlement.state == entry.state and settlement.state != ChargeState.reserved:
        return record, entry, day_total
    if settlement.state not in _NEXT[entry.state]:
        raise InvalidTransition(
            f"ledger entry {entry.key} cannot go from {entry.state.value} to {settlement.state.value}"
        )
    before = entry.counted_usd
    update: dict[str, object] = {"state": settlement.state, "updated_at": now}
    if settlement.operation is not None:
        update["operation"] = settlement.operation
    if settlement.state == ChargeState.spent:
        update["spent_usd"] = round(entry.reserved_usd if settlement.usd is None else settlement.usd, 4)
    settled = entry.model_copy(update=update)
    after = settled.counted_usd
    reserved_change = -entry.reserved_usd if settled.state not in OPEN_STATES else 0.0
    spent_change = settled.spent_usd if settled.state == ChargeState.spent else 0.0
    cost = _with(record.cost, reserved=reserved_change, spent=spent_change)
    record = record.model_copy(update={"cost": cost, "updated_at": now})
    return record, settled, _money(day_total - before + after)


LedgerRule = Callable[[JobRecord, float, LedgerEntry | None], tuple[JobRecord, LedgerEntry, float]]
"""What a store runs inside its transaction on the record, the owner's day total and the entry it read."""


def reserving(charge: Charge) -> LedgerRule:
    """``reserve`` of ``charge`` as a store's transaction rule (the same on every store)."""

    def rule(
        record: JobRecord, day: float, entry: LedgerEntry | None
    ) -> tuple[JobRecord, LedgerEntry, float]:
        return reserve(record, day, entry, charge, utcnow())

    return rule


def settling(job_id: str, key: str, settlement: Settlement) -> LedgerRule:
    """``settle`` of the entry ``key`` as a store's transaction rule; a missing entry is not found."""

    def rule(
        record: JobRecord, day: float, entry: LedgerEntry | None
    ) -> tuple[JobRecord, LedgerEntry, float]:
        if entry is None:
            raise JobNotFound(f"job {job_id} has no ledger entry {key}")
        return settle(record, entry, day, settlement, utcnow())

    return rule


def _with(cost: JobCost, *, reserved: float = 0.0, spent: float = 0.0) -> JobCost:
    return cost.model_copy(
        update={
            "reserved_usd": max(0.0, _money(cost.reserved_usd + reserved)),
            "actual_usd": _money(cost.actual_usd + spent),
        }
    )


def _money(usd: float) -> float:
    return round(usd, 4)
