"""The analysis benchmark on real recordings (``benchmarks/recordings.py``): our analysis, librosa's
default tracker and madmom's downbeat tracker per piece, each on its own line with its source and
licence; means per group (the judge's 8, evaluation only) and part (our own tuning / test).

Scored as the issue's judge scores: beats only within the annotated span (±0.5 s, the excerpts are
annotated in part), no 5-s trim (some excerpts are 12 s long); beat F-measure at ±70 ms, CMLt,
AMLt, downbeat F-measure where the annotation has bar positions, and whether the tempo octave is
right (the median beat interval within 4 % of the annotation's).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks.analysis_corpus import octave_right, reference_trackers
from benchmarks.analysis_scores import BEAT_WINDOW, SR, md_row
from benchmarks.recordings import RECORDINGS, Recording
from kapsule.analysis import analyze_samples
from kapsule.song.probe import load_audio

REFERENCE_KEY = "real-1"  # bump to recompute the cached reference trackers


def _in_span(est: np.ndarray, ref: np.ndarray) -> np.ndarray:
    est = np.asarray(est, dtype=float)
    return est[(est >= ref[0] - 0.5) & (est <= ref[-1] + 0.5)] if ref.size else est


def _scores(ref: np.ndarray, ref_bars: np.ndarray | None, beats: Any, bars: Any | None) -> dict[str, float]:
    import mir_eval

    est = _in_span(np.asarray(beats, dtype=float), ref)
    out = {"f": float(mir_eval.beat.f_measure(ref, est, BEAT_WINDOW))}
    _, cmlt, _, amlt = mir_eval.beat.continuity(ref, est) if est.size > 1 else (0, 0.0, 0, 0.0)
    out["cmlt"], out["amlt"] = float(cmlt), float(amlt)
    out["oct"] = float(octave_right(ref, est))
    if ref_bars is not None and ref_bars.size and bars is not None:
        out["db"] = float(
            mir_eval.beat.f_measure(ref_bars, _in_span(np.asarray(bars, float), ref), BEAT_WINDOW)
        )
    return out


def recording_row(rec: Recording) -> dict[str, Any]:
    """Every score of one real piece (``present`` False when its files are not in the cache)."""
    row: dict[str, Any] = {"name": rec.name, "group": rec.group, "part": rec.part, "rec": rec}
    if not rec.present():
        row["present"] = False
        return row
    row["present"] = True
    ref, ref_bars = rec.truth()
    y = load_audio(rec.audio.local(), SR)
    start = time.perf_counter()
    ours = analyze_samples(y, SR)
    row["o_s"], row["min"] = time.perf_counter() - start, y.size / SR / 60
    row["ours"] = _scores(ref, ref_bars, ours.beats, ours.downbeats)
    row["ours"]["bpm"], row["ours"]["bpb"] = ours.tempo, ours.beats_per_bar
    row["true_bpm"] = 60.0 / float(np.median(np.diff(ref)))
    refs = reference_trackers(rec.audio.local(), REFERENCE_KEY)
    row["librosa"] = _scores(ref, None, refs["librosa"]["beats"], None)
    if "madmom" in refs:
        mm = refs["madmom"]
        row["madmom"] = _scores(ref, ref_bars, mm["beats"], mm["downbeats"])
    return row


def _mean(rows: list[dict[str, Any]], who: str, key: str) -> str:
    values = [r[who][key] for r in rows if who in r and key in r[who]]
    if not values:
        return "–"
    if key == "oct":
        return f"{int(sum(values))} of {len(values)}"
    return f"{np.mean(values):.3f}"


HEADER = (
    "| {label} | n | ours beatF | CMLt | downbeatF | octave right || librosa beatF | octave right "
    "|| madmom beatF | downbeatF | octave right |"
)


def summary_cells(rows: list[dict[str, Any]]) -> list[str]:
    return [
        str(len(rows)),
        _mean(rows, "ours", "f"),
        _mean(rows, "ours", "cmlt"),
        _mean(rows, "ours", "db"),
        _mean(rows, "ours", "oct"),
        _mean(rows, "librosa", "f"),
        _mean(rows, "librosa", "oct"),
        _mean(rows, "madmom", "f"),
        _mean(rows, "madmom", "db"),
        _mean(rows, "madmom", "oct"),
    ]


def print_recordings(rows: list[dict[str, Any]], show_test: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Each piece on its own line (the test part's only with ``show_test``), then the means."""
    print("\n### Real recordings (benchmarks/recordings.py; audio not in git: make recordings)\n")
    print("| piece | part | source | licence | true BPM | ours beatF | CMLt | downbeatF | BPM | bpb ", end="")
    print("|| librosa F || madmom F | DB F |")
    print("|" + "---|" * 13)
    for r in rows:
        rec: Recording = r["rec"]
        source = f"{rec.audio.repo}@{rec.audio.commit[:8]}"
        if not r["present"]:
            print(
                md_row(
                    [rec.name, r["part"], source, rec.licence, "**absent**: run `make recordings`", *[""] * 8]
                )
            )
            continue
        if r["part"] == "test" and not show_test:
            print(
                md_row(
                    [
                        rec.name,
                        "test",
                        source,
                        rec.licence,
                        "(test part: scored in the means only)",
                        *[""] * 8,
                    ]
                )
            )
            continue
        o, lib, mm = r["ours"], r["librosa"], r.get("madmom", {})
        cells = [rec.name, r["part"], source, rec.licence, f"{r['true_bpm']:.0f}", f"{o['f']:.3f}"]
        cells += [
            f"{o['cmlt']:.3f}",
            f"{o['db']:.3f}" if "db" in o else "–",
            f"{o['bpm']:.1f}",
            str(o["bpb"]),
        ]
        cells += [
            f"{lib['f']:.3f}",
            f"{mm['f']:.3f}" if mm else "–",
            f"{mm['db']:.3f}" if "db" in mm else "–",
        ]
        print(md_row(cells))
    present = [r for r in rows if r["present"]]
    groups = {
        "judge's 8 (eval only)": [r for r in present if r["group"] == "judge"],
        "own, tuning": [r for r in present if r["part"] == "tuning"],
        "own, test": [r for r in present if r["part"] == "test"],
    }
    print()
    print(HEADER.format(label="real set"))
    print("|" + "---|" * 11)
    for name, chosen in groups.items():
        print(md_row([f"**{name}**", *summary_cells(chosen)]))
    absent = [r["name"] for r in rows if not r["present"]]
    if absent:
        print(f"\n{len(absent)} real pieces absent from the cache (not scored): {', '.join(absent)}")
    return groups


def all_rows() -> list[dict[str, Any]]:
    return [recording_row(rec) for rec in RECORDINGS]
