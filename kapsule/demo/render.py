"""The demo song's sound: each part played onto the plan's grid, then mixed and mastered.

WHY a module of its own: ``demo_plan`` says where every beat, bar and chord is; this module turns
that into samples. Parts (drums, bass, pads or guitar, arpeggio, lead) are functions of a ``Band``
(the plan, the buses and the seeded generators); ``Mixer`` owns the buses and the master chain.
Bit-exact output depends on the order of the random draws and of the additions into the buses, so
``render`` plays the parts bar by bar in one fixed order and the melody last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kapsule.demo import synth
from kapsule.demo.patterns import (
    Bar,
    bass_pattern,
    degree_midi,
    drum_pattern,
    hz,
    motif,
    nearest_chord_tone,
)
from kapsule.demo.plan import SongPlan

PEAK = 10 ** (-1 / 20)  # -1 dBFS

Stereo = npt.NDArray[np.float32]  # shape (2, n)


class Mixer:
    """The song's buses: the main mix, the pads (their own bus: electronic pumps it to the kick) and
    the reverb send (mono in, stereo out)."""

    def __init__(self, n: int, sr: int) -> None:
        self.n, self.sr = n, sr
        self.mix: Stereo = np.zeros((2, n), np.float32)
        self.send: synth.Mono = np.zeros(n, np.float32)
        self.pads: Stereo = np.zeros((2, n), np.float32)

    def place(self, start: int, sound: synth.Mono, gain: float, pan: float = 0.0, send: float = 0.0) -> None:
        """Add a mono sound at a sample index (equal-power pan -1..1; ``send`` feeds the reverb)."""
        self.add(self.mix, start, sound, gain, pan, send)

    def add(self, bus: Stereo, start: int, sound: synth.Mono, gain: float, pan: float, send: float) -> None:
        """Add a mono sound to ``bus`` (the mix or the pads)."""
        if start >= self.n or gain <= 0:
            return
        sound = sound[: self.n - start]
        end = start + len(sound)
        angle = (pan + 1) * math.pi / 4
        bus[0, start:end] += (gain * math.cos(angle)) * sound
        bus[1, start:end] += (gain * math.sin(angle)) * sound
        if send:
            self.send[start:end] += (gain * send) * sound

    def master(self, plan: SongPlan, style: str) -> npt.NDArray[np.float32]:
        """Pump, reverb, fade, saturate and normalize to -1 dBFS: read-only float32 of shape (n, 2)."""
        if style == "electronic":  # side-chain pump: pads duck on every beat, like a real kick
            beat_starts = np.array([plan.at(b) for b in range(plan.beat_count)])
            idx = np.arange(self.n)
            last = beat_starts[np.maximum(np.searchsorted(beat_starts, idx, side="right") - 1, 0)]
            since = (idx - last) / self.sr
            self.pads *= (1.0 - 0.6 * np.exp(-since / 0.12)).astype(np.float32)
        self.mix += self.pads
        wet = synth.reverb(self.send, self.sr, 2.2 if style == "ballad" else 1.5)
        out = self.mix + wet * (0.5 if style == "ballad" else 0.35)
        out *= self._fade(plan)
        peak = float(np.max(np.abs(out))) or 1.0
        drive = 1.6
        out = np.tanh(out * (drive / peak)) / math.tanh(drive)  # gentle saturation glues the mix
        out *= PEAK / (float(np.max(np.abs(out))) or 1.0)
        out[:, : plan.offset] = 0.0  # FFT round-off must not leak into the leading silence
        samples = np.ascontiguousarray(out.T, dtype=np.float32)
        samples.flags.writeable = False
        return samples

    def _fade(self, plan: SongPlan) -> synth.Mono:
        """Master gain: the outro fades to silence; the last 20 ms ramp so the end never clicks."""
        gain = np.ones(self.n, np.float32)
        outro = [b for b in plan.bars if b.label == "outro" and b.pos == 0]
        if outro:
            start = plan.at(outro[-1].index * plan.bpb)
            ramp = np.linspace(1.0, 0.0, self.n - start, dtype=np.float32)
            gain[start:] = ramp**1.5
        tail = min(self.n - plan.offset, int(0.02 * self.sr))
        if tail > 0:
            gain[self.n - tail :] *= np.linspace(1.0, 0.0, tail, dtype=np.float32)
        return gain


@dataclass
class Band:
    """Who plays: the plan, the buses, the style, and one seeded generator per kind of decision."""

    plan: SongPlan
    mixer: Mixer
    style: str
    sync: float  # syncopation 0..1
    melody_rng: np.random.Generator
    groove_rng: np.random.Generator
    phase_rng: np.random.Generator


def render(plan: SongPlan, *, style: str, sync: float, seed: int) -> npt.NDArray[np.float32]:
    """The song's samples: float32, shape (n, 2), peak -1 dBFS, read-only."""
    band = Band(
        plan=plan,
        mixer=Mixer(plan.n, plan.sr),
        style=style,
        sync=float(sync),
        melody_rng=np.random.default_rng([seed, 1]),
        groove_rng=np.random.default_rng([seed, 2]),
        phase_rng=np.random.default_rng([seed, 3]),
    )
    kit = synth.drum_kit(style, plan.sr)
    for bar in plan.bars:
        drums(band, bar, kit)
        bass(band, bar)
        harmony(band, bar)
        arp(band, bar)
    melody(band)
    return band.mixer.master(plan, style)


