"""How a job record changes: a typed ``JobUpdate``, applied by every status store inside its transaction.

A writer never hands a store field names, nor functions over the stored JSON. It states what it wants:

- **guards**, checked against the record as the transaction read it, before anything is written:
  ``InState`` (only a job awaiting approval can be approved) and ``Unchanged`` (compare-and-set: the
  fields still hold what the caller read, so of two runners racing for one job exactly one wins). A
  guard that fails raises ``InvalidTransition`` and nothing is written; the API answers 409. A new
  condition is a new ``Guard`` subclass, not a special case in a caller.
- **sets**: a field named as the record's (``state``, ``message``, ``heartbeat_at``, ``outputs``, ...)
  is set when it is given. Not given is not ``None``: ``JobUpdate(heartbeat_at=None)`` clears the
  heartbeat, ``JobUpdate()`` keeps it; ``None`` is refused for a field the record cannot leave empty.
- **changes computed from the record** inside the transaction, so no concurrent writer's change is
  lost between a read and a write: ``add_cost`` (money spent, prompt tokens used), ``set_estimate``
  (the storyboard's price) and ``change_approval`` (prompt edits merged or cleared, the approval).

``apply_update`` is where they meet the record, under the rules every write obeys: a finished job
accepts none, a state change must be allowed (``check_transition``), ``updated_at`` is refreshed.
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import datetime
from types import NoneType
from typing import get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kapsule.core.errors import InvalidTransition
from kapsule.job.record import (
    Approval,
    JobCost,
    JobError,
    JobOutputs,
    JobRecord,
    JobState,
    StageTiming,
    check_transition,
    utcnow,
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ----------------------------------------------------------------------------------------- guards


class Guard(_Frozen):
    """A condition on the record as the store's transaction read it; the update applies only if it holds."""

    @abstractmethod
    def check(self, record: JobRecord) -> None:
        """Raise ``InvalidTransition`` (a 409) when ``record`` does not meet the condition."""


class InState(Guard):
    """The job must be in one of ``states`` to be ``action`` ("approved", "edited", "re-planned")."""

    states: tuple[JobState, ...] = Field(min_length=1)
    action: str

    def check(self, record: JobRecord) -> None:
        if record.state not in self.states:
            wanted = " or ".join(state.value.replace("_", " ") for state in self.states)
            raise InvalidTransition(
                f"job {record.id} is {record.state.value}; only a job that is {wanted} can be {self.action}"
            )


class Unchanged(Guard):
    """Compare-and-set: each field given still holds the value the caller read.

    A field not given is not compared; one given as ``None`` must still be empty (``heartbeat_at=None``:
    no execution has beaten since).
    """

    state: JobState | None = None
    attempt: int | None = None
    heartbeat_at: datetime | None = None
    execution: str | None = None

    def check(self, record: JobRecord) -> None:
        given = self.model_fields_set
        seen = self.model_dump(mode="json", include=given)
        now = record.model_dump(mode="json", include=given)
        for name in type(self).model_fields:  # in declaration order: the same field is named each time
            if name in given and getattr(record, name) != getattr(self, name):
                raise InvalidTransition(
                    f"{name} changed from {seen[name]!r} to {now[name]!r}: another runner took the job"
                )


REPLAN_STALE_S = 600.0
"""A regrid holding the review longer than this has died: its hold no longer blocks anyone."""


class NotReplanning(Guard):
    """No regrid is re-planning the job (or the one that was has held it past ``REPLAN_STALE_S``)."""

    action: str

    def check(self, record: JobRecord) -> None:
        approval = record.approval
        if approval.replan_token is None or approval.replan_started_at is None:
            return
        if (utcnow() - approval.replan_started_at).total_seconds() > REPLAN_STALE_S:
            return
        raise InvalidTransition(
            f"job {record.id} is being re-planned (its beat grid changed); it cannot be {self.action} "
            "until the new storyboard is ready: read it again, then retry"
        )


class ReplanHeld(Guard):
    """The regrid holding ``token`` still holds the review (no other took it over, none ended it)."""

    token: str

    def check(self, record: JobRecord) -> None:
        if record.approval.replan_token != self.token:
            raise InvalidTransition(f"job {record.id}'s re-plan was taken over or ended by another request")


# ----------------------------------------------------------------- changes computed in the transaction


