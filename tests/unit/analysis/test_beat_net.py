"""The beat network the analysis reads (kapsule/analysis/beat_net.py): shipped weights,
run with numpy alone, lighting the beats and the bar lines of a song it was never trained on.

The demo-song synthesizer is not the generator the network was trained on (training/beat_data.py
renders MIDI through FluidSynth), so these songs are unseen material for it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from kapsule.analysis import beat_net
from kapsule.analysis.common import ANALYSIS_RATE, HOP
from kapsule.analysis.core import features
from kapsule.demo.song import synthesize_song


def _peak(values: np.ndarray, frames: np.ndarray) -> np.ndarray:
    return np.array([values[max(0, f - 1) : f + 2].max() for f in frames])


@pytest.mark.parametrize(
    ("tempo", "style", "per_bar"), [(96.0, "pop", 4), (150.0, "rock", 4), (84.0, "ballad", 3)]
)
def test_activations_light_the_beats_and_the_bar_lines(tempo: float, style: str, per_bar: int) -> None:
    song = synthesize_song(tempo=tempo, style=style, beats_per_bar=per_bar, seed=3, sample_rate=ANALYSIS_RATE)
    mono = song.samples.mean(axis=1) if song.samples.ndim == 2 else song.samples
    f = features(mono.astype(np.float32), ANALYSIS_RATE)
    beat, downbeat = beat_net.activations(f.mel_db)
    assert beat.shape == downbeat.shape == (f.times.size,)
    assert float(beat.min()) >= 0.0 and float(beat.max()) <= 1.0
    fps = ANALYSIS_RATE / HOP
    beats = np.round(np.asarray(song.beats) * fps).astype(int)
    downbeats = np.round(np.asarray(song.downbeats) * fps).astype(int)
    offbeats = np.round((beats[:-1] + beats[1:]) / 2).astype(int)
    on_beats = float(np.median(_peak(beat, beats)))
    # The beats stand out from what lies between them (a network blind to the pulse scores ~1×).
    assert on_beats > 2.0 * float(np.median(_peak(beat, offbeats)))
    others = np.setdiff1d(beats, downbeats)
    # And the bar lines from the other beats.
    assert float(np.median(_peak(downbeat, downbeats))) > 1.5 * float(np.median(_peak(downbeat, others)))


def test_the_forward_pass_needs_neither_torch_nor_a_compiler() -> None:
    """The product runs the exported weights with numpy: a fresh process computes activations
    without importing torch (a training-only dependency) or numba."""
    code = (
        "import sys, numpy as np; from kapsule.analysis import beat_net; "
        "b, d = beat_net.activations(np.full((96, 500), -40.0)); "
        "print(b.shape[0], 'torch' in sys.modules, 'numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["500", "False", "False"]