def drums(band: Band, bar: Bar, kit: dict[str, synth.Mono]) -> None:
    plan = band.plan
    base = bar.index * plan.bpb
    level = plan.level(bar)
    for name, pos, velocity in drum_pattern(band.style, bar, plan.bpb, band.sync, band.groove_rng):
        sound = kit[name]
        pan = {"hat": 0.3, "open": 0.3, "crash": -0.4}.get(name, 0.0)
        send = {"snare": 0.25, "clap": 0.3, "rim": 0.2, "crash": 0.2}.get(name, 0.04)
        if name == "hat":  # a drummer's hats are never two alike
            velocity *= 0.85 + 0.3 * band.groove_rng.random()
        band.mixer.place(plan.at(base + pos), sound, velocity * level, pan, send)


def bass(band: Band, bar: Bar) -> None:
    plan = band.plan
    notes = bass_pattern(band.style, bar, plan.bpb)
    if not notes:
        return
    base = bar.index * plan.bpb
    level = plan.level(bar)
    root = plan.bass_midi(bar.chord)
    nxt = plan.bars[bar.index + 1] if bar.index + 1 < len(plan.bars) else None
    anticipate = nxt is not None and band.groove_rng.random() < band.sync * 0.6 and bar.label != "outro"
    bright = {"rock": 2200.0, "ballad": 500.0, "electronic": 1600.0}.get(band.style, 1100.0)
    for pos, length, interval, velocity in notes:
        midi = root + interval
        if anticipate and nxt is not None and pos == plan.bpb - 0.5:
            midi = plan.bass_midi(nxt.chord)
        start, end = plan.at(base + pos), plan.at(base + pos + length)
        note = synth.bass_note(hz(midi), end - start, plan.sr, bright, band.style)
        band.mixer.place(start, note, 0.55 * velocity * level)


def harmony(band: Band, bar: Bar) -> None:
    """Pads (or rock's guitar), and the waltz's "oom-pah-pah" chords."""
    plan, style, mixer = band.plan, band.style, band.mixer
    base = bar.index * plan.bpb
    level = plan.level(bar)
    start, end = plan.at(base), plan.at(base + plan.bpb)
    if style == "rock" and bar.label in ("verse", "chorus", "bridge"):
        guitar(band, bar, base, level)
        return
    voicing = plan.voicing(bar.chord)
    if bar.label == "chorus":
        voicing.append(voicing[0] + 12)
    cutoff = {"intro": 700.0, "verse": 1300.0, "chorus": 2800.0, "bridge": 1500.0, "outro": 900.0}[bar.label]
    attack = {"ballad": 0.7, "electronic": 0.02, "rock": 0.3}.get(style, 0.12)
    gain = {"ballad": 0.2, "electronic": 0.12, "rock": 0.12}.get(style, 0.13) * level
    release = 0.5 if style == "ballad" else 0.3
    for midi in voicing:
        left, right = synth.pad_note(hz(midi), end - start, plan.sr, cutoff, attack, release, band.phase_rng)
        mixer.add(mixer.pads, start, left, gain, -1.0, 0.35)
        mixer.add(mixer.pads, start, right, gain, 1.0, 0.35)
    if style == "waltz" and bar.label in ("verse", "chorus", "bridge"):
        for beat in range(1, plan.bpb):  # "oom-pah-pah": the bass takes 1, short chords the rest
            length = plan.at(base + beat + 0.6) - plan.at(base + beat)
            for i, midi in enumerate(plan.voicing(bar.chord, 60)):
                note = synth.pluck(hz(midi), length, plan.sr, 2500.0, 0.25)
                mixer.place(plan.at(base + beat), note, 0.09 * level, (-0.3, 0.0, 0.3)[i], 0.25)


