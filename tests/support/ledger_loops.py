"""Submit, cancel, re-roll: an owner's loops against the fake Veo, as issue 22's first probe ran them.

Each loop submits a paid job through the job service (the recording launcher starts nothing), takes
it as its execution would (``claim``), and generates its storyboard's shots in a thread against the
fake Veo, whose operations are held ``hold_s``. Most loops cancel the job while its operations run;
some let it finish and re-roll one shot (a new job through ``JobService.reroll``, generated the same
way). Refusals are counted by where they happened ("submit: daily_cap_reached", "re-roll: ...",
"send: ..." for a reservation the ledger refused), not raised.

The money check is the probe's: what the fake started (each operation bills) is what the owner's
ledger holds for the day, and that never passes the cap.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kapsule.catalog.pricing import price_per_second
from kapsule.control.service import JobService, Submission
from kapsule.core.errors import KapsuleError
from kapsule.core.settings import Settings, TaskEnv
from kapsule.generation import make_video_generator
from kapsule.generation.runner import generate_shots
from kapsule.infra.context import JobContext
from kapsule.job.artifacts import Storyboard
from kapsule.job.params import JobParams
from kapsule.job.record import JobState
from kapsule.job.update import JobUpdate
from kapsule.song.intake import LocalSong
from tests.support.veo import veo_analysis, veo_board

MODEL = "veo-3.1-fast-generate-001"  # a current model: submission refuses a retired one


@dataclass
class LoopTally:
    submitted: int = 0
    cancelled: int = 0
    finished: int = 0
    rerolls: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)  # one of each refusal, to read
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str, code: str = "", message: str = "") -> None:
        with self.lock:
            if code:
                if not self.refused[code]:
                    self.messages.append(message)
                self.refused[code] += 1
            else:
                setattr(self, what, getattr(self, what) + 1)


def _generate(service: JobService, job_id: str, board: Storyboard, work: Path) -> None:
    """What the generate stage does for the job, in this thread: every shot not in storage yet."""
    ctx = JobContext.for_job(service.stores, job_id)
    generate_shots(
        board=board,
        analysis=veo_analysis(board.duration),
        generator=make_video_generator(ctx, MODEL),
        storage=ctx.storage,
        layout=ctx.layout,
        workdir=work / job_id,
        should_stop=ctx.cancelled,
    )


def one_loop(
    service: JobService,
    owner: str,
    song: Path,
    work: Path,
    tally: LoopTally,
    rng: random.Random,
    budget_usd: float = 3.0,
) -> None:
    """Submit a three-shot Veo job; cancel it while it runs, or let it finish and re-roll a shot.

    ``budget_usd=0`` (on a deployment with no default budget): the job has no budget, so submission
    cannot count it against the day and only the ledger's reservations stand between it and the cap.
    """
    params = JobParams(video_model=MODEL, budget_usd=budget_usd)
    try:
        record, _ = service.submit(Submission(params, LocalSong(song), owner=owner))
    except KapsuleError as exc:
        tally.count("", f"submit: {exc.code}", exc.message)
        return
    tally.count("submitted")
    board = veo_board([f"loop {record.id} shot {i}" for i in range(3)]).model_copy(
        update={"video_model": MODEL}
    )
    ctx = JobContext.for_record(service.stores, record)
    ctx.write_model(ctx.layout.storyboard, board)
    ctx.write_model(ctx.layout.analysis, veo_analysis(board.duration))  # what a re-roll copies
    service.claim(record.id, TaskEnv())
    cancel = rng.random() < 0.7
    errors: list[KapsuleError] = []

    def run() -> None:
        try:
            _generate(service, record.id, board, work)
        except KapsuleError as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    if cancel:
        threading.Event().wait(rng.uniform(0.0, 0.05))
        try:
            service.cancel(owner, record.id)
            tally.count("cancelled")
        except KapsuleError as exc:
            tally.count("", f"cancel: {exc.code}", exc.message)
    worker.join()
    for exc in errors:
        if exc.code != "cancelled":
            tally.count("", f"send: {exc.code}", exc.message)
    if cancel or errors:
        if not cancel:
            service.record_failure(record.id, errors[0], "generate")
        return
    service.stores.status.update(record.id, JobUpdate(state=JobState.succeeded, progress=1.0))
    tally.count("finished")
    try:
        child = service.reroll(owner, record.id, 0)
    except KapsuleError as exc:
        tally.count("", f"re-roll: {exc.code}", exc.message)
        return
    tally.count("rerolls")
    service.claim(child.id, TaskEnv())
    child_ctx = JobContext.for_record(service.stores, child)
    child_board = child_ctx.read_model(child_ctx.layout.storyboard, Storyboard)
    try:
        _generate(service, child.id, child_board, work)
    except KapsuleError as exc:
        tally.count("", f"send: {exc.code}", exc.message)
        service.record_failure(child.id, exc, "generate")
        return
    service.stores.status.update(child.id, JobUpdate(state=JobState.succeeded, progress=1.0))


def shot_usd(settings: Settings) -> float:
    """What one of the loops' shots costs (4 s at 720p)."""
    return round(4 * price_per_second(MODEL, settings, resolution="720p"), 4)


def run_loops(
    service: JobService,
    owner: str,
    song: Path,
    work: Path,
    *,
    loops: int,
    rounds: int,
    seed: int = 7,
    budget_usd: float = 3.0,
) -> LoopTally:
    """``loops`` threads, each running ``rounds`` submit/cancel/re-roll loops for ``owner``."""
    tally = LoopTally()

    def thread(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        for _ in range(rounds):
            one_loop(service, owner, song, work, tally, rng, budget_usd)

    threads = [threading.Thread(target=thread, args=(n,)) for n in range(loops)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tally
