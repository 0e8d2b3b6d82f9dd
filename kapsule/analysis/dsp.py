"""The spectral features of the analysis, in numpy and scipy only.

WHY not librosa: importing ``librosa.util`` compiles its numba kernels (some eagerly, at import),
~30 s on a 2-core machine the first time a fresh install or container analyses a song, against
~0.5 s for the analysis itself. These are the few functions the analysis used, written out with
the same definitions (Slaney mel filters, librosa's chroma filters, centred Hann STFT, onset flux
on dB mel bands), so the numbers match librosa's to float precision and no JIT is involved.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

N_CHROMA = 12


def hann(n: int) -> np.ndarray:
    """The periodic Hann window, as librosa's STFT uses: ``scipy.signal.get_window("hann", n,
    fftbins=True)`` computed the same way, bit for bit (a test checks it), without importing
    ``scipy.signal``, which costs ~1 s of CPU in every process that analyses (notebook kernels included)."""
    fac = np.linspace(-np.pi, np.pi, n + 1)
    return np.asarray((0.5 + 0.5 * np.cos(fac))[:n], dtype=np.float64)


def stft_magnitude(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| of ``y``: frames centred on ``k * hop`` (zero padding), periodic Hann window."""
    padded = np.pad(np.asarray(y, dtype=np.float32), n_fft // 2)
    frames = 1 + (padded.size - n_fft) // hop
    window = hann(n_fft).astype(np.float32)
    out = np.empty((n_fft // 2 + 1, frames), dtype=np.float32)
    chunk = 2048  # frames per FFT batch: bounded memory for a 10-minute song
    view = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    for start in range(0, frames, chunk):
        block = view[start : start + chunk] * window
        out[:, start : start + block.shape[0]] = np.abs(scipy.fft.rfft(block, axis=1)).T
    return out


def stft_complex(x: np.ndarray, n_fft: int, hop: int = 1) -> np.ndarray:
    """Complex STFT of a short signal (an onset envelope): centred frames, periodic Hann window."""
    padded = np.pad(np.asarray(x, dtype=np.float64), n_fft // 2)
    view = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    frames = 1 + (padded.size - n_fft) // hop
    return np.asarray(scipy.fft.rfft(view[:frames] * hann(n_fft), axis=1).T)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_region = hz >= 1000.0
    mel[log_region] = 15.0 + np.log(hz[log_region] / 1000.0) / (np.log(6.4) / 27.0)
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * (200.0 / 3)
    log_region = mel >= 15.0
    hz[log_region] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log_region] - 15.0))
    return hz


def mel_frequencies(n_mels: int, fmax: float, fmin: float = 0.0) -> np.ndarray:
    """Centre frequencies (Hz) of ``n_mels`` bands evenly spaced on the Slaney mel scale."""
    lo, hi = _hz_to_mel(np.array([fmin, fmax]))
    return _mel_to_hz(np.linspace(lo, hi, n_mels))


def mel_filters(sr: int, n_fft: int, n_mels: int, fmax: float) -> np.ndarray:
    """Triangular mel filters (Slaney area normalization), shape (n_mels, n_fft // 2 + 1)."""
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = mel_frequencies(n_mels + 2, fmax)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return np.asarray(weights, dtype=np.float32)


def chroma_filters(sr: int, n_fft: int) -> np.ndarray:
    """librosa's chroma filter bank (tuning 0, centred on octave 5, two octaves wide, C first)."""
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    bins = N_CHROMA * np.log2(frequencies / (440.0 / 16))
    bins = np.concatenate(([bins[0] - 1.5 * N_CHROMA], bins))
    widths = np.concatenate((np.maximum(bins[1:] - bins[:-1], 1.0), [1]))
    distance = np.subtract.outer(bins, np.arange(0, N_CHROMA, dtype="d")).T
    half = np.round(float(N_CHROMA) / 2)
    distance = np.remainder(distance + half + 10 * N_CHROMA, N_CHROMA) - half
    weights = np.exp(-0.5 * (2 * distance / np.tile(widths, (N_CHROMA, 1))) ** 2)
    weights = _normalize(weights, np.sqrt(np.sum(weights**2, axis=0, keepdims=True)))
    weights *= np.tile(np.exp(-0.5 * (((bins / N_CHROMA - 5.0) / 2) ** 2)), (N_CHROMA, 1))
    weights = np.roll(weights, -3, axis=0)
    return np.ascontiguousarray(weights[:, : 1 + n_fft // 2], dtype=np.float32)


def _normalize(values: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """Divide by ``norms``, leaving vectors whose norm is ~0 as they are (librosa's ``normalize``)."""
    tiny = np.finfo(values.dtype if values.dtype.kind == "f" else np.float64).tiny
    return np.asarray(values / np.where(norms < tiny, 1.0, norms))


def chroma(power: np.ndarray, sr: int) -> np.ndarray:
    """Chroma of a power spectrogram, each frame scaled so its largest pitch class is 1."""
    n_fft = 2 * (power.shape[0] - 1)
    raw = chroma_filters(sr, n_fft) @ power
    return _normalize(raw, np.max(np.abs(raw), axis=0, keepdims=True))


def power_to_db(power: np.ndarray, ref: float, amin: float = 1e-10, top_db: float = 80.0) -> np.ndarray:
    """10·log10(power / ref), floored ``top_db`` under the loudest value."""
    db = 10.0 * np.log10(np.maximum(amin, power)) - 10.0 * np.log10(max(amin, ref))
    return np.asarray(np.maximum(db, db.max() - top_db))


def amplitude_to_db(amplitude: np.ndarray) -> np.ndarray:
    """20·log10(amplitude), floored at 1e-5 and 80 dB under the loudest value."""
    return power_to_db(np.square(np.abs(amplitude)), ref=1.0, amin=1e-10)


def rms(magnitude: np.ndarray, n_fft: int) -> np.ndarray:
    """Per-frame RMS from an STFT magnitude (Parseval, as librosa's ``rms(S=...)``)."""
    power = np.square(magnitude.astype(np.float64))
    power[0] *= 0.5
    if n_fft % 2 == 0:
        power[-1] *= 0.5
    return np.asarray(np.sqrt(2 * np.sum(power, axis=0) / n_fft**2))


def mfcc(bands_db: np.ndarray, count: int = 13) -> np.ndarray:
    """The first ``count`` MFCCs of dB mel bands (orthonormal DCT-II)."""
    return np.asarray(scipy.fft.dct(bands_db, type=2, norm="ortho", axis=0)[:count])


def autocorrelate(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Autocorrelation along ``axis`` (FFT, zero padded, so no wrap-around), lags 0 … n-1."""
    n = x.shape[axis]
    n_pad = scipy.fft.next_fast_len(2 * n - 1, real=True)
    spectrum = scipy.fft.rfft(x, n=n_pad, axis=axis)
    full = scipy.fft.irfft(spectrum.real**2 + spectrum.imag**2, n=n_pad, axis=axis)
    return np.asarray(np.take(full, np.arange(n), axis=axis))


def autocorrelation_tempogram(env: np.ndarray, win: int) -> np.ndarray:
    """Windowed autocorrelation of ``env`` around every frame, each column scaled to a peak of 1.

    Shape (win, frames): row k is lag k frames. Frames are centred, the envelope ramped to 0
    beyond its ends (librosa's ``tempogram``).
    """
    n = env.size
    padded = np.pad(env, win // 2, mode="linear_ramp", end_values=(0, 0))
    frames = np.lib.stride_tricks.sliding_window_view(padded, win)[:n].T * hann(win)[:, None]
    ac = autocorrelate(frames, axis=0)
    return _normalize(ac, np.max(np.abs(ac), axis=0, keepdims=True))


def fourier_tempogram(env: np.ndarray, win: int) -> np.ndarray:
    """|STFT| of the onset envelope (hop 1 frame): strength of each pulse frequency over time."""
    return np.asarray(np.abs(stft_complex(env, win, hop=1)))


def fourier_tempo_frequencies(frame_rate: float, win: int) -> np.ndarray:
    """BPM of each row of ``fourier_tempogram``."""
    return np.asarray(np.fft.rfftfreq(win, 1.0 / frame_rate) * 60.0)
