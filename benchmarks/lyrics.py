"""Lyrics: how close the aligners put sung lines, and what burned captions add to assembly.

Songs: instrumentals from ``demo_song`` (several tempos and styles) with lyrics sung by espeak-ng,
slowed and pitched per line, each word placed at a known sample (``tests/support/sung.py``); lines start
near a downbeat, a little early or late. For each aligner the error is |aligned - true| line start.

* ``offline``  what ``align_lyrics(aligner="offline")`` does: PocketSphinx, else the vocal aligner
* ``vocal``    the model-free aligner alone (``lyrics.align``: repeating-background vocal activity + DP)
* ``sphinx``   PocketSphinx forced alignment alone (``lyrics.sphinx``; en-US model from its wheel)
* ``gemini``   our Gemini path against the fake server (``tests/support/fake_google.py``): the fake answers
  the true times plus N(0, 0.2 s) noise with every 8th line 3 s late; this measures our request,
  parsing and vocal-activity check, not Gemini's hearing (no real model is reachable here)
* the offline rows are also run on ``HELD_OUT`` songs, which no threshold was tuned on
* ``gemini-deaf``  the fake answers lines spread evenly over the song: the check must refuse it,
  and ``align_lyrics`` falls back to the offline aligner (the figure is then the fallback's)

Unseen songs (``--only unseen``): the ``TUNE`` and ``TEST`` pieces of ``tests/support/sung.py``
(other espeak-ng voices, soundfont and recorded classical/game-music backings, other tempi and mix
levels). Only ``TEST`` is the figure to quote; ``TUNE`` is what thresholds may be set on. Per piece:
median and largest line-start error of ``align_lyrics(aligner="offline")``, the first line's error,
and how the confidence sorts the lines (lines over 1 s off that are marked unsure; sure lines'
errors). Targets (issue 21): median <= 0.3 s and no line over 1.0 s off.

Assembly: the same 60 s edit of 10 Veo-like clips (one encode pass) with and without burned karaoke
captions, each run ``--repeat`` times interleaved, fastest kept; the ratio is burned / plain.
Usage: ``.venv/bin/python benchmarks/lyrics.py [--quick] [--repeat N] [--only alignment|assembly]``.
Last line: ``offline_median=… offline_p90=… sphinx_median=… gemini_median=… burned/plain=…``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.assembly import build_media, make_board  # noqa: E402
from kapsule import media  # noqa: E402
from kapsule.assembly.video import assemble_video  # noqa: E402
from kapsule.core.errors import LyricsAlignmentFailed  # noqa: E402
from kapsule.core.settings import get_settings  # noqa: E402
from kapsule.lyrics import align_lyrics  # noqa: E402
from kapsule.lyrics.align import align_offline, vocal_activity_of  # noqa: E402
from kapsule.lyrics.captions import write_captions  # noqa: E402
from kapsule.lyrics.models import TimedLine, TimedWord  # noqa: E402
from kapsule.lyrics.sphinx import align_sphinx  # noqa: E402
from tests.support.fake_google import running_fake_google  # noqa: E402
from tests.support.sung import TEST, TUNE, Piece, SungSong, sing, sing_song  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache" / "lyrics"
SONGS = [  # (seed, tempo, style)
    (0, 110.0, "pop"),
    (1, 96.0, "ballad"),
    (2, 128.0, "electronic"),
    (3, 120.0, "rock"),
    (4, 100.0, "waltz"),
    (5, 140.0, "pop"),
]
# Songs no threshold was tuned on: ``prefer_singing``'s rule was chosen looking at SONGS' errors.
HELD_OUT = [(6, 104.0, "rock"), (7, 116.0, "ballad"), (8, 132.0, "electronic"), (9, 92.0, "pop")]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def errors(got: list[TimedLine], want: list[TimedLine]) -> list[float]:
    return [abs(a.start - b.start) for a, b in zip(got, want, strict=True)]


def fake_answer(song: SungSong, rng: random.Random, deaf: bool) -> str:
    lines = []
    for i, line in enumerate(song.lines):
        if deaf:
            span = song.duration / len(song.lines)
            start, end = i * span + 0.2, (i + 1) * span - 0.2
            lines.append({"index": i, "start": start, "end": end})
            continue
        shift = rng.gauss(0, 0.2) + (3.0 if i % 8 == 7 else 0.0)
        words = [
            {"text": w.text, "start": max(0.0, w.start + shift), "end": w.end + shift} for w in line.words
        ]
        start, end = max(0.0, line.start + shift), line.end + shift
        lines.append({"index": i, "start": start, "end": end, "words": words})
    return json.dumps({"lines": lines})


def alignment(songs: list[SungSong]) -> dict[str, dict[str, float]]:
    found: dict[str, list[float]] = {
        "offline": [],
        "vocal": [],
        "sphinx": [],
        "gemini": [],
        "gemini-deaf": [],
    }
    seconds: dict[str, float] = dict.fromkeys(found, 0.0)
    failures: dict[str, int] = dict.fromkeys(found, 0)
    rng = random.Random(16)
    with running_fake_google(b"") as fake:
        os.environ.update({"GEMINI_API_KEY": "bench", "KAPSULE_GENAI_BASE_URL": fake.url})
        os.environ.pop("GOOGLE_GENAI_USE_VERTEXAI", None)
        get_settings.cache_clear()
        for song in songs:
            verses = song.verses
            started = time.monotonic()
            found["offline"] += errors(align_lyrics(verses, song.path, aligner="offline"), song.lines)
            seconds["offline"] += time.monotonic() - started
            started = time.monotonic()
            found["vocal"] += errors(align_offline(verses, vocal_activity_of(song.path)), song.lines)
            seconds["vocal"] += time.monotonic() - started
            started = time.monotonic()
            try:
                found["sphinx"] += errors(align_sphinx(verses, song.path), song.lines)
            except LyricsAlignmentFailed as exc:
                print(f"sphinx failed on {song.path.name}: {exc}", file=sys.stderr)
                failures["sphinx"] += 1
            seconds["sphinx"] += time.monotonic() - started
            for name, deaf in (("gemini", False), ("gemini-deaf", True)):
                fake.gemini_replies = [fake_answer(song, rng, deaf) for _ in range(3)]
                started = time.monotonic()
                timed = align_lyrics(verses, song.path, aligner="gemini", settings=get_settings())
                found[name] += errors(timed, song.lines)
                seconds[name] += time.monotonic() - started
    total = sum(song.duration for song in songs)
    return {
        name: {
            "lines": len(errs),
            "songs_failed": failures[name],
            "median_s": round(statistics.median(errs), 3),
            "p90_s": round(percentile(errs, 0.9), 3),
            "within_0.3s": round(sum(e <= 0.3 for e in errs) / len(errs), 3),
            "seconds_per_minute_of_song": round(seconds[name] / total * 60, 2),
        }
        for name, errs in found.items()
    }


def unseen(pieces: tuple[Piece, ...]) -> dict[str, object]:
    """Per piece and overall: line-start errors of the offline aligner and what its confidence says."""
    per_piece: dict[str, dict[str, object]] = {}
    errs: list[float] = []
    sure_errs: list[float] = []
    far_unsure = far = 0
    for piece in pieces:
        if not piece.available():
            print(f"skipping {piece.name}: its voice or backing is not installed", file=sys.stderr)
            continue
        song = sing(piece, CACHE / "unseen" / f"{piece.name}.wav")
        timed = align_lyrics(song.verses, song.path, aligner="offline")
        e = errors(timed, song.lines)
        errs += e
        sure_errs += [err for err, line in zip(e, timed, strict=True) if line.sure]
        far += sum(err > 1.0 for err in e)
        far_unsure += sum(err > 1.0 and not line.sure for err, line in zip(e, timed, strict=True))
        per_piece[piece.name] = {
            "median_s": round(statistics.median(e), 3),
            "max_s": round(max(e), 3),
            "first_s": round(e[0], 3),
            "over_1s": sum(err > 1.0 for err in e),
            "unsure": sum(not line.sure for line in timed),
            "lines": [
                (round(line.start, 2), round(truth.start, 2), round(line.confidence, 2))
                for line, truth in zip(timed, song.lines, strict=True)
            ],
        }
    return {
        "pieces": per_piece,
        "lines": len(errs),
        "median_s": round(statistics.median(errs), 3) if errs else None,
        "p90_s": round(percentile(errs, 0.9), 3) if errs else None,
        "max_s": round(max(errs), 3) if errs else None,
        "over_1s": far,
        "over_1s_marked_unsure": far_unsure,
        "sure_lines": len(sure_errs),
        "sure_median_s": round(statistics.median(sure_errs), 3) if sure_errs else None,
        "sure_max_s": round(max(sure_errs), 3) if sure_errs else None,
    }


def caption_lines(seconds: float) -> list[TimedLine]:
    """A line every 3 s with word times (karaoke), like a busy lyric video."""
    lines = []
    for i, start in enumerate(range(1, int(seconds) - 2, 3)):
        words = [
            TimedWord(start=start + k * 0.5, end=start + k * 0.5 + 0.45, text=f"word{k}") for k in range(5)
        ]
        lines.append(
            TimedLine(start=start, end=start + 2.6, text=" ".join(w.text for w in words), words=words)
        )
        del i
    return lines


def assembly(repeat: int, seconds: int, count: int) -> dict[str, float]:
    cache = CACHE / "assembly"
    board = make_board(seconds, count)
    clips, song = build_media(cache, seconds, count)
    files = write_captions(caption_lines(seconds), (1280, 720), cache / "captions")
    best = {"plain": float("inf"), "burned": float("inf")}
    cpu = {"plain": float("inf"), "burned": float("inf")}
    for _ in range(repeat):
        for name, tracks in (("plain", None), ("burned", files.tracks("burned"))):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            result = assemble_video(
                board, clips, song, cache / f"out-{name}.mp4", exact_lengths=False, captions=tracks
            )
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            best[name] = min(best[name], result.seconds_taken)
            cpu[name] = min(cpu[name], used)
    frames = media.probe(cache / "out-burned.mp4").real_video[0].frames
    assert frames == board.total_frames
    return {
        "plain_s": round(best["plain"], 2),
        "burned_s": round(best["burned"], 2),
        "ratio": round(best["burned"] / best["plain"], 3),
        # CPU seconds of the FFmpeg children: what the captions cost, whatever else loads the machine
        "plain_cpu_s": round(cpu["plain"], 2),
        "burned_cpu_s": round(cpu["burned"], 2),
        "cpu_ratio": round(cpu["burned"] / cpu["plain"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="3 songs and a 30 s edit")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=("alignment", "assembly", "unseen"), help="run one part")
    parser.add_argument("--tune", action="store_true", help="with --only unseen: the TUNE pieces, not TEST")
    args = parser.parse_args()
    if args.only == "unseen":
        found = unseen(TUNE if args.tune else TEST)
        print(json.dumps({"set": "tune" if args.tune else "test", **found}, indent=1))
        return
    if args.only == "assembly":
        print(json.dumps(assembly(args.repeat, 30 if args.quick else 60, 5 if args.quick else 10), indent=2))
        return
    picks = SONGS[:3] if args.quick else SONGS
    songs = [
        sing_song(CACHE / f"sung-{seed}.wav", seed=seed, tempo=tempo, style=style)
        for seed, tempo, style in picks
    ]
    held = [
        sing_song(CACHE / f"sung-{seed}.wav", seed=seed, tempo=tempo, style=style)
        for seed, tempo, style in HELD_OUT
    ]
    report: dict[str, object] = {"songs": len(songs), "alignment": alignment(songs)}
    if not args.quick:
        report["held_out"] = {"songs": len(held), "alignment": alignment(held)}
    if args.only == "alignment":
        print(json.dumps(report, indent=2))
        return
    report["assembly"] = assembly(args.repeat, 30 if args.quick else 60, 5 if args.quick else 10)
    print(json.dumps(report, indent=2))
    a: dict[str, dict[str, float]] = report["alignment"]  # type: ignore[assignment]
    print(
        f"offline_median={a['offline']['median_s']} offline_p90={a['offline']['p90_s']} "
        f"sphinx_median={a['sphinx']['median_s']} sphinx_p90={a['sphinx']['p90_s']} "
        f"gemini_median={a['gemini']['median_s']} gemini_p90={a['gemini']['p90_s']} "
        f"burned/plain={report['assembly']['ratio']} "  # type: ignore[index]
        f"burned/plain_cpu={report['assembly']['cpu_ratio']}"  # type: ignore[index]
    )


if __name__ == "__main__":
    main()
