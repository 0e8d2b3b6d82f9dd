"""Song analysis: tempo, beats, meter, downbeats, sections and an energy curve from mono samples.

The pulse is found in four steps:

0. **What is a beat, what is a bar line.** A small network (``beat_net``, trained by
   ``training/train_beat_net.py`` on renders of music with known beats) reads the log-mel
   spectrogram and gives, per frame, how likely a beat and how likely a bar line starts there. It
   replaces the onset strength every later step used to read: onsets light every note, the
   activation only the beats, including the soft attacks of a choir or strings and the dotted
   quarters of a 6/8 played in eighths.
1. **Which tempo** (the metrical level). The activation's autocorrelation is strong at the beat period
   and at every multiple of it (half tempo, a third), the Fourier tempogram at the beat frequency and
   every harmonic (double tempo); their product, times a prior centred on 120 BPM, is strong only
   at the beat. The period is then measured to a fraction of a frame on the autocorrelation peaks at
   its first multiples, and followed through slow tempo changes with a local (~9 s) autocorrelation,
   unless those peaks show a clocked song (a sequencer, a click, a MIDI render: one exact period for
   the whole song), which is tracked on that one period, rigidly, so syncopated bars cannot pull the
   beat off.
2. **Which phase.** A dynamic-programming tracker (Ellis 2007, with that fractional, local period)
   follows the chosen tempo on the activation; of the grid and the half-shifted grid, the one the
   activation supports more is kept. The beat times are then moved onto a local straight line
   through their neighbours, which keeps slow tempo changes and drops the jitter.
3. **Which bar.** 2, 3 or 4 beats per bar, and the first bar line: the grouping and phase whose
   beats carry the most bar-line activation against the others (``meter``).

Sections come from novelty on a bar-level self-similarity matrix, labelled from repetition and energy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kapsule.analysis import beat_net, dsp, readings
from kapsule.analysis.beats import refine, rigid, steady, track_beats
from kapsule.analysis.common import HOP, N_FFT
from kapsule.analysis.meter import RIVAL_METER, bar_phase, meter_plausibility
from kapsule.analysis.pinning import pin_bar_line
from kapsule.analysis.sections import energy_curve, find_sections
from kapsule.analysis.tempo import octave_plausibility, pulse_envelope
from kapsule.core.errors import SongTooShort
from kapsule.job.artifacts import Analysis, AnalysisHints

N_MELS = 96
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
    chroma: np.ndarray  # (12, frames)
    mfcc: np.ndarray  # (13, frames)
    mel_db: np.ndarray  # (N_MELS, frames), dB under the song's loudest band-frame


def features(y: np.ndarray, sr: int) -> Features:
    """Spectral features of mono samples (see ``dsp``: numpy and scipy only, nothing to compile)."""
    y = np.ascontiguousarray(np.asarray(y, dtype=np.float32).reshape(-1))
    duration = y.size / sr
    if y.size < N_FFT:
        raise SongTooShort(f"The song is {duration:.2f} s long; there is nothing to analyse.")
    spectrum = dsp.stft_magnitude(y, N_FFT, HOP)
    power = spectrum**2
    times = np.arange(spectrum.shape[1]) * HOP / sr
    rms_db = dsp.amplitude_to_db(dsp.rms(spectrum, N_FFT))
    sounding = rms_db > max(float(rms_db.max()) - SILENCE_BELOW_PEAK_DB, SILENCE_FLOOR_DB)
    mel = dsp.mel_filters(sr, N_FFT, N_MELS, sr / 2) @ power
    mel_db = dsp.power_to_db(mel, ref=float(mel.max()))
    return Features(
        sr=sr,
        duration=duration,
        times=times,
        rms_db=rms_db,
        sounding=sounding,
        chroma=dsp.chroma(power, sr),
        mfcc=dsp.mfcc(mel_db),
        mel_db=mel_db,
    )


def analyze_samples(y: np.ndarray, sr: int, hints: AnalysisHints | None = None) -> Analysis:
    """Tempo, beats, downbeats, sections and energy of mono samples ``y`` at rate ``sr``.

    ``hints`` (the musician's BPM, beats per bar, a bar line's time) are kept as given; the
    analysis then only places the beats on the audio (local timing) and fills in what was not
    given. The runner-up readings of what was not given are in ``alternatives``.
    """
    f = features(y, sr)
    hints = hints if hints is not None and hints.given() else None
    bpm_hint = hints.bpm if hints else None
    meter_hint = hints.beats_per_bar if hints else None
    downbeat_hint = hints.downbeat if hints else None
    beat_at = round(downbeat_hint * sr / HOP) if downbeat_hint is not None else None
    beat_act, down_act = beat_net.activations(f.mel_db)
    beat_frames, tempo, clocked = track_beats(beat_act, f.sounding, sr, bpm_hint, beat_at, down_act)
    if bpm_hint is not None:
        tempo = bpm_hint if abs(tempo / bpm_hint - 1.0) > 0.04 else tempo
    downbeat_index = (
        int(np.argmin(np.abs(beat_frames - beat_at))) if beat_at is not None and beat_frames.size else None
    )
    beats_per_bar, phase = bar_phase(beat_frames, down_act, meter_hint, downbeat_index)
    placed = refine(beat_frames, beat_act, sr)
    beat_times = np.clip(rigid(placed) if clocked else steady(placed), 0.0, f.duration)
    if downbeat_hint is not None:
        beat_times, hinted = pin_bar_line(beat_times, downbeat_hint, f.duration)
        beat_frames = np.clip(np.round(beat_times * sr / HOP).astype(int), 0, f.times.size - 1)
        phase = hinted % beats_per_bar
    downbeat_times = beat_times[phase::beats_per_bar] if beat_times.size else beat_times
    downbeat_frames = beat_frames[phase::beats_per_bar] if beat_frames.size else beat_frames
    music_start = float(f.times[np.argmax(f.sounding)]) if f.sounding.any() else 0.0
    sections = find_sections(downbeat_frames, f.chroma, f.mfcc, f.rms_db, f.times, f.duration, music_start)
    analysis = Analysis(
        duration=round(f.duration, 4),
        tempo=round(tempo, 3),
        beats=[round(float(t), 4) for t in beat_times],
        downbeats=[round(float(t), 4) for t in downbeat_times],
        sections=sections,
        energy=energy_curve(y, sr),
        beats_per_bar=beats_per_bar,
        sample_rate=sr,
        hints=hints,
    )
    return _with_alternatives(analysis, f, beat_act, down_act, beat_frames, phase, hints)


def _with_alternatives(
    analysis: Analysis,
    f: Features,
    beat_act: np.ndarray,
    down_act: np.ndarray,
    beat_frames: np.ndarray,
    phase: int,
    hints: AnalysisHints | None,
) -> Analysis:
    """The analysis with its runner-up readings and confidence, from the network's activations;
    what a hint fixed has no runner-up."""
    if len(analysis.beats) < 8 or analysis.tempo <= 0:
        return analysis
    alternatives = []
    if hints is None or hints.bpm is None:
        env = pulse_envelope(beat_act, f.sounding)
        half = readings.half_grid(analysis, beat_frames, beat_act, down_act)
        for kind, factor in (("half_tempo", 0.5), ("double_tempo", 2.0)):
            plausibility = octave_plausibility(env, f.sr, analysis.tempo, factor)
            alternatives.append(readings.reading(analysis, kind, plausibility, half=half))
    meter = analysis.beats_per_bar
    rival = RIVAL_METER.get(meter, 4)
    other_meter, shifted, rival_phase = meter_plausibility(beat_frames, down_act, meter, phase, rival)
    if (hints is None or hints.beats_per_bar is None) and rival != meter:
        alternatives.append(readings.reading(analysis, "other_meter", other_meter, rival, rival_phase))
    if hints is None or hints.downbeat is None:
        alternatives.append(readings.reading(analysis, "shifted_downbeat", shifted))
    confidence = 1.0 / (1.0 + sum(r.plausibility for r in alternatives))
    close = readings.close_call(alternatives)
    return analysis.model_copy(
        update={
            "alternatives": alternatives,
            "confidence": round(confidence, 3),
            "close_call": close.kind if close is not None else None,
        }
    )
