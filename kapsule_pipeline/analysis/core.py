"""Song analysis: tempo, beats, meter, downbeats, sections and an energy curve from mono samples.

The pulse is found in three steps, because each common tracker failure is a different question:

1. **Which tempo** (the metrical level). The onset autocorrelation is strong at the beat period and
   at every multiple of it (half tempo, a third), the Fourier tempogram at the beat frequency and
   every harmonic (double tempo); their product, times a prior centred on 120 BPM, is strong only
   at the beat, so a 170 BPM rock song is not read as 85 nor a 70 BPM ballad as 140. The period
   is then measured to a fraction of a frame on the autocorrelation peaks at its first multiples,
   and followed through slow tempo changes with a local (~9 s) autocorrelation, unless those peaks
   show a clocked song (a sequencer, a click, a MIDI render: one exact period for the whole song),
   which is tracked on that one period, rigidly, so syncopated bars cannot pull the beat off.
2. **Which phase.** A dynamic-programming tracker (Ellis 2007, with that fractional, local period)
   follows the chosen tempo; it can lock half a beat off (on hi-hats, on off-beat chords). The
   grid and the half-shifted grid are scored on low-band (kick, bass) and broadband onsets, and
   the one that explains them better is kept.
   The beat times are then moved onto a local straight line through their neighbours, which keeps
   slow tempo changes and drops the jitter of soft attacks (a choir, bowed strings).
3. **Which bar.** Meter (3 or 4; 2/4 reads as pairs of bars) and the downbeat come from beat-level
   accents: low-band onsets, broadband onsets and harmonic change, both from one beat to the next
   and between the two beats before and the two after (chords that last start on the one).

Sections come from novelty on a bar-level self-similarity matrix, labelled from repetition and energy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kapsule_pipeline.analysis import dsp
from kapsule_pipeline.analysis.beats import (
    CLOCKED_HALF_BEATS,
    STEADY_HALF_BEATS,
    refine,
    steady,
    track_beats,
)
from kapsule_pipeline.analysis.common import HOP, N_FFT
from kapsule_pipeline.analysis.meter import bar_phase
from kapsule_pipeline.analysis.sections import energy_curve, find_sections
from kapsule_pipeline.errors import AudioError
from kapsule_pipeline.models import Analysis

N_MELS = 96
LOW_HZ = 150.0  # kick and bass live below this; downbeats tend to carry them
SILENCE_BELOW_PEAK_DB = 50.0  # frames this far under the song's loudest are "silence" (no beats there)
SILENCE_FLOOR_DB = -70.0  # and so is anything below this RMS level, however quiet the song


@dataclass(frozen=True)
class Features:
    """Everything the analysis steps read, computed once from the samples."""

    sr: int
    duration: float
    times: np.ndarray  # seconds of each frame
    rms_db: np.ndarray
    sounding: np.ndarray  # bool per frame
    onset: np.ndarray  # broadband onset strength
    low_onset: np.ndarray  # onset strength below LOW_HZ
    chroma: np.ndarray  # (12, frames)
    mfcc: np.ndarray  # (13, frames)


def features(y: np.ndarray, sr: int) -> Features:
    """Spectral features of mono samples (see ``dsp``: numpy and scipy only, nothing to compile)."""
    y = np.ascontiguousarray(np.asarray(y, dtype=np.float32).reshape(-1))
    duration = y.size / sr
    if y.size < N_FFT:
        raise AudioError(f"The song is {duration:.2f} s long; there is nothing to analyse.", code="too_short")
    spectrum = dsp.stft_magnitude(y, N_FFT, HOP)
    power = spectrum**2
    times = np.arange(spectrum.shape[1]) * HOP / sr
    rms_db = dsp.amplitude_to_db(dsp.rms(spectrum, N_FFT))
    sounding = rms_db > max(float(rms_db.max()) - SILENCE_BELOW_PEAK_DB, SILENCE_FLOOR_DB)
    mel = dsp.mel_filters(sr, N_FFT, N_MELS, sr / 2) @ power
    mel_db = dsp.power_to_db(mel, ref=float(mel.max()))
    low_bands = dsp.mel_frequencies(N_MELS, sr / 2) < LOW_HZ
    return Features(
        sr=sr,
        duration=duration,
        times=times,
        rms_db=rms_db,
        sounding=sounding,
        onset=dsp.onset_strength(mel_db),
        low_onset=dsp.onset_strength(mel_db[low_bands]),
        chroma=dsp.chroma(power, sr),
        mfcc=dsp.mfcc(mel_db),
    )


def analyze_samples(y: np.ndarray, sr: int) -> Analysis:
    """Tempo, beats, downbeats, sections and energy of mono samples ``y`` at rate ``sr``."""
    f = features(y, sr)
    beat_frames, tempo, clocked = track_beats(f.onset, f.low_onset, f.sounding, sr)
    beats_per_bar, phase = bar_phase(beat_frames, f.onset, f.low_onset, f.chroma)
    downbeat_frames = beat_frames[phase::beats_per_bar] if beat_frames.size else beat_frames
    music_start = float(f.times[np.argmax(f.sounding)]) if f.sounding.any() else 0.0
    sections = find_sections(downbeat_frames, f.chroma, f.mfcc, f.rms_db, f.times, f.duration, music_start)

    half = CLOCKED_HALF_BEATS if clocked else STEADY_HALF_BEATS
    beat_times = np.clip(steady(refine(beat_frames, f.onset, sr), half), 0.0, f.duration)
    downbeat_times = beat_times[phase::beats_per_bar] if beat_times.size else beat_times
    return Analysis(
        duration=round(f.duration, 4),
        tempo=round(tempo, 3),
        beats=[round(float(t), 4) for t in beat_times],
        downbeats=[round(float(t), 4) for t in downbeat_times],
        sections=sections,
        energy=energy_curve(y, sr),
        beats_per_bar=beats_per_bar,
        sample_rate=sr,
    )
