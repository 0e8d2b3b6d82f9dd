"""The learned beat and downbeat activations: a small temporal convolutional network run with numpy.

WHY a learned activation: onset strength peaks on every note, so what is a beat (and which beat
starts the bar) has to be inferred from rules, and the rules failed on music without drums (soft
choir and string attacks), on compound meters read at the eighth note and on backbeat kicks taken for
bar lines. A network that has heard thousands of bars with their true beats answers those questions
from the spectrogram directly; the tempo, the tracker and the meter steps then read its activations
instead of the onset envelope.

The network (Böck & Davies' TCN design, 2019, much smaller): the log-mel spectrogram and its rise per
frame, one linear layer, residual blocks of dilated convolutions (dilations 1 to 512 frames: a
receptive field of ±24 s), and two sigmoid outputs per frame — beat and downbeat. ~70 k weights,
trained by ``training/train_beat_net.py`` on renders of randomly drawn pieces (none of them in the
benchmark corpus), shipped as ``beat_net.npz`` in this package (our own data and code: no licence
beyond the project's). The forward pass is a few matrix products per block: ~50 ms for a minute of
audio on one core, with nothing to compile.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).with_name("beat_net.npz")
DB_RANGE = 80.0  # mel_db runs from -80 (floor) to 0 (the song's loudest band-frame)


def input_frames(mel_db: np.ndarray) -> np.ndarray:
    """(frames, 2 × bands) network input: the spectrogram scaled to [0, 1] and its rise per frame.

    ``mel_db`` is ``(bands, frames)`` in dB relative to the song's maximum (as ``core.features``
    computes it), so the input does not depend on the song's loudness.
    """
    level = np.clip(mel_db.T / DB_RANGE + 1.0, 0.0, 1.0).astype(np.float32)
    rise = np.maximum(np.diff(level, axis=0, prepend=level[:1]), 0.0)
    return np.concatenate([level, rise], axis=1)


@cache
def _weights() -> dict[str, np.ndarray]:
    with np.load(WEIGHTS) as data:
        return {name: data[name].astype(np.float32) for name in data.files}


def _elu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


def _dilated(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, dilation: int) -> np.ndarray:
    """A same-length convolution over frames: ``kernel`` is (taps, in, out), taps centred."""
    taps = kernel.shape[0]
    reach = (taps // 2) * dilation
    padded = np.pad(x, ((reach, reach), (0, 0)))
    out = np.broadcast_to(bias, (x.shape[0], bias.size)).copy()
    for k in range(taps):
        start = k * dilation
        out += padded[start : start + x.shape[0]] @ kernel[k]
    return out


def activations(mel_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Beat and downbeat probability per frame (each ``(frames,)``, in [0, 1])."""
    w = _weights()
    h = _elu(input_frames(mel_db) @ w["in.w"] + w["in.b"])
    block = 0
    while f"b{block}.conv.w" in w:
        dilation = int(w[f"b{block}.dilation"])
        inner = _elu(_dilated(h, w[f"b{block}.conv.w"], w[f"b{block}.conv.b"], dilation))
        h = h + inner @ w[f"b{block}.mix.w"] + w[f"b{block}.mix.b"]
        block += 1
    logits = h @ w["out.w"] + w["out.b"]
    probs = 1.0 / (1.0 + np.exp(-np.clip(logits, -30.0, 30.0)))
    return probs[:, 0], probs[:, 1]
