"""How a generator pays for a request: look it up in the spend ledger, reserve it, then settle it.

Every paid request of a job has a ledger key (a shot's request key and its attempt). Before anything is
sent, ``PaidStarts.begin`` looks the key up (``kapsule.job.ledger``):

- nothing yet (or released): the price is reserved against the job's budget and the owner's daily cap,
  in the status store's transaction, and the caller sends the request;
- started, or spent, with an operation name: the operation Google already has is followed again
  (polled, its video fetched) and nothing is sent, so a retried job or a killed worker never pays twice;
- reserved without an operation, or unknown: an earlier start's answer was lost; it may bill, so the
  shot fails with ``StartOutcomeUnknown`` rather than sending it again.

The owner's cap comes from this deployment's settings; the ledger exempts the local owner (the
operator), as submission does.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapsule.core.errors import InvalidTransition, JobCancelled, StartOutcomeUnknown
from kapsule.infra.context import JobContext
from kapsule.job.ledger import Charge, ChargeState, Settlement


@dataclass(frozen=True)
class Begun:
    """What to do for a request: send it (``operation`` is None) or follow ``operation``."""

    key: str
    operation: str | None = None


class PaidStarts:
    """One job's paid requests, through its status store's ledger."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx

    def begin(self, key: str, usd: float, what: str) -> Begun:
        """Reserve ``key`` at ``usd`` (or find the operation it already started); see the module."""
        for entry in self.ctx.status.ledger(self.ctx.job_id):
            if entry.key != key or entry.state == ChargeState.released:
                continue
            if entry.operation is not None and entry.state in (ChargeState.started, ChargeState.spent):
                return Begun(key=key, operation=entry.operation)
            raise StartOutcomeUnknown(
                f"{what} was sent before and its answer was lost ({entry.state.value}, "
                f"${entry.reserved_usd:.2f} reserved); it is not sent again (it would bill twice): "
                "re-roll the shot to pay for a new one"
            )
        cap = self.ctx.settings.owner_daily_cap_usd or None
        try:
            self.ctx.status.reserve(self.ctx.job_id, Charge(key=key, usd=usd, cap_usd=cap, what=what))
        except InvalidTransition:
            if self.ctx.cancelled():  # a cancel stops new requests
                raise JobCancelled(f"cancelled before {what} was requested") from None
            raise
        return Begun(key=key)

    def started(self, key: str, operation: str) -> None:
        self._settle(key, Settlement(state=ChargeState.started, operation=operation))

    def unknown(self, key: str) -> None:
        self._settle(key, Settlement(state=ChargeState.unknown))

    def released(self, key: str) -> None:
        """Google refused the start (a 4xx): nothing was billed."""
        self._settle(key, Settlement(state=ChargeState.released))

    def spent(self, key: str, usd: float | None = None) -> None:
        self._settle(key, Settlement(state=ChargeState.spent, usd=usd))

    def _settle(self, key: str, settlement: Settlement) -> None:
        self.ctx.status.settle(self.ctx.job_id, key, settlement)
