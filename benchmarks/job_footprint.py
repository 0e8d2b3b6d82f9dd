"""Peak memory and scratch disk of one job for a 10-minute song (local renderer), as on Cloud Run.

On Cloud Run the job's ``/tmp`` (its work folder) is RAM, so the memory it needs is the peak RSS of
the job's process tree *plus* the peak size of its work folder (``rss_plus_tmp_mib``: the sum of the
two peaks, an upper bound; ``peak_together_mib``: the worst single moment). Files live in Cloud
Storage there, so this run keeps them in the GCS emulator (not counted: it stands for Google's
servers), job records in SQLite. ``kapsule make`` runs the real path: CLI -> local launcher -> job process ->
papermill notebooks (kernels are child processes, all summed). Sampled every 0.25 s.

    .venv/bin/python benchmarks/job_footprint.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kapsule import media  # noqa: E402
from kapsule.demo.song import synthesize_song, write_song  # noqa: E402
from tests.support.emulators import run_gcs_emulator  # noqa: E402


def _tree_rss(proc: psutil.Process) -> tuple[int, int, str]:
    """(sum of RSS over the process and its descendants, largest single RSS, what that one runs)."""
    total = largest = 0
    name = ""
    for p in [proc, *proc.children(recursive=True)]:
        try:
            rss = p.memory_info().rss
            if rss > largest:
                name = " ".join(p.cmdline()[:4])[:100]
        except psutil.Error:
            continue
        total += rss
        largest = max(largest, rss)
    return total, largest, name


def _dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file removed while we walk
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    bars = round(args.minutes * 60 / 2)  # 120 BPM, 4/4: a bar is 2 s
    plan = [("intro", 4), *[(label, 16) for label in ("verse", "chorus") * (bars // 32)]]
    plan.append(("outro", max(1, bars - sum(b for _, b in plan))))
    with tempfile.TemporaryDirectory(prefix="kapsule-footprint-") as tmp:
        home = Path(tmp)
        song = write_song(synthesize_song(seed=5, structure=plan), home / "long.wav")
        seconds = media.probe(song).duration or 0.0
        (home / "emulator").mkdir()
        with run_gcs_emulator(home / "emulator") as gcs:
            env = {
                **os.environ,
                "STORAGE_EMULATOR_HOST": gcs.url,
                "KAPSULE_STORAGE_URL": f"gs://{gcs.new_bucket()}",
                "KAPSULE_DELIVERY_URL": f"gs://{gcs.new_bucket()}",
                "KAPSULE_STATUS_URL": f"sqlite:///{home / 'jobs.db'}",
                "KAPSULE_WORK_DIR": str(home / "work"),
                "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
                "NUMBA_CACHE_DIR": str(ROOT / ".kapsule" / "numba-cache"),
            }
            out = home / "long.mp4"
            start = time.perf_counter()
            # The CLI of this checkout (not whatever `kapsule` the venv's script points at).
            cli = [sys.executable, "-c", "import sys; from kapsule.cli.main import app; app()"]
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
            proc = subprocess.Popen([*cli, "make", str(song), "-o", str(out)], env=env, cwd=home)
            ps = psutil.Process(proc.pid)
            peak = {"tree": 0, "single": 0, "work": 0, "both": 0}
            at_peak = {"t": 0.0, "tree": 0, "work": 0, "largest": ""}
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    tree, single, largest = _tree_rss(ps)
                    work = _dir_bytes(home / "work")
                    peak["tree"] = max(peak["tree"], tree)
                    peak["single"] = max(peak["single"], single)
                    peak["work"] = max(peak["work"], work)
                    if tree + work > peak["both"]:  # the worst single moment, and what ran then
                        peak["both"] = tree + work
                        t = time.perf_counter() - start
                        at_peak.update(t=t, tree=tree, work=work, largest=largest)
                    done.wait(0.25)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            code = proc.wait()
            done.set()
            sampler.join()
            wall = time.perf_counter() - start
            if code != 0:
                raise SystemExit(f"kapsule make failed with {code}")
            left = _dir_bytes(home / "work")
            leftovers = sorted(
                (
                    (f.stat().st_size, str(f.relative_to(home / "work")))
                    for f in (home / "work").rglob("*")
                    if f.is_file()
                ),
                reverse=True,
            )[:8]
            for size, name in leftovers:
                print(f"left in work folder: {size / 1024 / 1024:.1f} MiB {name}")
        mib = 1024 * 1024
        need = (peak["tree"] + peak["work"]) / mib
        print(
            f"worst moment: {at_peak['t']:.0f} s in, RSS {at_peak['tree'] / mib:.0f} MiB + work folder "
            f"{at_peak['work'] / mib:.0f} MiB; largest process then: {at_peak['largest']}"
        )
        print(
            f"footprint song_s={seconds:.0f} wall_s={wall:.0f} peak_tree_rss_mib={peak['tree'] / mib:.0f} "
            f"peak_single_rss_mib={peak['single'] / mib:.0f} peak_workdir_mib={peak['work'] / mib:.0f} "
            f"workdir_left_mib={left / mib:.0f} rss_plus_tmp_mib={need:.0f} "
            f"peak_together_mib={peak['both'] / mib:.0f}"
        )


if __name__ == "__main__":
    main()
