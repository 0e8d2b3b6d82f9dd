"""Small helpers shared by the analysis steps, and the frame grid every step works on."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ANALYSIS_RATE = 22050
HOP = 512  # 23 ms frames at 22050 Hz: fine enough for beats, coarse enough to stay fast
N_FFT = 2048


def around(env: np.ndarray, frames: np.ndarray, before: int = 1, after: int = 2) -> np.ndarray:
    """The largest value of ``env`` near each frame (beats land within a frame or two of the hit)."""
    padded = np.pad(env, (before, after))
    windows = np.lib.stride_tricks.sliding_window_view(padded, before + after + 1)
    return np.asarray(windows[frames].max(axis=1))


def unit(env: np.ndarray, sounding: np.ndarray) -> np.ndarray:
    """``env`` scaled to a mean of 1 over the sounding frames."""
    level = float(env[sounding].mean()) if sounding.any() else float(env.mean())
    return env / level if level > 1e-9 else np.zeros_like(env)


def interval_means(
    data: np.ndarray, starts: np.ndarray, aggregate: Callable[..., np.ndarray] = np.mean
) -> np.ndarray:
    """One column per interval [starts[k], starts[k+1]) (the last runs to the end) of ``data``."""
    ends = np.append(starts[1:], data.shape[1])
    return np.stack(
        [aggregate(data[:, a : max(b, a + 1)], axis=1) for a, b in zip(starts, ends, strict=True)], axis=1
    )


def zscore(values: np.ndarray) -> np.ndarray:
    """Values centred and scaled to unit spread (zeros when they are all equal)."""
    spread = values.std()
    return (values - values.mean()) / spread if spread > 1e-9 else np.zeros_like(values)
