"""Storage and job-record backends side by side, through the same protocols the pipeline uses.

Storage: upload (``upload_from``), download (``download_to``) and streamed read (``open_read``) of
one 50 MB file, median of 3, for file:// and gs:// (the GCS emulator). Job records: the latency of
200 sequential progress updates (each a full read-check-write transaction), p50 and p99, for SQLite
and Firestore (Google's emulator). The emulators are started here, as the tests start them.

Emulator figures measure the client library, our code and a local server, not Google's network:
they show the overhead our code adds and catch regressions, not what production will see.

    .venv/bin/python benchmarks/storage.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kapsule.infra.status import StatusStore, open_status_store
from kapsule.infra.storage import Storage, open_storage
from kapsule.job.record import JobRecord, JobState
from kapsule.job.update import JobUpdate
from tests.support.emulators import EmulatorMissingError, run_firestore_emulator, run_gcs_emulator

SIZE = 50_000_000  # bytes (50 MB)
REPEATS = 3
UPDATES = 200
KEY = "jobs/jbench/output/video.mp4"


def _median_seconds(action: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def storage_row(name: str, storage: Storage, src: Path, work: Path) -> str:
    mb = SIZE / 1e6
    up = _median_seconds(lambda: storage.upload_from(src, KEY, "video/mp4"))
    down = _median_seconds(lambda: storage.download_to(KEY, work / "download.mp4"))

    def stream() -> int:
        return sum(len(chunk) for chunk in storage.open_read(KEY))

    streamed = _median_seconds(stream)
    assert (work / "download.mp4").stat().st_size == SIZE
    return f"| {name} | {mb / up:,.0f} | {mb / down:,.0f} | {mb / streamed:,.0f} |"


def status_row(name: str, store: StatusStore) -> str:
    record = store.create(JobRecord(owner="bench"))
    store.update(record.id, JobUpdate(state=JobState.running))
    latencies = []
    for i in range(UPDATES):
        start = time.perf_counter()
        store.update(record.id, JobUpdate(progress=i / UPDATES, message=f"beat {i}"))
        latencies.append((time.perf_counter() - start) * 1000)
    cuts = statistics.quantiles(latencies, n=100)
    return f"| {name} | {cuts[49]:.2f} | {cuts[98]:.2f} |"


def main() -> None:
    storage_rows, status_rows = [], []
    with tempfile.TemporaryDirectory(prefix="kapsule-bench-") as tmp:
        work = Path(tmp)
        src = work / "video.mp4"
        src.write_bytes(os.urandom(SIZE))

        storage_rows.append(storage_row("file://", open_storage(f"file://{work / 'store'}"), src, work))
        status_rows.append(status_row("SQLite", open_status_store(f"sqlite:///{work / 'jobs.db'}")))
        try:
            with run_gcs_emulator(work) as gcs:
                os.environ["STORAGE_EMULATOR_HOST"] = gcs.url
                storage = open_storage(f"gs://{gcs.new_bucket()}")
                storage_rows.append(storage_row("gs:// (gcp-storage-emulator)", storage, src, work))
        except EmulatorMissingError as exc:
            storage_rows.append(f"| gs:// | skipped: {exc} | | |")
        try:
            with run_firestore_emulator(work) as firestore:
                os.environ["FIRESTORE_EMULATOR_HOST"] = firestore.host
                store = open_status_store(f"firestore://{firestore.project}/jobs")
                status_row("warm-up", store)  # the JVM's first requests are slow; keep them out
                status_rows.append(status_row("Firestore (emulator)", store))
        except EmulatorMissingError as exc:
            status_rows.append(f"| Firestore | skipped: {exc} | |")

    print(f"Storage: {SIZE / 1e6:.0f} MB file, MB/s, median of {REPEATS}")
    print("| backend | upload | download | stream (open_read) |\n|---|---|---|---|")
    print("\n".join(storage_rows))
    print(f"\nJob-record update latency, {UPDATES} sequential transactional updates, ms")
    print("| backend | p50 | p99 |\n|---|---|---|")
    print("\n".join(status_rows))


if __name__ == "__main__":
    main()
