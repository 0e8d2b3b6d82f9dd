"""Veo concurrency: 24 shots against the fake server holding each operation 3 s, 8 in flight.

The ideal is 24 / 8 x 3 s = 9 s; parallel efficiency = ideal / elapsed (target >= 0.9). Then the
same job is run again and must make zero generation requests (never pay twice).
Run: .venv/bin/python benchmarks/veo_concurrency.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kapsule.core.settings import get_settings
from kapsule.generation import make_video_generator
from kapsule.generation.runner import generate_shots
from kapsule.infra.context import JobContext, Stores
from kapsule.job.artifacts import Analysis, EnergyCurve, Section, Shot, Storyboard
from kapsule.job.params import JobParams
from kapsule.job.record import JobRecord, JobState
from tests.support.fake_google import make_clip, running_fake_google, write_service_account

SHOTS, CONCURRENCY, HOLD_S, MODEL = 24, 8, 3.0, "veo-3.0-fast-generate-001"


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="veo-bench-"))
    clip = make_clip(root / "clip.mp4").read_bytes()
    with running_fake_google(clip) as fake:
        fake.hold_s = HOLD_S
        os.environ.update(
            {
                "KAPSULE_STORAGE_URL": f"file://{root / 'data'}",
                "KAPSULE_STATUS_URL": f"sqlite:///{root / 'jobs.db'}",
                "KAPSULE_GENAI_BASE_URL": fake.url,
                "GOOGLE_GENAI_USE_VERTEXAI": "true",
                "GOOGLE_CLOUD_PROJECT": "bench",
                "GOOGLE_APPLICATION_CREDENTIALS": str(
                    write_service_account(root / "sa.json", f"{fake.url}/token")
                ),
                "KAPSULE_VEO_CONCURRENCY": str(CONCURRENCY),
                "KAPSULE_VEO_REQUESTS_PER_MINUTE": "6000",  # the fake has no quota; spacing is 10 ms
                "KAPSULE_VEO_POLL_INTERVAL_S": "0.1",
                "KAPSULE_VEO_POLL_MAX_INTERVAL_S": "0.1",
            }
        )
        get_settings.cache_clear()
        settings = get_settings()
        shots = [
            Shot(index=i, start=i * 2.0, end=i * 2.0 + 2, start_frame=i * 48, end_frame=i * 48 + 48,
                 request_seconds=4, section="verse", energy=0.5, prompt=f"shot {i}", seed=i)
            for i in range(SHOTS)
        ]  # fmt: skip
        board = Storyboard(video_model=MODEL, duration=SHOTS * 2.0, total_frames=SHOTS * 48, shots=shots)
        analysis = Analysis(
            duration=SHOTS * 2.0, tempo=120, beats=[], downbeats=[],
            sections=[Section(start=0, end=SHOTS * 2.0, label="verse")],
            energy=EnergyCurve(times=[0.0], values=[0.5]),
        )  # fmt: skip
        stores = Stores.open(settings)
        # A running job's record: each start is reserved in its spend ledger before it is sent.
        record = stores.status.create(JobRecord(state=JobState.running, params=JobParams(video_model=MODEL)))
        ctx = JobContext(job_id=record.id, params=record.params, stores=stores, workdir=root)
        layout, storage = ctx.layout, ctx.storage

        def run() -> float:
            began = time.perf_counter()
            generate_shots(
                board=board,
                analysis=analysis,
                generator=make_video_generator(ctx),
                storage=storage,
                layout=layout,
                workdir=root / "work",
            )
            return time.perf_counter() - began

        load = os.getloadavg()[0]
        imported = time.monotonic()
        import google.genai  # noqa: F401 - a process cost paid once, not a concurrency cost: timed apart

        import_s = time.monotonic() - imported
        began = time.monotonic()
        elapsed = run()
        starts = fake.requests("predict")
        polls = len(fake.requests("poll"))
        before = len(fake.log)
        rerun = run()
        again = [r for r in fake.log[before:] if r.kind in ("predict", "poll", "download")]
    ideal = SHOTS / CONCURRENCY * HOLD_S
    # Where the time beyond the ideal went, from the server's own timeline: before the first start
    # (client, credentials), slot hand-offs (a video ready -> the next shot's start request), and
    # after the last video was ready (writing and probing the last clips).
    start_times = sorted(r.at - began for r in starts)
    ready = sorted(t + HOLD_S for t in start_times)
    handoffs = [s - r for r, s in zip(ready, start_times[CONCURRENCY:], strict=False)]
    print(f"shots={SHOTS} concurrency={CONCURRENCY} hold={HOLD_S:.1f}s model={MODEL} load_avg_1m={load:.1f}")
    print(f"elapsed={elapsed:.2f}s ideal={ideal:.2f}s parallel_efficiency={ideal / elapsed:.3f}")
    print(
        f"overhead: before_first_start={start_times[0]:.2f}s "
        f"mean_slot_handoff={sum(handoffs) / len(handoffs):.3f}s after_last_ready={elapsed - ready[-1]:.2f}s"
    )
    print(f"import google.genai (before timing)={import_s:.2f}s")
    print(f"requests: start={len(starts)} poll={polls} total={before}")
    print(f"re-run: elapsed={rerun:.2f}s generation_requests={len(again)}")


if __name__ == "__main__":
    main()
