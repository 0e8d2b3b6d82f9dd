"""The local renderer's drawing: eight procedural motifs on a precomputed grid, coloured through a
palette table, brightened and zoomed by the music.

Frames are drawn small (e.g. 384x216) with vectorised float32 numpy; FFmpeg upscales them in the
same encode (``local.LocalRenderer``), and smooth procedural images lose nothing visible there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from kapsule.generation.local_look import LUT_SIZE, Look, MusicTrack, palette_lut
from kapsule.job.artifacts import frame_size

TAU = 2.0 * math.pi

# Short side of the drawn frame; FFmpeg upscales to the delivered size (720p: x3.33, 1080p: x4). The
# local renderer makes no 4k: a job asking for it with the local model is refused at submission.
RENDER_SHORT_SIDE = {"720p": 216, "1080p": 270}

ZOOM_PUNCH = 0.09  # how much closer the picture jumps on a downbeat
BEAT_GAIN = 0.7  # a downbeat multiplies the brightness by 1 + this: colours flare, blacks stay black
FLASH = 0.12  # plus a little additive white on a downbeat (0..1 of full scale): a camera flash

# ---------------------------------------------------------------------------------------- motifs


@dataclass(frozen=True)
class Grid:
    """Coordinates of every drawn pixel, computed once per shot: the short side spans [-1, 1]."""

    width: int
    height: int
    x: np.ndarray
    y: np.ndarray
    r: np.ndarray
    a: np.ndarray
    u: np.ndarray  # 0..1 across the width (for bars)
    vignette: np.ndarray
    y_extent: float  # largest |y|: 1 in landscape, 16/9 in portrait (bars, aurora fill the height)

    @classmethod
    def make(cls, width: int, height: int) -> Grid:
        short = min(width, height)
        xs = (np.arange(width, dtype=np.float32) + 0.5 - width / 2) / (short / 2)
        ys = (height / 2 - np.arange(height, dtype=np.float32) - 0.5) / (short / 2)
        x, y = np.meshgrid(xs, ys)
        r = np.sqrt(x * x + y * y)
        vignette = 1.0 - 0.42 * (r / r.max()) ** 2
        u = np.broadcast_to((np.arange(width, dtype=np.float32) + 0.5) / width, (height, width))
        vignette = vignette.astype(np.float32)
        return cls(
            width, height, x, y, r, np.arctan2(y, x), np.ascontiguousarray(u), vignette, height / short
        )


@dataclass
class Frame:
    """What a motif knows about the current frame."""

    phase: float
    zoom: float  # < 1 on a beat: coordinates shrink, the picture jumps closer
    energy: float
    pulse: float


# A motif returns (hue, value, sparkle): hue indexes the palette, value scales it (0..1), and the
# optional sparkle is added as near-white light (stars).
MotifOut = tuple[np.ndarray, np.ndarray, np.ndarray | None]
State = dict[str, Any]  # a motif's own per-shot memory (star positions, bar layout…)
Motif = Callable[[Grid, Frame, Look, State], MotifOut]


def plasma(g: Grid, f: Frame, look: Look, state: State) -> MotifOut:
    """Flowing interference of sine waves: the classic demo-scene plasma."""
    k, ph = look.params["k"] * 1.6, f.phase
    x, y = g.x * (f.zoom * k), g.y * (f.zoom * k)
    cx, cy = math.sin(ph * 0.31) * 1.3, math.cos(ph * 0.37) * 0.8
    field_ = (
        np.sin(x * 1.7 + ph)
        + np.sin(y * 2.3 - ph * 0.8)
        + np.sin((x + y) * 1.3 + ph * 0.6)
        + np.sin(np.sqrt((x - cx) ** 2 + (y - cy) ** 2) * 3.0 - ph * 1.4)
    )
    hue = field_ * 0.14 + ph * 0.04
    value = 0.62 + 0.38 * np.sin(field_ * 1.6 + ph * 0.5)
    return hue, value, None


def rings(g: Grid, f: Frame, look: Look, state: State) -> MotifOut:
    """Concentric neon rings travelling outwards, wobbling with a few lobes."""
    ph, k = f.phase, look.params["k"] * 3.2
    r = g.r * f.zoom
    wobble = 0.07 * np.sin(g.a * look.params["lobes"] + ph * look.params["dir"])
    band = 0.5 + 0.5 * np.cos(TAU * ((r + wobble) * k - ph * 0.8))
    band = band * band * band
    core = np.exp(-r * 2.5) * (0.4 + 0.8 * f.pulse)
    hue = r * 0.35 - ph * 0.05
    return hue, 0.12 + 0.88 * band + core, None


def kaleido(g: Grid, f: Frame, look: Look, state: State) -> MotifOut:
    """Rotating polygons: n-fold symmetric stripes that spin and stream outwards."""
    ph, n = f.phase, look.params["sides"]
    sector = TAU / n
    a = np.mod(g.a + ph * 0.22 * look.params["dir"], sector) - sector / 2
    d = g.r * f.zoom * np.cos(a)
    stripes = 0.5 + 0.5 * np.cos(TAU * (d * 2.4 * look.params["k"] - ph * 0.7))
    petals = 0.5 + 0.5 * np.cos(a * n * 2.0 + d * 6.0 - ph)
    hue = d * 0.45 + petals * 0.15 + ph * 0.04
    return hue, 0.08 + 0.92 * stripes * stripes * (0.55 + 0.45 * petals), None


def starfield(g: Grid, f: Frame, look: Look, state: State) -> MotifOut:
    """Flying through stars over a slow nebula; the flight speed is the music's energy."""
    if "stars" not in state:
        rng = np.random.default_rng(look.seed)
        count = 1400
        state["stars"] = (
            rng.uniform(-1.8, 1.8, count).astype(np.float32),
            rng.uniform(-1.8, 1.8, count).astype(np.float32),
            rng.uniform(0.0, 1.0, count).astype(np.float32),
        )
        state["last_phase"] = f.phase
    sx, sy, sz = state["stars"]
    step = min(max(f.phase - state["last_phase"], 0.0), 0.5) * 0.18  # how far stars fly this frame
    state["last_phase"] = f.phase
    short = min(g.width, g.height) / 2
    size = g.width * g.height
    dots = np.zeros(size, dtype=np.float64)
    for k, fade in ((0.0, 1.0), (0.5, 0.6), (1.0, 0.35)):  # a short trail: streaks when the music runs
        z = np.mod(sz - f.phase * 0.18 + step * k, 1.0) * 0.97 + 0.03
        px = (sx / (z * f.zoom) * short + g.width / 2).astype(np.int32)
        py = (g.height / 2 - sy / (z * f.zoom) * short).astype(np.int32)
        inside = (px >= 1) & (px < g.width - 1) & (py >= 1) & (py < g.height - 1)
        weight = ((1.0 - z) ** 2)[inside] * (2.2 * fade)
        dots += np.bincount(py[inside] * g.width + px[inside], weights=weight, minlength=size)
    image = dots.astype(np.float32).reshape(g.height, g.width)
    glow = image.copy()
    glow[1:, :] += image[:-1, :] * 0.35
    glow[:-1, :] += image[1:, :] * 0.35
    glow[:, 1:] += image[:, :-1] * 0.35
    glow[:, :-1] += image[:, 1:] * 0.35
    ph = f.phase * 0.12
    neb = np.sin(g.x * 1.1 + ph) * np.sin(g.y * 1.7 - ph * 0.7) + 0.5 * np.sin((g.x - g.y) * 2.3 + ph * 1.3)
    hue = 0.35 + neb * 0.2 + f.phase * 0.01
    value = 0.12 + 0.45 * np.clip(neb + 0.5, 0.0, 1.5) ** 2 + np.exp(-g.r * 2.0) * 0.25
    return hue, value, glow


