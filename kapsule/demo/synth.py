"""Sound-making primitives for the demo song: wavetable oscillators, envelopes, voices, drums, reverb.

WHY a module of its own: these functions know how to turn *one* note or hit into samples and
nothing about the song (tempo, bars, sections, chords). ``demo_plan`` owns the plan and
``demo_render`` the mix, which calls in here for sound; keeping them apart lets either change
without reading the other.

Every function is deterministic (fixed seeds, no clock) and vectorized. The expensive parts are
cached per process: one band-limited wavetable per (shape, pitch, cutoff, rate), one drum kit per
style, one impulse response per reverb length. Cached arrays are shared, so callers never write
into them (the drum kit is marked read-only).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import signal

TABLE = 2048  # wavetable length (power of two, so wrapping is a bit mask)
Mono = npt.NDArray[np.float32]  # one channel of samples (1-D); every voice and the kit are float32


@cache
def wavetable(shape: str, freq: float, cutoff: float, sr: int) -> tuple[Mono, Mono]:
    """One band-limited cycle with a low-pass baked in (no aliasing, no per-note filter)."""
    k = np.arange(1, TABLE // 2)
    keep = k * freq < min(0.45 * sr, 8 * cutoff)
    amp = np.zeros(len(k))
    if shape == "saw":
        amp = 1.0 / k
    elif shape == "square":
        amp = np.where(k % 2 == 1, 1.0 / k, 0.0)
    elif shape == "soft":  # triangle-ish, for ballad leads
        amp = np.where(k % 2 == 1, 1.0 / k**2, 0.0)
    amp = amp * keep / np.sqrt(1 + (k * freq / cutoff) ** 4)
    spectrum = np.zeros(TABLE // 2 + 1, complex)
    spectrum[1 : TABLE // 2] = -1j * amp * TABLE / 2
    table = np.fft.irfft(spectrum, TABLE).astype(np.float32)
    return table, (np.roll(table, -1) - table).astype(np.float32)


def osc(
    shape: str,
    freq: float,
    n: int,
    sr: int,
    cutoff: float,
    phase: float = 0.0,
    vibrato: npt.NDArray[np.floating[Any]] | None = None,
) -> Mono:
    table, slope = wavetable(shape, round(freq, 2), round(cutoff), sr)
    if vibrato is None:
        cycles = phase + (freq / sr) * np.arange(n)
    else:
        cycles = phase + np.cumsum(freq * (1.0 + vibrato)) / sr
    x = (cycles - np.floor(cycles)) * TABLE
    i = x.astype(np.int32)
    frac = (x - i).astype(np.float32)
    i &= TABLE - 1
    return np.asarray(table[i] + frac * slope[i], dtype=np.float32)  # float32 already: no copy


def adsr(n: int, sr: int, attack: float, decay: float, sustain: float, gate: int, release: float) -> Mono:
    t = np.arange(n, dtype=np.float32) / sr
    env = np.minimum(t / attack, 1.0) if attack > 0 else np.ones(n, np.float32)
    env *= sustain + (1 - sustain) * np.exp(-np.maximum(t - attack, 0) / decay)
    if gate < n:
        env[gate:] *= np.maximum(1 - (t[gate:] - t[gate]) / release, 0.0)
    return env.astype(np.float32)


def bass_note(freq: float, gate: int, sr: int, bright: float, style: str) -> Mono:
    n = gate + int(0.04 * sr)
    body = osc("saw", freq, n, sr, 4 * freq)
    click = osc("saw", freq, n, sr, bright)
    t = np.arange(n, dtype=np.float32) / sr
    tone = body + (click - body) * np.exp(-t / 0.07)  # the brightness dies first: a plucked bass
    attack = 0.02 if style == "ballad" else 0.003
    out = tone * adsr(n, sr, attack, 0.3, 0.6, gate, 0.04)
    return np.tanh(1.5 * out) if style == "rock" else out


def pad_note(
    freq: float, gate: int, sr: int, cutoff: float, attack: float, release: float, rng: np.random.Generator
) -> tuple[Mono, Mono]:
    """Two detuned saws per side: the stereo width comes from different detunes left and right."""
    n = gate + int(release * sr)
    env = adsr(n, sr, attack, 1.0, 0.8, gate, release)
    p = rng.random(4)
    left = osc("saw", freq * 0.9965, n, sr, cutoff, p[0]) + osc("saw", freq * 1.0012, n, sr, cutoff, p[1])
    right = osc("saw", freq * 1.0035, n, sr, cutoff, p[2]) + osc("saw", freq * 0.9988, n, sr, cutoff, p[3])
    return left * env, right * env


def pluck(freq: float, n: int, sr: int, cutoff: float, decay: float) -> Mono:
    n += int(0.05 * sr)
    return osc("saw", freq, n, sr, cutoff) * adsr(n, sr, 0.002, decay, 0.0, n, 0.01)


def power_chord(freq: float, n: int, sr: int, muted: bool) -> Mono:
    cutoff = 1200.0 if muted else 3000.0
    tone = sum(osc("saw", freq * r, n, sr, cutoff) for r in (1.0, 1.4983, 2.0))
    decay = 0.09 if muted else 1.2
    return np.tanh(3.5 * tone) * adsr(n, sr, 0.003, decay, 0.0 if muted else 0.5, n - int(0.04 * sr), 0.04)


def lead_note(freq: float, gate: int, sr: int, style: str) -> Mono:
    release = 0.12
    n = gate + int(release * sr)
    t = np.arange(n, dtype=np.float32) / sr
    vibrato = 0.004 * np.sin(2 * np.pi * 5.5 * t) * np.clip((t - 0.18) / 0.2, 0, 1)
    if style == "ballad":
        tone = osc("soft", freq, n, sr, 3000.0, vibrato=vibrato)
        attack = 0.06
    else:
        shape_a, shape_b = ("saw", "saw") if style in ("rock", "electronic") else ("square", "saw")
        cutoff = 2600.0 if style != "rock" else 3500.0
        tone = 0.6 * osc(shape_a, freq, n, sr, cutoff, vibrato=vibrato)
        tone += 0.4 * osc(shape_b, freq * 1.003, n, sr, cutoff, 0.25, vibrato=vibrato)
        attack = 0.012
        if style == "rock":
            tone = np.tanh(2.5 * tone)
    return tone * adsr(n, sr, attack, 0.4, 0.75, gate, release)


@cache
def drum_kit(style: str, sr: int) -> dict[str, Mono]:
    """Each drum rendered once per style; hits are scaled copies (fixed seed: same every run)."""
    rng = np.random.default_rng(1234)

    def noise(seconds: float) -> Mono:
        return rng.standard_normal(int(seconds * sr)).astype(np.float32)

    def band(x: Mono, low: float | None, high: float | None) -> Mono:
        if low and high:
            sos = signal.butter(2, [low, high], "bandpass", fs=sr, output="sos")
        elif low:
            sos = signal.butter(4, low, "highpass", fs=sr, output="sos")
        elif high:
            sos = signal.butter(2, high, "lowpass", fs=sr, output="sos")
        else:
            raise ValueError("a drum band needs a low or a high edge")
        return signal.sosfilt(sos, x).astype(np.float32)

    def decay(n: int, seconds: float) -> Mono:
        return np.asarray(np.exp(-np.arange(n, dtype=np.float32) / (seconds * sr)), dtype=np.float32)

    n = int(0.5 * sr)
    t = np.arange(n, dtype=np.float32) / sr
    low = {"electronic": 42.0, "rock": 50.0}.get(style, 47.0)
    pitch = low + 120.0 * np.exp(-t / 0.03)
    body = np.sin(2 * np.pi * np.cumsum(pitch) / sr) * decay(n, {"electronic": 0.3}.get(style, 0.18))
    click = band(noise(0.5), 2000.0, None) * decay(n, 0.006)
    kick = np.tanh(1.6 * (body + (0.5 if style == "rock" else 0.3) * click))

    n = int(0.35 * sr)
    t = np.arange(n, dtype=np.float32) / sr
    tone = (np.sin(2 * np.pi * 185 * t) + 0.5 * np.sin(2 * np.pi * 330 * t)) * decay(n, 0.05)
    snare = 0.6 * tone + 1.4 * band(noise(0.35), 1500.0, 9000.0) * decay(n, 0.14 if style == "rock" else 0.11)
    rim = np.sin(2 * np.pi * 820 * t) * decay(n, 0.012) + 0.8 * band(noise(0.35), 2000.0, 8000.0) * decay(
        n, 0.02
    )
    bursts = sum(np.roll(decay(n, 0.004), int(d * sr)) * (t >= d) for d in (0.0, 0.011, 0.022))
    clap = 1.6 * band(noise(0.35), 900.0, 4000.0) * (bursts + 0.5 * decay(n, 0.09) * (t >= 0.022))

    hat = 0.7 * band(noise(0.12), 7000.0, None) * decay(int(0.12 * sr), 0.03)
    open_hat = 0.6 * band(noise(0.6), 6500.0, None) * decay(int(0.6 * sr), 0.22)
    crash = 0.5 * band(noise(2.5), 4000.0, None) * decay(int(2.5 * sr), 0.9)
    kit = {
        "kick": kick,
        "snare": snare,
        "rim": rim,
        "clap": clap,
        "hat": hat,
        "open": open_hat,
        "crash": crash,
    }
    for name, sound in kit.items():
        sound = np.asarray(sound, np.float32)
        sound[: int(0.0005 * sr)] *= np.linspace(0.2, 1.0, int(0.0005 * sr), dtype=np.float32)  # no DC click
        sound.flags.writeable = False
        kit[name] = sound
    return kit


@cache
def impulse_response(sr: int, seconds: float) -> tuple[Mono, Mono]:
    rng = np.random.default_rng(99)
    n = int(seconds * sr)
    env = np.exp(-np.arange(n) / sr * 6.9 / seconds).astype(np.float32)  # -60 dB at the end
    env[: int(0.012 * sr)] = 0.0  # pre-delay
    sos = signal.butter(1, 5000.0, "lowpass", fs=sr, output="sos")
    out = []
    for _ in range(2):  # two decorrelated tails: stereo from a mono send
        ir = signal.sosfilt(sos, rng.standard_normal(n)).astype(np.float32) * env
        out.append(ir / np.sqrt(np.sum(ir**2)))
    return out[0], out[1]


def reverb(send: Mono, sr: int, seconds: float) -> npt.NDArray[np.float32]:
    """The send through two decorrelated tails: float32 of shape (2, len(send)), stereo from mono."""
    left, right = impulse_response(sr, seconds)
    n = len(send)
    return np.stack([signal.fftconvolve(send, ir)[:n] for ir in (left, right)]).astype(np.float32)
