"""The demo song: an original track synthesized in code, with its exact ground truth.

WHY it exists: ``make demo`` needs a song nobody owns, the notebooks need a default input, and the
tests and the beat-tracking benchmark need a song whose beats, downbeats and sections are *known*,
not estimated. So the song is rendered from a plan (tempo, meter, chords, sections) and the plan
is the ground truth: every beat is a sample index, and the kick/snare/bass notes that mark a beat
start on exactly that sample.

Deterministic: the same arguments give the same bytes (seeded ``numpy`` generators, no clock, no
threads). Fast: every note or drum hit is rendered once, vectorized, and added into one buffer
(wavetable oscillators, drum templates rendered once per style, one FFT convolution for the
reverb); the ~60 s demo takes well under a second on one core.

Where things live: this module owns the public API, validation, the ground truth and the files;
``demo_plan`` the plan (grid, key, bars and chords, sections), ``demo_render`` the parts played on
it and the mix, ``demo_patterns`` the per-bar arrangement rules (drum and bass patterns, melody
motifs, pitch helpers) and ``synth`` the instruments that make the sound.

Musical plan: a major key, a real progression per section (one chord per bar), bass on the chord
roots, pads voiced inside one octave (so voice leading is smooth), a seeded 2-bar melody motif per
section repeated as question/answer phrases and snapped to chord tones on strong beats. Sections
differ on purpose (intro sparse and quiet, verse medium, chorus full and loud, outro fading) so
energy and section analysis have something real to find.

Run ``python -m kapsule.demo.song OUT.wav`` to listen.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf

from kapsule.core.errors import InvalidParameter
from kapsule.demo.plan import make_plan
from kapsule.demo.render import render
from kapsule.job.artifacts import Section

STYLES = ("pop", "rock", "ballad", "electronic", "waltz")
LABELS = ("intro", "verse", "chorus", "bridge", "outro")
TEMPO_RANGE = (60.0, 200.0)  # tuned for 70-180 BPM; a little slack for benchmarks
MAX_SECONDS = 20 * 60.0
TARGET_SECONDS = 60.0
# Seconds each section of the default structure aims at; bars are rounded from these per tempo.
DEFAULT_PLAN = (
    ("intro", 8.0),
    ("verse", 16.0),
    ("chorus", 16.0),
    ("verse", 8.0),
    ("chorus", 8.0),
    ("outro", 4.0),
)
DEMO_ARGS: dict[str, Any] = {
    "tempo": 120.0,
    "beats_per_bar": 4,
    "seed": 3,
    "style": "pop",
    "syncopation": 0.3,
}


# ----------------------------------------------------------------------------------------- public API


@dataclass(frozen=True, eq=False)  # eq=False: ``==`` on an ndarray field is ambiguous; compare samples
class DemoSong:
    """A rendered song and the plan it was rendered from (the ground truth)."""

    samples: npt.NDArray[np.float32]  # shape (n, 2), peak -1 dBFS, read-only
    sample_rate: int
    tempo: float
    beats_per_bar: int
    beats: list[float]  # every beat (s), absolute, including intro/outro; each is an exact sample
    downbeats: list[float]  # bar starts (s)
    sections: list[Section]  # contiguous, cover [0, duration]
    duration: float
    style: str = "pop"
    seed: int = 0
    swing: float = 0.0
    syncopation: float = 0.0
    key: str = "C"

    def ground_truth(self) -> dict[str, Any]:
        """The plan as JSON-ready data: the keys of ``analysis.json`` (minus energy) plus ``params``."""
        return {
            "duration": self.duration,
            "tempo": self.tempo,
            "beats": list(self.beats),
            "downbeats": list(self.downbeats),
            "sections": [s.model_dump() for s in self.sections],
            "beats_per_bar": self.beats_per_bar,
            "params": {
                "style": self.style,
                "seed": self.seed,
                "swing": self.swing,
                "syncopation": self.syncopation,
                "key": f"{self.key} major",
                "sample_rate": self.sample_rate,
            },
        }


def synthesize_song(
    *,
    tempo: float = 120.0,
    beats_per_bar: int = 4,
    seed: int = 0,
    style: str = "pop",
    swing: float = 0.0,
    structure: Sequence[tuple[str, int]] | None = None,
    leading_silence: float = 0.0,
    sample_rate: int = 44100,
    syncopation: float = 0.0,
) -> DemoSong:
    """Render an original song and return it with its ground truth.

    ``structure`` is ``[(label, bars), ...]`` with labels from ``LABELS``; by default about 60 s of
    intro / verse / chorus / verse / chorus / outro at this tempo. ``swing`` (0..0.5) delays each
    off-beat 8th by ``swing`` of an 8th (1/3 is a triplet shuffle); beats never move.
    ``syncopation`` (0..1) adds anticipations (bass, kick, melody) between the beats.
    ``leading_silence`` seconds of digital silence come first; every time shifts by it, and a
    ``"silence"`` section covers it. Bad values raise ``InvalidParameter``.
    """
    _validate(tempo, beats_per_bar, seed, style, swing, syncopation, leading_silence, sample_rate)
    plan = list(structure) if structure is not None else default_structure(tempo, beats_per_bar)
    _validate_structure(plan, tempo, beats_per_bar)
    song = make_plan(
        tempo=tempo,
        bpb=beats_per_bar,
        seed=seed,
        swing=swing,
        leading_silence=leading_silence,
        sr=sample_rate,
        structure=plan,
    )
    samples = render(song, style=style, sync=syncopation, seed=seed)
    beats = song.beats()
    return DemoSong(
        samples=samples,
        sample_rate=song.sr,
        tempo=song.tempo,
        beats_per_bar=song.bpb,
        beats=beats,
        downbeats=beats[:: song.bpb],
        sections=song.sections(),
        duration=song.n / song.sr,
        style=style,
        seed=seed,
        swing=song.swing,
        syncopation=float(syncopation),
        key=song.key,
    )


def default_structure(tempo: float, beats_per_bar: int) -> list[tuple[str, int]]:
    """About 60 s of intro/verse/chorus/verse/chorus/outro, in whole bars at this tempo and meter."""
    bar = beats_per_bar * 60.0 / tempo
    plan = []
    for label, seconds in DEFAULT_PLAN:
        bars = seconds / bar
        plan.append((label, max(1, 2 * round(bars / 2) if bars >= 6 else round(bars))))  # even: 2-bar motifs
    return plan


@cache
def demo_song() -> DemoSong:
    """THE demo song (~60 s, pop, 120 BPM, 4/4); rendered once per process."""
    return synthesize_song(**DEMO_ARGS)


def write_song(song: DemoSong, path: Path) -> Path:
    """Write a 16-bit PCM WAV and, beside it, ``.json`` ground truth (both atomically).

    The JSON also holds ``audio_sha256`` (of the PCM data), so a stale WAV is never mistaken for
    the current one. The WAV is written first: a JSON file on disk implies a complete WAV.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = _to_pcm16(song.samples)
    _atomic_write(path, lambda tmp: sf.write(tmp, pcm, song.sample_rate, format="WAV", subtype="PCM_16"))
    text = _truth_json(song, pcm)
    _atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path


