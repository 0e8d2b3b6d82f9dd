"""The spend ledger under load: 50 concurrent submit/cancel/re-roll loops of one owner against the fake Veo.

Each loop (``tests/support/ledger_loops.py``) submits a three-shot Veo job through the job service,
generates it against the fake Veo (operations held ``HOLD_S``), and either cancels it while its
operations run (70 %) or lets it finish and re-rolls a shot. The owner has a daily cap; every start is
reserved in the ledger first. Two phases: jobs with a $3 budget (submission counts each live job's
budget against the day, so it refuses most), and jobs with no budget (submission cannot count them:
only the ledger's reservations hold the cap). Reported: what the fake started (each operation bills)
against the cap, and the ledger against the fake's operations (equal, cancelled jobs included).

Run: .venv/bin/python benchmarks/ledger.py [--firestore]   (Firestore: FIRESTORE_EMULATOR_HOST set)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kapsule.control.service import JobService
from kapsule.infra.context import Stores
from kapsule.job.ledger import ChargeState
from tests.support.api import RecordingLauncher, sine_wav
from tests.support.fake_google import make_clip, running_fake_google, write_service_account
from tests.support.google_modes import vertex_fields
from tests.support.ledger_loops import LoopTally, run_loops, shot_usd
from tests.support.settings import home_settings, replace

LOOPS, ROUNDS, HOLD_S, CAP_USD = 50, 3, 0.3, 8.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--firestore", action="store_true", help="the status store on the emulator")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    clip = make_clip(root / "clip.mp4").read_bytes()
    with running_fake_google(clip) as fake:
        fake.hold_s = HOLD_S
        os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = str(
            write_service_account(root / "sa.json", f"{fake.url}/token")
        )
        status_url = f"sqlite:///{root / 'jobs.db'}"
        if args.firestore:
            if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
                sys.exit("--firestore needs FIRESTORE_EMULATOR_HOST (a running emulator)")
            status_url = f"firestore://ledger-bench/jobs{int(time.time())}"
        settings = replace(
            home_settings(root / "home"),
            **vertex_fields(fake),
            status_url=status_url,
            owner_daily_cap_usd=CAP_USD,
            veo_requests_per_minute=60000,
            veo_poll_interval_s=0.05,
            veo_poll_max_interval_s=0.1,
        )
        song = sine_wav(root / "song.wav", 6.0)
        rows = []
        for phase, owner, budget in (("budgets of $3", "ana", 3.0), ("no job budget", "bob", 0.0)):
            fake.reset()
            fake.hold_s = HOLD_S
            deployment = replace(
                settings, default_job_budget_usd=0.0, allowed_models={owner: ["local", "veo-*"]}
            )
            service = JobService(Stores.open(deployment), RecordingLauncher())
            began = time.monotonic()
            tally = run_loops(
                service, owner, song, root / "work", loops=LOOPS, rounds=ROUNDS, budget_usd=budget
            )
            rows.append(_report(phase, owner, service, fake.operations(), tally, time.monotonic() - began))
    print(f"store={status_url.split(':')[0]} loops={LOOPS}x{ROUNDS} hold={HOLD_S}s cap=${CAP_USD:.2f} "
          f"load_avg_1m={os.getloadavg()[0]:.1f}")  # fmt: skip
    for row in rows:
        print(row[0])
    if not all(ok for _, ok in rows):
        sys.exit(1)


def _report(
    phase: str, owner: str, service: JobService, started: list[str], tally: LoopTally, elapsed: float
) -> tuple[str, bool]:
    status = service.stores.status
    ids: list[str] = []
    cursor = None
    while True:
        page, cursor = status.list(owner, limit=100, cursor=cursor)
        ids += [r.id for r in page]
        if cursor is None:
            break
    billed = [e for job in ids for e in status.ledger(job) if e.state != ChargeState.released]
    day = status.day_total(owner, datetime.now(UTC).date().isoformat())
    recorded_usd = round(sum(status.get(job).cost.committed_usd for job in ids), 4)
    price = shot_usd(service.settings)
    started_usd = round(len(started) * price, 4)
    named = len({e.operation for e in billed} & set(started))
    under_cap = started_usd <= CAP_USD + 1e-9
    equal = abs(day - started_usd) < 1e-6 and len(billed) == len(started) == named
    text = (
        f"[{phase}] {elapsed:.1f}s jobs: submitted={tally.submitted} cancelled={tally.cancelled} "
        f"finished={tally.finished} rerolls={tally.rerolls} refused={dict(tally.refused)}\n"
        f"  operations the fake started={len(started)} (${started_usd:.2f} at ${price:.2f}); ledger: "
        f"entries={len(billed)} naming them={named} day_total=${day:.2f} jobs' cost=${recorded_usd:.2f}\n"
        f"  started spend <= cap: {under_cap}; ledger == operations started: {equal}"
    )
    return text, under_cap and equal


if __name__ == "__main__":
    main()
