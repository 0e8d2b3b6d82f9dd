"""How the analysis benchmark scores one song and prints a table (``benchmarks/analysis.py``):
``mir_eval``'s beat, downbeat and section measures for our analysis and librosa's default tracker."""

from __future__ import annotations

import time
from typing import Any

import librosa
import numpy as np

from benchmarks.analysis_sets import Item
from kapsule.analysis import analyze_samples
from kapsule.song.probe import load_audio

SR = 22050  # what analyze_song decodes to
BEAT_WINDOW = 0.07  # mir_eval's default F-measure window (s)
SECTION_WINDOW = 0.5


def trimmed(times: np.ndarray) -> np.ndarray:
    import mir_eval

    return mir_eval.beat.trim_beats(np.asarray(times, dtype=float))


def beat_scores(ref: np.ndarray, est: np.ndarray) -> tuple[float, float, float]:
    """F-measure, CMLt and AMLt, as mir_eval computes them on beats after 5 s."""
    import mir_eval

    ref, est = trimmed(ref), trimmed(est)
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
        trimmed(item.downbeats), trimmed(np.asarray(ours.downbeats)), f_measure_threshold=BEAT_WINDOW
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


def md_row(cells: list[str]) -> str:
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
        print(md_row(head + ours).rstrip(" |") + " || " + md_row(lib)[2:])
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
    print(md_row(head + ours).rstrip(" |") + " || " + md_row(lib)[2:])
    return m