class CostDelta(_Frozen):
    """Spending to add to the job's cost: what one paid request cost, the tokens a prompt writer sent."""

    actual_usd: float = 0.0
    prompt_tokens: int = 0

    def added_to(self, cost: JobCost) -> JobCost:
        return cost.model_copy(
            update={
                "actual_usd": round(cost.actual_usd + self.actual_usd, 4),
                "prompt_tokens": cost.prompt_tokens + self.prompt_tokens,
            }
        )


class CostEstimate(_Frozen):
    """The storyboard's price and seconds of video, replacing the earlier estimate (spending is kept)."""

    estimated_usd: float
    video_seconds: float

    def applied_to(self, cost: JobCost) -> JobCost:
        return cost.model_copy(
            update={"video_seconds": self.video_seconds, "estimated_usd": self.estimated_usd}
        )


class ApprovalChange(_Frozen):
    """A change to the review: drop the recorded prompt edits, add some, and/or approve.

    Edits are merged with those already recorded (inside the transaction), so two reviewers editing
    different shots at once both keep theirs.
    """

    clear_prompt_edits: bool = False  # first drop every recorded edit (the shots were planned anew)
    add_prompt_edits: dict[int, str] = Field(default_factory=dict)  # shot index -> prompt
    approve_at: datetime | None = None  # given: the storyboard is approved at this time
    begin_replan: str | None = None  # given: a regrid with this token holds the review from now
    end_replan: bool = False  # the regrid's hold ends

    def applied_to(self, approval: Approval) -> Approval:
        edits = {} if self.clear_prompt_edits else dict(approval.prompt_edits)
        edits.update(self.add_prompt_edits)
        update: dict[str, object] = {"prompt_edits": edits}
        if self.approve_at is not None:
            update.update(approved=True, approved_at=self.approve_at)
        if self.begin_replan is not None:
            update.update(replan_token=self.begin_replan, replan_started_at=utcnow())
        elif self.end_replan:
            update.update(replan_token=None, replan_started_at=None)
        return approval.model_copy(update=update)


# ----------------------------------------------------------------------------------------- update


class JobUpdate(_Frozen):
    """One write to a job record: guards, fields to set, and changes computed from the record."""

    guards: tuple[Guard, ...] = ()

    state: JobState | None = None
    stage: str | None = None
    progress: float | None = Field(None, ge=0.0, le=1.0)
    message: str | None = None
    error: JobError | None = None
    attempt: int | None = None
    execution: str | None = None
    heartbeat_at: datetime | None = None
    timings: dict[str, StageTiming] | None = None
    outputs: JobOutputs | None = None

    add_cost: CostDelta | None = None
    set_estimate: CostEstimate | None = None
    change_approval: ApprovalChange | None = None

    @model_validator(mode="after")
    def _none_only_where_the_record_may_be_empty(self) -> JobUpdate:
        for name in sorted(self.model_fields_set & _SETS - _NULLABLE):
            if getattr(self, name) is None:
                raise ValueError(f"the job's {name} cannot be set to None (leave it out to keep it)")
        return self


# Fields named as the record's are set as given; the others (guards, add_cost, ...) are operations.
_SETS = frozenset(JobUpdate.model_fields) & frozenset(JobRecord.model_fields)
_NULLABLE = frozenset(name for name in _SETS if NoneType in get_args(JobRecord.model_fields[name].annotation))


def apply_update(record: JobRecord, change: JobUpdate) -> JobRecord:
    """``record`` with ``change`` applied, or ``InvalidTransition`` (then nothing may be written).

    Stores call this inside their transaction, on the record the transaction read, so its guards and
    computed changes see exactly what is committed over.
    """
    if record.finished:
        raise InvalidTransition(f"job {record.id} is already {record.state.value}")
    for guard in change.guards:
        guard.check(record)
    check_transition(record.state, record.state if change.state is None else change.state)
    data = record.model_dump()
    data.update({name: getattr(change, name) for name in change.model_fields_set & _SETS})
    cost = record.cost
    if change.set_estimate is not None:
        cost = change.set_estimate.applied_to(cost)
    if change.add_cost is not None:
        cost = change.add_cost.added_to(cost)
    data["cost"] = cost
    if change.change_approval is not None:
        data["approval"] = change.change_approval.applied_to(record.approval)
    data["updated_at"] = utcnow()
    return JobRecord.model_validate(data)
