"""End-to-end benchmark: seconds per minute of song for `kapsule make` on the demo song, by stage.

Runs the real product path (CLI → local launcher → job process → four papermill notebooks) in a
fresh Kapsule home, then reads the per-stage timings the pipeline records in the job record, and
sets them beside the physical floor measured in the same run: one plain x264 pass of the same
length, size and settings (every pipeline that outputs this video pays at least that much).

    .venv/bin/python benchmarks/end_to_end.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kapsule import media
from kapsule.core.settings import get_settings
from kapsule.demo.song import write_demo_song

ROOT = Path(__file__).resolve().parent.parent
KAPSULE = Path(sys.executable).parent / "kapsule"


def main() -> None:
    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="kapsule-bench-") as tmp:
        home = Path(tmp)
        song = write_demo_song(home / "demo-song.wav")
        env = {
            **os.environ,
            "KAPSULE_STORAGE_URL": f"file://{home / 'data'}",
            "KAPSULE_STATUS_URL": f"sqlite:///{home / 'jobs.db'}",
            "KAPSULE_WORK_DIR": str(home / "work"),
            # Warm numba cache shared with the developer's runs: the JIT is a one-off per machine.
            "NUMBA_CACHE_DIR": str(ROOT / ".kapsule" / "numba-cache"),
        }
        out = home / "demo.mp4"
        start = time.perf_counter()
        subprocess.run([str(KAPSULE), "make", str(song), "-o", str(out)], env=env, check=True, cwd=home)
        total = time.perf_counter() - start
        listing = subprocess.run(
            [str(KAPSULE), "jobs", "list", "--json"], env=env, check=True, cwd=home, capture_output=True
        )
        record = json.loads(listing.stdout)[0]
        timings = record["timings"]
        duration = media.probe(out).duration or 0.0

        floor_out = home / "floor.mp4"
        start = time.perf_counter()
        media.run(
            media.floor_encode_cmd(
                floor_out,
                seconds=duration,
                width=1280,
                height=720,
                fps=settings.fps,
                crf=settings.video_crf,
                preset=settings.video_preset,
            )
        )
        floor = time.perf_counter() - start

    per_min = 60.0 / duration
    print(f"song {duration:.1f} s, 720p24, local renderer; all figures in seconds")
    print(f"{'stage':<11}{'wall':>8}{'work':>8}{'papermill':>11}{'save':>7}")
    overhead = 0.0
    for stage, t in timings.items():
        overhead += t.get("overhead_s", 0.0) + t.get("setup_s", 0.0)
        print(
            f"{stage:<11}{t['wall_s']:>8.1f}{t['stage_s']:>8.1f}"
            f"{t['overhead_s'] + t['setup_s']:>11.1f}{t['save_s']:>7.2f}"
        )
    print(f"{'total':<11}{total:>8.1f}   (CLI wall, including job launch and polling)")
    print(f"floor: one x264 pass of the same {duration:.0f} s at 720p24: {floor:.1f} s")
    print(
        f"e2e s_per_min_song={total * per_min:.1f} total_s={total:.1f} floor_s={floor:.1f} "
        f"total/floor={total / floor:.2f} papermill_overhead_s={overhead:.1f}"
    )


if __name__ == "__main__":
    main()
