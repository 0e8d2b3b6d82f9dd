"""Training data for the beat network: randomly drawn pieces, rendered and turned into network input.

WHY random pieces from the corpus generator: its pieces come with exact beats and bar lines, and
every category the analysis failed on (no drums, choir and strings, compound meters, half-time,
backbeat kicks, pickups, swing, ramps and rubato) can be drawn in any number. The pieces here are
drawn with other names, seeds, tempi, instruments (any General MIDI program, any drum kit), four
soundfonts (the benchmark uses three of them) and the mastering chains, so the network is trained
on none of the 48 benchmark pieces. The benchmark's split is untouched: its tuning part picks
between trained networks, its test part is only reported.

    .venv/bin/python -m training.beat_data --count 900      # render (cached)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import corpus  # noqa: E402
from kapsule.analysis import beat_net  # noqa: E402
from kapsule.analysis.common import ANALYSIS_RATE, HOP  # noqa: E402
from kapsule.analysis.core import features  # noqa: E402
from kapsule.song.probe import load_audio  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache" / "beat-train"
SEED = 20261202

# General MIDI families a channel may be drawn from, by role.
HARMONY = [*range(0, 8), *range(16, 21), *range(24, 32), *range(40, 56), *range(88, 96), 61, 62]
MELODY = [*range(0, 8), *range(24, 30), 40, 41, 42, *range(52, 55), *range(56, 80), *range(80, 88)]
BASS = [*range(32, 40), 42, 43, 58, 0]
DRUM_KITS = [0, 8, 16, 24, 25, 32, 40]


def random_spec(index: int) -> corpus.Spec:
    """The ``index``-th training piece, drawn from a generator seeded by SEED and the index."""
    rng = np.random.default_rng([SEED, index])
    meter = str(rng.choice(["4/4", "3/4", "2/4", "6/8", "12/8"], p=[0.42, 0.17, 0.1, 0.16, 0.15]))
    beats_per_bar, subs = corpus.METERS[meter]
    low, high = (40.0, 125.0) if subs == 3 else (58.0, 205.0)
    bpm = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    instr = str(
        rng.choice(["piano", "strings", "choir", "band", "electronic"], p=[0.2, 0.16, 0.14, 0.3, 0.2])
    )
    kits = ["rock", "backbeat", "halftime", "four", "breakbeat", "none"]
    if instr in ("piano", "strings", "choir"):
        drums = "none" if rng.random() < 0.7 else str(rng.choice(kits[:5]))
    else:
        drums = str(rng.choice(kits, p=[0.25, 0.15, 0.15, 0.17, 0.16, 0.12]))
    tempo = str(
        rng.choice(
            ["steady", "ramp", "rubato"], p=[0.66, 0.14, 0.2] if drums == "none" else [0.8, 0.14, 0.06]
        )
    )
    end_bpm = float(np.clip(bpm * rng.uniform(0.8, 1.25), low, high)) if tempo == "ramp" else 0.0
    feel = str(rng.choice(["straight", "swing", "sync"], p=[0.5, 0.2, 0.3] if subs == 2 else [0.6, 0.0, 0.4]))
    pickup = int(rng.choice([0, 0, 0, 1, 2])) if beats_per_bar > 2 else int(rng.choice([0, 0, 1]))
    soundfont = str(rng.choice(list(corpus.SOUNDFONTS)))
    fx = str(rng.choice(list(corpus.EFFECTS)))
    bars = max(6, min(28, round(rng.uniform(24.0, 40.0) * bpm / 60.0 / beats_per_bar)))
    programs: tuple[tuple[int, int], ...] = ()
    if rng.random() < 0.6:
        defaults = corpus.PROGRAMS[instr]
        drawn = {
            ch: int(
                rng.choice(
                    BASS
                    if ch == 0 and instr in ("band", "electronic")
                    else HARMONY
                    if ch in (1, 3)
                    else MELODY
                )
            )
            for ch in defaults
        }
        drawn[9] = int(rng.choice(DRUM_KITS))
        programs = tuple(sorted(drawn.items()))
    return corpus.Spec(
        f"train-{index:04d}",
        meter,
        bpm,
        instr,
        drums,
        tempo,
        feel,
        pickup,
        soundfont,
        fx,
        bars,
        end_bpm,
        seed=100_000 + index,
        programs=programs,
    )


def example_path(spec: corpus.Spec) -> Path:
    return CACHE / f"{spec.name}.npz"


def make_example(index: int) -> Path:
    """Render the piece (cached) and store its network input and frame labels (cached)."""
    spec = random_spec(index)
    out = example_path(spec)
    key = corpus._key(spec)
    if out.is_file():
        with np.load(out) as cached:
            if str(cached["key"]) == key:
                return out
    path, truth = corpus.render(spec, CACHE)
    x, labels = network_example(path, truth)
    np.savez_compressed(out, x=x.astype(np.float16), beats=labels[:, 0], downbeats=labels[:, 1], key=key)
    return out


def network_example(audio: Path, truth: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The network input of a rendered piece and its (frames, 2) beat / bar-line labels (0 or 1),
    computed by the product's own feature code so training and analysis read the same numbers."""
    x = beat_net.input_frames(features(load_audio(audio, ANALYSIS_RATE), ANALYSIS_RATE).mel_db)
    fps = ANALYSIS_RATE / HOP
    labels = np.zeros((x.shape[0], 2), dtype=np.uint8)
    for column, key in enumerate(("beats", "downbeats")):
        frames = np.round(np.asarray(truth[key]) * fps).astype(int)
        labels[frames[(frames >= 0) & (frames < x.shape[0])], column] = 1
    return x, labels


def _try_example(index: int) -> Path | None:
    try:
        return make_example(index)
    except (subprocess.SubprocessError, OSError, ValueError) as exc:  # one bad render is skipped, not fatal
        print(f"skipped train-{index:04d}: {exc}", file=sys.stderr, flush=True)
        return None


def build(count: int, workers: int) -> list[Path]:
    """The first ``count`` training pieces' examples (rendered once; a render that fails is skipped)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    paths = []
    with ProcessPoolExecutor(workers) as pool:
        for n, path in enumerate(pool.map(_try_example, range(count), chunksize=4), 1):
            if path is not None:
                paths.append(path)
            if n % 50 == 0 or n == count:
                print(f"{n}/{count} pieces ready", flush=True)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=900)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    build(args.count, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
