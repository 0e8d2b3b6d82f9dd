"""What a local clip looks like and how the music moves it: palettes, the look chosen from the prompt,
and the per-frame music signals (energy, beat pulse, animation clock) of a shot.

Pure and deterministic: the same prompt, section and seed give the same look, and the same analysis
gives the same signals. ``local_draw`` turns a look and a track into frames.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np

from kapsule.job.artifacts import Analysis

LUT_SIZE = 512

BEAT_DECAY_S = 0.11  # how fast a beat's flash fades
BEAT_STRENGTH = 0.55  # a plain beat, relative to a downbeat (1.0)

# --------------------------------------------------------------------------------------- palettes

# Hand-picked gradients, dark to light, so every motif gets depth (dark) and highlights (light).
# They are sampled "ping-pong" (there and back) so a hue field can wrap around without a seam.
PALETTES: dict[str, tuple[str, ...]] = {
    "neon": ("#14002e", "#ff2bd6", "#7b2bff", "#00e1ff", "#eaff00"),
    "sunset": ("#1b0633", "#6a0d5f", "#d62c5b", "#ff7b39", "#ffd35c"),
    "ocean": ("#001a33", "#004e7a", "#0096c7", "#48e5c2", "#e0fbfc"),
    "fire": ("#140000", "#6b0700", "#d62800", "#ff8c00", "#ffe45c"),
    "synthwave": ("#0d0221", "#2d0b59", "#ff2a6d", "#05d9e8", "#d1f7ff"),
    "forest": ("#04140a", "#0b3d20", "#2e8b57", "#9acd32", "#f0e68c"),
    "ice": ("#0a1a2f", "#1d4e89", "#4ea8de", "#a8dadc", "#f1faee"),
    "candy": ("#3a0ca3", "#f72585", "#ff8fab", "#ffd6e0", "#8ecae6"),
    "noir": ("#050507", "#2b2b30", "#6e6e74", "#bdbdc2", "#f5f5f7"),
}

# Words in a prompt that steer the choice (whole words; a plural "s"/"es" also matches). They include
# the vocabulary of the local prompt writer (light, details, camera moves), so its prompts vary the
# motif from shot to shot while the user's own words ("tunnel", "sunset") win when present.
PALETTE_WORDS: dict[str, tuple[str, ...]] = {
    "neon": ("neon", "rainbow", "psychedelic", "disco", "rave", "club", "cyberpunk", "lens flare"),
    "sunset": ("sunset", "sunrise", "warm", "gold", "golden", "desert", "summer", "dusk", "tungsten"),
    "ocean": ("ocean", "sea", "water", "underwater", "blue", "rain", "wave", "puddle", "beach"),
    "fire": ("fire", "flame", "lava", "ember", "volcano", "heat", "burning", "spark"),
    "synthwave": ("synthwave", "retro", "80s", "vaporwave", "miami", "outrun", "magenta", "cyan"),
    "forest": ("forest", "jungle", "green", "nature", "garden", "leaf", "leaves", "moss", "petal"),
    "ice": ("ice", "icy", "frozen", "snow", "snowy", "winter", "frost", "glacier", "cold", "moonlight"),
    "candy": ("candy", "pastel", "pink", "sweet", "bubblegum", "dreamy", "confetti", "lantern"),
    "noir": ("noir", "black and white", "monochrome", "grayscale", "greyscale", "silhouette", "shadow"),
}

MOTIF_WORDS: dict[str, tuple[str, ...]] = {
    "plasma": ("plasma", "psychedelic", "smoke", "fluid", "cloud", "dream", "abstract", "haze", "swirling"),
    "rings": ("ring", "ripple", "rippling", "circle", "halo", "radar", "orbit", "reflection"),
    "kaleido": ("kaleidoscope", "geometric", "polygon", "mandala", "prism", "crystal", "mirror", "shard"),
    "starfield": ("star", "space", "galaxy", "cosmic", "universe", "planet", "spark", "dust", "confetti"),
    "tunnel": ("tunnel", "corridor", "warp", "hyperspace", "vortex", "portal", "fly-through", "streak"),
    "bars": ("equalizer", "waveform", "spectrum", "speaker", "visualizer", "bar", "blind", "strobing"),
    "aurora": ("aurora", "northern lights", "curtain", "sky", "ribbon", "wind", "beam"),
    "blobs": ("blob", "liquid", "lava lamp", "bubble", "ink", "metaball", "lantern", "balloon"),
}
_PATTERNS = {
    name: re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")(?:s|es)?\b")
    for name, words in (PALETTE_WORDS | MOTIF_WORDS).items()
}
# (PALETTE_WORDS and MOTIF_WORDS share no keys, so one table of patterns serves both.)


def palette_lut(name: str, offset: float = 0.0) -> np.ndarray:
    """A (LUT_SIZE, 3) float32 table of 0..255 colours; ``offset`` (0..1) slides along the gradient."""
    stops = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in PALETTES[name]], dtype=np.float32)
    h = (np.arange(LUT_SIZE, dtype=np.float32) / LUT_SIZE + offset) % 1.0
    h = 1.0 - np.abs(2.0 * h - 1.0)  # 0 → 1 → 0: the table's ends meet
    pos = np.linspace(0.0, 1.0, len(stops), dtype=np.float32)
    return np.stack([np.interp(h, pos, stops[:, ch]) for ch in range(3)], axis=1).astype(np.float32)


# ------------------------------------------------------------------------------------------ look


@dataclass(frozen=True)
class Look:
    """What a shot looks like, decided once from its prompt, section and seed."""

    motif: str
    palette: str
    hue_shift: float
    speed: float  # base motion speed (phase units per second at mean energy)
    params: dict[str, float] = field(default_factory=dict)
    seed: int = 0


def _digest(*parts: str | int) -> int:
    blob = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


def _pick(options: list[str], text: str, h: int, others: int = 0) -> str:
    """Choose among the options the prompt mentions (or all when it mentions none).

    With ``others`` > 0 each mentioned option counts ``others`` times and the rest once, so words
    steer without taking over: every prompt of a video repeats its subject, and a subject that
    names a motif would otherwise make every shot the same.
    """
    mentioned = [name for name in options if _PATTERNS[name].search(text)]
    if not mentioned:
        return options[h % len(options)]
    pool = (
        [name for name in options for _ in range(others if name in mentioned else 1)] if others else mentioned
    )
    return pool[h % len(pool)]


def choose_look(prompt: str, section: str, seed: int) -> Look:
    """Deterministic: the same prompt, section and seed always give the same look."""
    text = prompt.lower()
    h = _digest(text, section, seed)
    motif = _pick(sorted(MOTIF_WORDS), text, h, others=3)  # varies from shot to shot
    palette = _pick(sorted(PALETTES), text, h >> 16)  # colour words are honoured: one palette family
    rng = np.random.default_rng(h)
    params = {
        "k": float(rng.uniform(0.8, 1.4)),  # spatial frequency scale
        "sides": float(rng.integers(3, 9)),  # kaleidoscope symmetry
        "lobes": float(rng.integers(2, 7)),  # ring wobble
        "dir": float(rng.choice([-1.0, 1.0])),  # rotation direction
        "bars": float(rng.integers(20, 41)),
        "segments": float(rng.integers(4, 11)),  # tunnel tiles around
        "cx": float(rng.uniform(-0.5, 0.5)),
        "cy": float(rng.uniform(-0.3, 0.3)),
        "phase0": float(rng.uniform(0.0, 100.0)),
    }
    return Look(
        motif=motif,
        palette=palette,
        hue_shift=float(rng.uniform(0.0, 1.0)),
        speed=float(rng.uniform(0.8, 1.3)),
        params=params,
        seed=h & 0xFFFFFFFF,
    )


# ----------------------------------------------------------------------------------------- music


@dataclass(frozen=True)
class MusicTrack:
    """Per-frame music signals of one shot (all arrays have one value per frame)."""

    times: np.ndarray  # absolute seconds of each frame
    energy: np.ndarray  # 0..1, lightly smoothed
    pulse: np.ndarray  # 0..1: 1.0 on a downbeat frame, BEAT_STRENGTH on a beat, decaying after
    phase: np.ndarray  # animation clock: advances faster when the music is loud and on each beat


def music_track(analysis: Analysis, start: float, frames: int, fps: int, speed: float) -> MusicTrack:
    """Sample the song's energy and beats on the shot's frame grid."""
    times = start + np.arange(frames, dtype=np.float64) / fps
    if analysis.energy.times:
        raw = np.interp(times, analysis.energy.times, analysis.energy.values)
    else:
        raw = np.full(frames, 0.5)
    raw = np.clip(raw, 0.0, 1.0)
    energy = np.empty(frames)
    level = raw[0] if frames else 0.0
    for i, value in enumerate(raw):  # one-pole smoothing: no flicker from a jittery curve
        level += 0.35 * (value - level)
        energy[i] = level

    pulse = np.zeros(frames)
    beats = np.asarray(sorted(analysis.beats), dtype=np.float64)
    if beats.size:
        half_frame = 0.5 / fps
        last = np.searchsorted(beats, times + half_frame, side="right") - 1
        has_beat = last >= 0
        beat_time = beats[np.clip(last, 0, None)]
        since = np.clip(times - beat_time, 0.0, None)
        downbeats = np.asarray(analysis.downbeats, dtype=np.float64)
        if downbeats.size:
            nearest = np.min(np.abs(beat_time[:, None] - downbeats[None, :]), axis=1)
            strength = np.where(nearest < 0.04, 1.0, BEAT_STRENGTH)
        else:
            strength = np.full(frames, BEAT_STRENGTH)
        pulse = np.where(has_beat, strength * np.exp(-since / BEAT_DECAY_S), 0.0)

    rate = speed * (0.25 + 1.5 * energy + 2.5 * pulse)
    phase = np.cumsum(rate) / fps
    return MusicTrack(
        times=times, energy=energy.astype(np.float32), pulse=pulse.astype(np.float32), phase=phase
    )