def tunnel(g: Grid, f: Frame, look: Look, state: State) -> MotifOut:
    """Racing down a twisting tiled tunnel; the far end glows."""
    ph = f.phase
    r = g.r * f.zoom + 1e-3
    depth = 0.45 / r + ph * 0.9
    turn = g.a * (look.params["segments"] / TAU) + ph * 0.12 * look.params["dir"] + depth * 0.15
    tiles = np.sin(TAU * depth) * np.sin(TAU * turn)
    fog = np.clip(r * 1.8, 0.0, 1.0)
    hue = 0.35 + depth * 0.05 + ph * 0.02
    value = (0.4 + 0.8 * tiles * tiles) * fog + np.exp(-r * 6.0) * (0.6 + f.pulse)
    return hue, value, None


def bars(g: Grid, f: Frame, look: Look, state: State) -> MotifOut:
    """A mirrored equaliser whose bars leap with the energy and the beats."""
    n = int(look.params["bars"])
    if "bar_of_column" not in state:
        rng = np.random.default_rng(look.seed)
        cols = g.u[0] * n
        state["bar_of_column"] = np.minimum(cols.astype(np.int32), n - 1)
        state["gap"] = np.clip((0.5 - np.abs(np.mod(cols, 1.0) - 0.5)) * 8.0, 0.0, 1.0).astype(np.float32)
        state["omega"] = rng.uniform(1.5, 4.0, n)
        state["offset"] = rng.uniform(0.0, TAU, n)
        state["shape"] = 0.55 + 0.45 * np.cos((np.arange(n) / max(n - 1, 1) - 0.5) * math.pi)
    wiggle = np.abs(np.sin(f.phase * state["omega"] + state["offset"]))
    height = state["shape"] * (0.15 + 0.6 * f.energy * (0.3 + 0.7 * wiggle) + 0.3 * f.pulse)
    top = (np.minimum(height, 0.95) / f.zoom).astype(np.float32)[state["bar_of_column"]]
    ay = np.abs(g.y) / g.y_extent
    inside = np.clip((top[None, :] - ay) * 14.0, 0.0, 1.0) * state["gap"][None, :]
    hue = state["bar_of_column"][None, :] * (0.5 / n) + ay * 0.35 + f.phase * 0.03
    glow = np.exp(-ay * 2.0) * 0.18
    return hue, 0.06 + glow + inside * 0.94, None