def write_demo_song(path: Path) -> Path:
    """Write the demo song to ``path`` unless an identical one (same ground truth JSON) is there."""
    path = Path(path)
    song = demo_song()
    truth = path.with_suffix(".json")
    if path.is_file() and truth.is_file():
        try:
            if truth.read_text(encoding="utf-8") == _truth_json(song, _to_pcm16(song.samples)):
                return path
        except (OSError, UnicodeDecodeError):
            pass
    return write_song(song, path)


def main(argv: Sequence[str]) -> int:
    """``python -m kapsule.demo.song OUT.wav``: write the demo song to listen to."""
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: python -m kapsule.demo.song OUT.wav", file=sys.stderr)
        return 2
    path = write_demo_song(Path(argv[0]))
    song = demo_song()
    labels = " / ".join(f"{s.label} {s.start:.1f}s" for s in song.sections)
    print(f"wrote {path} ({song.duration:.1f} s, {song.tempo:g} BPM, {song.key} major): {labels}")
    return 0


# ------------------------------------------------------------------------------------------ validation


def _validate(
    tempo: float,
    beats_per_bar: int,
    seed: int,
    style: str,
    swing: float,
    syncopation: float,
    leading_silence: float,
    sample_rate: int,
) -> None:
    def bad(message: str) -> InvalidParameter:
        return InvalidParameter(f"demo song: {message}")

    if not (
        isinstance(tempo, int | float) and math.isfinite(tempo) and TEMPO_RANGE[0] <= tempo <= TEMPO_RANGE[1]
    ):
        raise bad(f"tempo must be between {TEMPO_RANGE[0]:g} and {TEMPO_RANGE[1]:g} BPM, got {tempo!r}")
    if beats_per_bar not in (2, 3, 4) or isinstance(beats_per_bar, bool):
        raise bad(f"beats_per_bar must be 2, 3 or 4, got {beats_per_bar!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise bad(f"seed must be a non-negative integer, got {seed!r}")
    if style not in STYLES:
        raise bad(f"style must be one of {', '.join(STYLES)}; got {style!r}")
    if not (isinstance(swing, int | float) and 0.0 <= swing <= 0.5):
        raise bad(f"swing must be between 0 and 0.5, got {swing!r}")
    if not (isinstance(syncopation, int | float) and 0.0 <= syncopation <= 1.0):
        raise bad(f"syncopation must be between 0 and 1, got {syncopation!r}")
    if not (isinstance(leading_silence, int | float) and 0.0 <= leading_silence <= MAX_SECONDS):
        raise bad(f"leading_silence must be between 0 and {MAX_SECONDS:g} s, got {leading_silence!r}")
    if not isinstance(sample_rate, int) or not 16000 <= sample_rate <= 96000:
        raise bad(f"sample_rate must be an integer between 16000 and 96000 Hz, got {sample_rate!r}")


def _validate_structure(plan: list[tuple[str, int]], tempo: float, beats_per_bar: int) -> None:
    if not plan:
        raise InvalidParameter("demo song: structure is empty; give at least one (label, bars) pair")
    for item in plan:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise InvalidParameter(f"demo song: structure items are (label, bars) pairs, got {item!r}")
        label, bars = item
        if label not in LABELS:
            raise InvalidParameter(
                f"demo song: section label must be one of {', '.join(LABELS)}; got {label!r}"
            )
        if not isinstance(bars, int) or isinstance(bars, bool) or bars < 1:
            raise InvalidParameter(
                f"demo song: section {label!r} needs a whole number of bars >= 1, got {bars!r}"
            )
    seconds = sum(bars for _, bars in plan) * beats_per_bar * 60.0 / tempo
    if seconds > MAX_SECONDS:
        raise InvalidParameter(
            f"demo song: structure lasts {seconds:.0f} s; the limit is {MAX_SECONDS:.0f} s"
        )


# ----------------------------------------------------------------------------------------------- files


def _to_pcm16(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    return np.round(np.clip(samples, -1.0, 1.0) * 32767).astype(np.dtype("<i2"))


def _truth_json(song: DemoSong, pcm: npt.NDArray[np.int16]) -> str:
    truth = {**song.ground_truth(), "audio_sha256": hashlib.sha256(pcm.tobytes()).hexdigest()}
    return json.dumps(truth, indent=1) + "\n"


def _atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Write through a temp file in the same folder, then rename: a killed run leaves no half file."""
    # Not mkstemp: its 0600 mode would stick to the renamed file; this name is just as unique.
    tmp = str(path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"))
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
