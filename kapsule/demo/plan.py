"""The demo song's plan: its time grid, key, chords and sections, which are also its ground truth.

WHY a module of its own: the plan decides *where* everything is (every beat is a sample index,
every bar holds one chord) and is what the tests and the beat-tracking benchmark compare against;
``demo_render`` decides *what sounds* there. The plan holds no audio and draws from one seeded
generator only (key, then progression), so it is cheap to build and always the same for a seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kapsule.demo.patterns import MAJOR, Bar
from kapsule.job.artifacts import Section

SILENCE_LABEL = "silence"  # the section covering ``leading_silence``, so sections still start at 0
ROMAN = ("I", "ii", "iii", "IV", "V", "vi", "vii°")
KEYS = (("C", 0), ("D", 2), ("Eb", 3), ("E", 4), ("F", 5), ("G", 7), ("A", 9), ("Bb", 10))
# (verse, chorus) progressions as scale degrees, one chord per bar; intro borrows the verse's.
PROGRESSIONS = (
    ((5, 3, 0, 4), (0, 4, 5, 3)),  # vi IV I V  /  I V vi IV
    ((0, 5, 3, 4), (3, 0, 4, 5)),  # I vi IV V  /  IV I V vi
    ((0, 3, 5, 4), (5, 3, 0, 4)),  # I IV vi V  /  vi IV I V
    ((5, 4, 3, 4), (0, 4, 5, 3)),  # vi V IV V  /  I V vi IV
)
BRIDGE_PROGRESSION = (3, 4, 5, 5)
OUTRO_PROGRESSION = (3, 0)  # IV I: a plagal "amen" that fades well
LEVEL = {SILENCE_LABEL: 0.0, "intro": 0.5, "verse": 0.78, "chorus": 1.0, "bridge": 0.72, "outro": 0.7}


@dataclass(frozen=True)
class SongPlan:
    """One song's grid and harmony: what every part is placed on, and the ground truth it reports."""

    tempo: float
    bpb: int  # beats per bar
    swing: float
    sr: int  # sample rate
    offset: int  # samples of leading silence
    key: str
    tonic: int  # pitch class of the key's tonic
    bars: tuple[Bar, ...]

    @property
    def beat_seconds(self) -> float:
        return 60.0 / self.tempo

    @property
    def beat_count(self) -> int:
        return len(self.bars) * self.bpb

    @property
    def n(self) -> int:
        """Samples in the song: up to the beat after the last one."""
        return self.at(self.beat_count)

    def at(self, beat: float) -> int:
        """Sample index of a position in beats from the first bar (leading silence included)."""
        whole = math.floor(beat)
        frac = beat - whole
        # Swing: the off-beat 8th moves later by ``swing`` of an 8th; beats and the grid
        # between them are warped piecewise-linearly so 16ths stay in order.
        if frac < 0.5:
            frac *= 1 + self.swing
        else:
            frac = 0.5 + self.swing / 2 + (frac - 0.5) * (1 - self.swing)
        return self.offset + round((whole + frac) * self.beat_seconds * self.sr)

    def beats(self) -> list[float]:
        """Every beat (s), each on an exact sample."""
        return [self.at(b) / self.sr for b in range(self.beat_count)]

    def sections(self) -> list[Section]:
        """Contiguous sections covering the song, a ``silence`` one first if there is leading silence."""
        duration = self.n / self.sr
        sections = [Section(start=0.0, end=self.offset / self.sr, label=SILENCE_LABEL)] if self.offset else []
        for bar in self.bars:
            if bar.pos == 0:
                start = self.at(bar.index * self.bpb) / self.sr
                if sections:
                    sections[-1] = Section(start=sections[-1].start, end=start, label=sections[-1].label)
                sections.append(Section(start=start, end=duration, label=bar.label))
        return sections

    def level(self, bar: Bar) -> float:
        """How loud a bar's section plays (0..1): the sections differ so analysis has energy to find."""
        return LEVEL[bar.label]

    def bass_midi(self, degree: int) -> int:
        """The root of a scale degree in the bass register (A1..G#2)."""
        pc = (self.tonic + MAJOR[degree % 7]) % 12
        return 33 + (pc - 33) % 12

    def voicing(self, degree: int, low: int = 55) -> list[int]:
        """The triad inside one octave from ``low``: neighbouring chords share or step notes."""
        pcs = [(self.tonic + MAJOR[(degree + k) % 7]) % 12 for k in (0, 2, 4)]
        return sorted(low + (pc - low) % 12 for pc in pcs)


def make_plan(
    *,
    tempo: float,
    bpb: int,
    seed: int,
    swing: float,
    leading_silence: float,
    sr: int,
    structure: Sequence[tuple[str, int]],
) -> SongPlan:
    """Pick the key and progressions from ``seed`` and lay the bars of ``structure`` on the grid."""
    harmony = np.random.default_rng([seed, 0])
    key, tonic = KEYS[int(harmony.integers(len(KEYS)))]
    progressions = PROGRESSIONS[int(harmony.integers(len(PROGRESSIONS)))]
    return SongPlan(
        tempo=float(tempo),
        bpb=bpb,
        swing=float(swing),
        sr=sr,
        offset=round(leading_silence * sr),
        key=key,
        tonic=tonic,
        bars=tuple(_bars(list(structure), progressions)),
    )


def _bars(plan: list[tuple[str, int]], progressions: tuple[tuple[int, ...], tuple[int, ...]]) -> list[Bar]:
    verse, chorus = progressions
    progression = {
        "intro": verse,
        "verse": verse,
        "chorus": chorus,
        "bridge": BRIDGE_PROGRESSION,
        "outro": OUTRO_PROGRESSION,
    }
    bars: list[Bar] = []
    seen: dict[str, int] = {}
    for s, (label, length) in enumerate(plan):
        occurrence = seen.get(label, 0)
        seen[label] = occurrence + 1
        following = plan[s + 1][0] if s + 1 < len(plan) else None
        chords = progression[label]
        for pos in range(length):
            chord = chords[pos % len(chords)]
            if label == "outro" and pos == length - 1:
                chord = 0  # always end on the tonic
            bars.append(Bar(len(bars), label, pos, length, occurrence, chord, following))
    return bars