def aurora(g: Grid, f: Frame, look: Look, state: State) -> MotifOut:
    """Curtains of light rippling across a night sky: a sharp lower hem, rays fading upwards."""
    ph, k = f.phase, look.params["k"]
    x, y = g.x * f.zoom, g.y * (f.zoom / g.y_extent)
    value = 0.05 + 0.08 * np.clip(1.0 - y, 0.0, 2.0)  # the sky, lighter near the horizon
    hue = 0.1 + 0.25 * np.clip(y, -1.0, 1.0) + ph * 0.02
    for lift, gain, drift in ((-0.25, 1.0, 1.0), (0.3, 0.4, -0.7)):
        hem = lift + 0.3 * np.sin(x * 1.2 * k + ph * 0.5 * drift) + 0.12 * np.sin(x * 3.3 * k - ph * 0.9)
        d = y - hem
        curtain = np.exp(-((np.minimum(d, 0.0) * 12.0) ** 2) - np.maximum(d, 0.0) * 2.4)
        rays = 0.5 + 0.5 * np.sin(x * 17.0 * k + 2.5 * np.sin(x * 1.7 + ph * 0.4) + ph * 0.8 * drift)
        value = value + gain * curtain * (0.45 + 0.55 * rays * rays)
        hue = hue + 0.35 * curtain * np.clip(d, 0.0, 1.0)
    return hue, value, None


def blobs(g: Grid, f: Frame, look: Look, state: State) -> MotifOut:
    """Lava-lamp metaballs drifting and merging, each with its own colour."""
    if "orbits" not in state:
        rng = np.random.default_rng(look.seed)
        state["orbits"] = rng.uniform(0.25, 0.65, (6, 2)), rng.uniform(0.0, TAU, (6, 2))
    speeds, offsets = state["orbits"]
    ph = f.phase * 0.6
    aspect = g.width / g.height
    total = np.zeros_like(g.x)
    tint = np.zeros_like(g.x)
    x, y = g.x * f.zoom, g.y * f.zoom
    for i in range(6):
        bx = math.sin(ph * speeds[i, 0] + offsets[i, 0]) * 0.8 * max(aspect, 1.0)
        by = math.cos(ph * speeds[i, 1] + offsets[i, 1]) * 0.75 / min(aspect, 1.0)
        part = (0.05 + 0.012 * i) / ((x - bx) ** 2 + (y - by) ** 2 + 0.01)
        total += part
        tint += part * (i * 0.17)
    body = np.clip((total - 0.9) * 4.0, 0.0, 1.0)
    shade = 1.0 - 0.3 * np.clip((total - 1.0) * 0.15, 0.0, 1.0)  # lighter rims, deeper cores
    halo = np.clip(total, 0.0, 1.0) ** 3 * 0.4
    hue = tint / (total + 1e-6) + 0.25 + ph * 0.03
    return hue, 0.05 + body * 0.95 * shade + (1.0 - body) * halo, None


MOTIFS: dict[str, Motif] = {
    "plasma": plasma,
    "rings": rings,
    "kaleido": kaleido,
    "starfield": starfield,
    "tunnel": tunnel,
    "bars": bars,
    "aurora": aurora,
    "blobs": blobs,
}


# ------------------------------------------------------------------------------------------ frames


def render_size(aspect_ratio: str, resolution: str) -> tuple[int, int]:
    """The small size frames are drawn at (same aspect as the delivered frame)."""
    width, height = frame_size(aspect_ratio, resolution)
    short = RENDER_SHORT_SIDE[resolution]
    if width >= height:
        return round(short * width / height / 2) * 2, short
    return short, round(short * height / width / 2) * 2


def render_frames(look: Look, track: MusicTrack, width: int, height: int) -> Iterator[np.ndarray]:
    """Yield H×W×3 uint8 frames, one per entry of ``track``."""
    grid = Grid.make(width, height)
    lut = palette_lut(look.palette, look.hue_shift)
    white = np.array([255.0, 248.0, 235.0], dtype=np.float32)
    motif = MOTIFS[look.motif]
    state: State = {}
    rgb = np.empty((height, width, 3), dtype=np.float32)
    for i in range(len(track.times)):
        energy, pulse = float(track.energy[i]), float(track.pulse[i])
        frame = Frame(
            phase=float(track.phase[i]) + look.params["phase0"],
            zoom=1.0 - ZOOM_PUNCH * pulse,
            energy=energy,
            pulse=pulse,
        )
        hue, value, sparkle = motif(grid, frame, look, state)
        index = (hue * LUT_SIZE).astype(np.int32)
        index &= LUT_SIZE - 1
        brightness = (0.38 + 0.62 * energy) * (1.0 + BEAT_GAIN * pulse)
        np.take(lut, index, axis=0, out=rgb)
        rgb *= (value * grid.vignette * brightness)[:, :, None]
        if sparkle is not None:
            rgb += sparkle[:, :, None] * white
        flash = FLASH * pulse * (0.6 + 0.4 * energy)
        if flash > 0.004:
            rgb += flash * white
        np.clip(rgb, 0.0, 255.0, out=rgb)
        yield rgb.astype(np.uint8)
