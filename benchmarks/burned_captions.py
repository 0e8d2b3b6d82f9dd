"""What burning lyric captions costs a local job's assembly, against one plain x264 pass of the video.

Local clips are joined by a stream copy when nothing is burned; burning forces the one encode pass
(decode, cut, libass, x264). Its target: at most 1.2x one plain x264 pass over the same video (the
concat-copy output, re-encoded at the same settings), measured cold (FFmpeg with an empty
fontconfig user cache and home, as on the first run after an install) and warm.

Usage: make a job with burned captions, then point this at its folders::

    kapsule make song.wav --lyrics song.lrc --captions burned
    .venv/bin/python benchmarks/burned_captions.py ~/.local/share/kapsule/data/jobs/JOB \\
        ~/.local/share/kapsule/work/JOB [--repeat N]

FFmpeg's CPU seconds (user + system of the child processes) are the figure that load on a shared
machine moves least; wall seconds are printed too. The last line is
``burn/x264 cold=X warm=Y`` (CPU ratios; warm keeps the fastest of the repeats).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kapsule import media  # noqa: E402
from kapsule.assembly.video import assemble_video  # noqa: E402
from kapsule.job.artifacts import ShotManifest, Storyboard  # noqa: E402

CRF, PRESET = 20, "veryfast"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _measure(fn: Callable[[], object]) -> tuple[float, float]:
    cpu, wall = _cpu(), time.monotonic()
    fn()
    return time.monotonic() - wall, _cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("job", type=Path, help="the job's storage folder (data/jobs/JOB)")
    parser.add_argument("work", type=Path, help="the job's work folder (work/JOB, holds captions/)")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    board = Storyboard.model_validate_json((args.job / "work" / "storyboard.json").read_text())
    manifest = ShotManifest.model_validate_json((args.job / "work" / "shots" / "manifest.json").read_text())
    clips = [
        args.job / "work" / "shots" / Path(r.file).name for r in sorted(manifest.shots, key=lambda r: r.index)
    ]
    song = next((args.job / "input").glob("song.*"))
    ass = args.work / "captions" / "captions.ass"
    out = Path(tempfile.mkdtemp(prefix="burned-captions-"))
    joined = out / "joined.mp4"
    assemble_video(board, clips, song, joined, exact_lengths=True)  # the stream copy, also the x264 input

    def burn() -> object:
        return assemble_video(
            board, clips, song, out / "burned.mp4", exact_lengths=True, captions=media.CaptionTracks(burn=ass)
        )

    def x264() -> object:
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(joined), "-c:v", "libx264",
               "-preset", PRESET, "-crf", str(CRF), "-pix_fmt", "yuv420p", "-c:a", "copy",
               str(out / "x264.mp4")]  # fmt: skip
        return subprocess.run(cmd, check=True)

    saved = {k: os.environ.get(k) for k in ("HOME", "XDG_CACHE_HOME")}
    os.environ["HOME"] = str(out / "cold-home")  # FFmpeg inherits these: fontconfig starts cold
    os.environ["XDG_CACHE_HOME"] = str(out / "cold-cache")
    cold_burn, cold_x264 = _measure(burn), _measure(x264)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    warm_burn, warm_x264 = [], []
    for _ in range(args.repeat):  # interleaved, fastest kept
        warm_burn.append(_measure(burn))
        warm_x264.append(_measure(x264))
    seconds = board.duration
    print(f"{seconds:.1f} s of {board.resolution} {board.aspect_ratio} video, {len(board.shots)} shots")
    for label, (bw, bc), (xw, xc) in (
        ("cold", cold_burn, cold_x264),
        ("warm", min(warm_burn, key=lambda m: m[1]), min(warm_x264, key=lambda m: m[1])),
    ):
        print(f"{label}: burned assembly {bw:.1f} s wall {bc:.2f} s CPU; x264 {xw:.1f} s wall {xc:.2f} s CPU")
    cold = cold_burn[1] / cold_x264[1]
    warm = min(m[1] for m in warm_burn) / min(m[1] for m in warm_x264)
    print(f"burn/x264 cold={cold:.2f} warm={warm:.2f}")


if __name__ == "__main__":
    main()
