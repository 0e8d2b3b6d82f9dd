"""Doctor's findings and the runner that bounds every check by a deadline.

Why a runner of its own: each check calls a client library whose own retries can outlast any
operator's patience (google-cloud-storage keeps retrying an unanswered request for 120 s, silently).
A call blocked in a socket cannot be cancelled from Python, so each check runs in a daemon thread of
its own, all at once, and the runner waits for each at most its ``deadline_s``: a check that has not
answered by then becomes a ``Finding`` naming what it was talking to (``target``), and its thread is
abandoned (a daemon: it never holds the process open). So the whole doctor takes as long as its
slowest deadline, not their sum, and each line is handed to ``on_finding`` the moment it is known.

Other checks (the shared Veo quota, say) join by adding a ``Check`` to the list ``doctor_checks``
builds: a name, what it contacts, and a call returning its findings.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# The longest any one check may take. All run at once, so this is also about the whole doctor's
# length: an unreachable endpoint is named well within 15 s, process start included.
CHECK_DEADLINE_S = 8.0


@dataclass(frozen=True)
class Finding:
    """One check's verdict: ``ok``, or what is wrong (``problem``) and how to fix it (``fix``).

    A ``warning`` is ``ok`` (it fails nothing and blocks no job) but still says what may go wrong and
    what to do (``problem``, ``fix``): e.g. a model retirement date Google gives that is still ahead.
    A ``note`` is an ``ok`` line with a remark that needs no action (a date only a third party gives).
    """

    check: str
    ok: bool
    problem: str = ""
    fix: str = ""
    warning: bool = False
    note: str = ""

    def __str__(self) -> str:
        if self.ok and not self.warning:
            return f"ok    {self.check}" + (f" (note: {self.note})" if self.note else "")
        return f"{'WARN' if self.ok else 'FAIL'}  {self.check}: {self.problem}\n      fix: {self.fix}"


def ok(check: str, note: str = "") -> Finding:
    return Finding(check, True, note=note)


def fail(check: str, problem: str, fix: str) -> Finding:
    return Finding(check, False, problem, fix)


def warn(check: str, problem: str, fix: str) -> Finding:
    return Finding(check, True, problem, fix, warning=True)


@dataclass(frozen=True)
class Check:
    """One check: its name, what it contacts (named if it does not answer in time), and its call."""

    name: str
    target: str
    run: Callable[[], Sequence[Finding]]
    deadline_s: float = CHECK_DEADLINE_S


def overrun(check: Check) -> Finding:
    """What a check that did not finish by its deadline says."""
    return fail(
        check.name,
        f"no answer from {check.target} within {check.deadline_s:g} s (unreachable, or too slow to use)",
        f"check that {check.target} is reachable from here (network, firewall, proxy, or an emulator "
        "address left set), then run doctor again",
    )


def run_checks(
    checks: Sequence[Check], *, on_finding: Callable[[Finding], None] | None = None
) -> list[Finding]:
    """Every check at once, each bounded by its deadline; findings in the checks' order.

    ``on_finding`` sees each finding as soon as its check finishes (or overruns), in that order. A
    check that raises is a failed finding carrying the exception, never a crashed doctor.
    """
    done: queue.Queue[tuple[int, list[Finding]]] = queue.Queue()

    def run(index: int, check: Check) -> None:
        try:
            found = list(check.run())
        except Exception as exc:  # a check's bug or a library's surprise: reported, not raised
            found = [fail(check.name, f"{type(exc).__name__}: {exc}", "see the message")]
        done.put((index, found))

    start = time.monotonic()
    for index, check in enumerate(checks):
        threading.Thread(target=run, args=(index, check), name=f"doctor {check.name}", daemon=True).start()
    results: dict[int, list[Finding]] = {}
    while len(results) < len(checks):
        waiting = [i for i in range(len(checks)) if i not in results]
        next_deadline = min(start + checks[i].deadline_s for i in waiting)
        try:
            index, found = done.get(timeout=max(0.0, next_deadline - time.monotonic()))
        except queue.Empty:
            now = time.monotonic()
            late = [i for i in waiting if start + checks[i].deadline_s <= now]
            for i in late:
                _report(results, i, [overrun(checks[i])], on_finding)
            continue
        if index not in results:  # not already reported as overrun
            _report(results, index, found, on_finding)
    return [finding for i in range(len(checks)) for finding in results[i]]


def _report(
    results: dict[int, list[Finding]],
    index: int,
    found: list[Finding],
    on_finding: Callable[[Finding], None] | None,
) -> None:
    results[index] = found
    if on_finding is not None:
        for finding in found:
            on_finding(finding)