def guitar(band: Band, bar: Bar, base: int, level: float) -> None:
    """Distorted power chords: palm-muted 8ths in the verse, open strums in the chorus."""
    plan = band.plan
    root = 40 + (plan.bass_midi(bar.chord) - 40) % 12
    if bar.label == "chorus":
        hits = [(0.0, plan.bpb / 2, 1.0), (plan.bpb / 2, plan.bpb / 2, 0.85)]
    else:
        hits = [(k / 2, 0.4, 0.8 if k % 2 == 0 else 0.6) for k in range(plan.bpb * 2)]
    for pos, length, velocity in hits:
        start = plan.at(base + pos)
        n = plan.at(base + pos + length) - start + int(0.05 * plan.sr)
        muted = bar.label != "chorus"
        chord = synth.power_chord(hz(root), n, plan.sr, muted)
        gain = 0.16 * velocity * level
        band.mixer.place(start, chord, gain, -0.5, 0.1)
        band.mixer.place(start + int(0.012 * plan.sr), chord, gain * 0.8, 0.5, 0.1)  # double-tracked


def arp(band: Band, bar: Bar) -> None:
    plan, style = band.plan, band.style
    wanted = {
        "pop": ("intro", "chorus"),
        "electronic": ("verse", "chorus", "bridge"),
        "ballad": ("chorus", "bridge"),
    }.get(style, ())
    if bar.label not in wanted:
        return
    step = 0.25 if style == "electronic" else 0.5
    tones = [*plan.voicing(bar.chord, 64), plan.voicing(bar.chord, 64)[0] + 12]
    order = [0, 1, 2, 3, 2, 1]
    base = bar.index * plan.bpb
    gain = {"intro": 0.06, "verse": 0.05}.get(bar.label, 0.075) * plan.level(bar)
    decay = 0.35 if style == "ballad" else 0.14
    for k in range(round(plan.bpb / step)):
        midi = tones[order[k % len(order)]]
        start = plan.at(base + k * step)
        note = synth.pluck(hz(midi), plan.at(base + (k + 1) * step) - start, plan.sr, 3200.0, decay)
        band.mixer.place(start, note, gain * (1.0 if k % 2 == 0 else 0.75), 0.45, 0.3)


def melody(band: Band) -> None:
    """A 2-bar motif per section label, repeated as question (A) / answer (A with cadence)."""
    plan = band.plan
    lead_tonic = 60 + plan.tonic if plan.tonic <= 8 else 48 + plan.tonic
    motifs: dict[str, list[tuple[float, float, int]]] = {}
    for label, center, density in (("verse", 3, 0.4), ("chorus", 7, 0.6), ("bridge", 5, 0.35)):
        motifs[label] = motif(band.melody_rng, plan.bpb, density, center, band.sync)
    for bar in plan.bars:
        if bar.label not in motifs:
            continue
        cadence = bar.pos % 4 == 3 or bar.pos == bar.length - 1
        phrase_bar = bar.pos % 2
        if cadence:
            notes = [(0.0, plan.bpb - 0.5, motifs[bar.label][0][2])]
        else:
            notes = [(p - phrase_bar * plan.bpb, d, g) for p, d, g in motifs[bar.label]]
            notes = [n for n in notes if 0 <= n[0] < plan.bpb]
        for pos, length, degree in notes:
            strong = float(pos).is_integer()
            if strong or cadence:
                degree = nearest_chord_tone(degree, bar.chord, prefer_root=cadence)
            lead_note(band, bar, pos, length, degree_midi(lead_tonic, degree))


def lead_note(band: Band, bar: Bar, pos: float, length: float, midi: int) -> None:
    """One lead note with its chorus octave double and a dotted-8th echo."""
    plan, mixer = band.plan, band.mixer
    base = bar.index * plan.bpb
    start = plan.at(base + pos)
    gate = plan.at(base + pos + length) - start
    level = plan.level(bar) * (1.15 if bar.label == "chorus" else 1.0)
    note = synth.lead_note(hz(midi), gate, plan.sr, band.style)
    gain = 0.16 * level
    mixer.place(start, note, gain, -0.15, 0.3)
    if bar.label == "chorus":  # octave double, quieter: the chorus sounds bigger
        mixer.place(start, synth.lead_note(hz(midi + 12), gate, plan.sr, band.style), gain * 0.3, 0.2, 0.3)
    echo = plan.at(base + pos + 0.75) - start  # dotted-8th echo, wet only on the sides
    mixer.place(start + echo, note, gain * 0.25, 0.7, 0.2)
    mixer.place(start + 2 * echo, note, gain * 0.1, -0.7, 0.2)
