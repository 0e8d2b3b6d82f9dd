"""What the demo song plays, bar by bar: drum and bass patterns per style, melody motifs, pitch.

WHY a module of its own: these are the song's arrangement rules, pure functions from the plan
(style, meter, a ``Bar``) to note lists; they make no sound and hold no buffers. ``demo_plan``
lays out the bars and ``demo_render`` renders the notes with ``synth``; keeping the rules here keeps
those files about the plan and the mix. Randomness comes only from the generator the caller passes in, so the
caller's draw order (and with it the rendered audio) stays fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAJOR = (0, 2, 4, 5, 7, 9, 11)  # the major scale as semitones above the tonic


@dataclass(frozen=True)
class Bar:
    """One bar of the plan: where it sits, which section it belongs to, which chord it holds."""

    index: int  # bar number in the song
    label: str
    pos: int  # bar number inside its section
    length: int  # bars in its section
    occurrence: int  # 0 for the first verse, 1 for the second…
    chord: int  # scale degree of the chord root
    next_label: str | None


def drum_pattern(
    style: str, bar: Bar, bpb: int, sync: float, rng: np.random.Generator
) -> list[tuple[str, float, float]]:
    """The hits of one bar: (instrument, position in beats, velocity)."""
    label = bar.label
    hits: list[tuple[str, float, float]] = []
    backbeat = {2: (1,), 3: (1, 2), 4: (1, 3)}[bpb]
    kicks = {2: (0,), 3: (0,), 4: (0, 2)}[bpb]
    snare = {"electronic": "clap", "ballad": "rim"}.get(style, "snare")
    if style == "waltz":
        backbeat, kicks = tuple(range(1, bpb)), (0,)
    if label == "intro":
        if style in ("ballad", "waltz"):
            return []
        hits += [("hat", b, 0.35) for b in range(bpb)]
        hits += [("kick", b, 0.6) for b in (range(bpb) if style == "electronic" else (0,))]
        if style == "electronic":
            hits += [("hat", b + 0.5, 0.3) for b in range(bpb)]
        return hits
    if label == "outro":
        if style == "ballad":
            return []
        return [("kick", 0, 0.7), *[("hat", b, 0.3) for b in range(bpb)]]
    full = label == "chorus"
    if style == "electronic":
        kicks = tuple(range(bpb))
    if style == "ballad" and not full:
        snare = "rim"
    elif style == "ballad":
        snare = "snare"
    hits += [("kick", b, 1.0 if b == 0 else 0.85) for b in kicks]
    hits += [(snare, b, (0.95 if full else 0.8) if style != "waltz" else 0.5) for b in backbeat]
    hats: list[tuple[str, float, float]]
    if style in ("ballad", "waltz") and not full:
        hats = [("hat", b, 0.4) for b in range(bpb)]
    elif style == "electronic":
        hats = [("hat", b + q / 4, 0.25 if q else 0.35) for b in range(bpb) for q in (0, 1, 3)]
        if full:
            hats += [("open", b + 0.5, 0.3) for b in range(bpb)]
        else:
            hats += [("hat", b + 0.5, 0.4) for b in range(bpb)]
    else:
        hats = [
            ("hat", b + h / 2, (0.55 if h == 0 else 0.35) * (1.15 if full else 1.0))
            for b in range(bpb)
            for h in (0, 1)
        ]
        if full and style in ("pop", "rock"):
            hats[-1] = ("open", bpb - 0.5, 0.45)
    hits += hats
    extra = full or (style == "rock") or rng.random() < sync
    if bpb == 4 and extra and style in ("pop", "rock"):
        hits.append(("kick", 2.5, 0.75))
    if full and bar.pos == 0:
        hits.append(("crash", 0, 0.8))
    if bar.pos == bar.length - 1 and bar.next_label == "chorus" and style != "waltz":
        last = bpb - 1  # a 16th snare fill into the chorus
        hits = [h for h in hits if h[1] < last or h[0] in ("kick", "hat")]
        hits += [(snare if style != "ballad" else "snare", last + q / 4, 0.45 + 0.15 * q) for q in range(4)]
    return hits


def bass_pattern(style: str, bar: Bar, bpb: int) -> list[tuple[float, float, int, float]]:
    """The bass notes of one bar: (position in beats, length in beats, interval, velocity)."""
    if bar.label == "intro":
        return [(0.0, float(bpb), 0, 0.6)] if style in ("ballad", "waltz") else []
    if bar.label == "outro" or (style == "ballad" and bar.label != "chorus"):
        return [(0.0, float(bpb), 0, 0.8)]
    if style == "waltz":
        return [(0.0, 0.9, 0 if bar.pos % 2 == 0 else -5, 1.0)]
    if style == "ballad":
        return [(float(b), 0.95, 0, 0.9) for b in range(bpb)]
    if style == "electronic":
        return [(b + h / 2, 0.45, 0, 1.0 if h else 0.7) for b in range(bpb) for h in (0, 1)]
    full = bar.label == "chorus"
    notes = []
    for k in range(bpb * 2):
        octave = 12 if full and style == "pop" and k % 4 == 3 else 0
        notes.append((k / 2, 0.45, octave, 1.0 if k % 2 == 0 else 0.8))
    return notes


def motif(
    rng: np.random.Generator, bpb: int, density: float, center: int, sync: float
) -> list[tuple[float, float, int]]:
    """A 2-bar melody cell in 8ths: (position in beats, length in beats, scale degree)."""
    steps = 4 * bpb
    onsets = [0]
    for _ in range(50):  # re-draw until the cell is neither empty nor a wall of 8ths
        onsets = [0] + [
            s for s in range(1, steps - 1) if rng.random() < density * (1.0 if s % 2 == 0 else 0.55)
        ]
        if bpb + 1 <= len(onsets) <= 3 * bpb:
            break
    if sync:  # anticipate: move some on-beat notes an 8th earlier
        onsets = sorted({s - 1 if s % 2 == 0 and s > 0 and rng.random() < sync * 0.5 else s for s in onsets})
    notes = []
    degree = center
    for i, s in enumerate(onsets):
        nxt = onsets[i + 1] if i + 1 < len(onsets) else steps
        length = min(nxt - s, 4) - (0.2 if nxt == steps else 0.0)
        step = int(rng.choice((-2, -1, -1, 0, 1, 1, 2, 3)))
        if abs(degree + step - center) > 4:
            step = -step
        degree = degree + step if i else center
        notes.append((s / 2, length / 2, degree))
    return notes


def nearest_chord_tone(degree: int, chord: int, prefer_root: bool = False) -> int:
    tones = {chord % 7} if prefer_root else {chord % 7, (chord + 2) % 7, (chord + 4) % 7}
    return min(range(degree - 6, degree + 7), key=lambda d: (d % 7 not in tones, abs(d - degree), d))


def degree_midi(tonic: int, degree: int) -> int:
    return tonic + MAJOR[degree % 7] + 12 * (degree // 7)


def hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)
