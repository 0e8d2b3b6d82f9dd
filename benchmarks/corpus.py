"""The generalization corpus of the analysis benchmark: 48 pieces written as MIDI by this script,
rendered with FluidSynth through three General MIDI soundfonts from Debian's packages, with light
mastering (reverb, compression, noise) by FFmpeg. Beat and downbeat ground truth is exact: every
note is placed on the beat grid that the truth file lists.

WHY our own MIDI rather than scores from a corpus: the categories that broke the analysis on unseen
music (a swung 150 BPM song, a backbeat kick on 2 and 4, a pickup, 6/8 and 12/8, ramps and rubato)
can be asked for by name and in any number, each with a known answer.

The split into a tuning part and a test part is fixed before any tuning by a rule on the piece's
name alone (``part``: the parity of the first byte of its SHA-256), so no result can move a piece
from one part to the other. Only the tuning part may be looked at when choosing what to change.

Renders are cached in ``benchmarks/.cache/corpus/`` (gitignored), keyed by the piece's spec and
CORPUS_VERSION; a rerun only renders what changed. The pieces are declared in ``corpus_specs.py``
and composed in ``corpus_music.py``; this module renders them and is what the analysis benchmark and
the beat model's training import.

    .venv/bin/python benchmarks/corpus.py          # render (once) and list the pieces with their part
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.corpus_music import PROGRAMS, beat_times, compose, write_midi
from benchmarks.corpus_specs import METERS, SPECS, Spec, part

__all__ = [
    "EFFECTS",
    "METERS",
    "PROGRAMS",
    "SOUNDFONTS",
    "SPECS",
    "Spec",
    "audio_path",
    "part",
    "render",
    "truth",
]

CACHE = Path(__file__).resolve().parent / ".cache" / "corpus"
CORPUS_VERSION = 1  # bump when the music or the truth changes, to re-render
RENDER_SR = 44100
SOUNDFONTS = {
    "fluidr3": Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    "timgm6mb": Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    "musescore": Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),
    # Only the beat model's training renders use this one (the 48 pieces never do).
    "musescore-full": Path("/usr/share/sounds/sf3/MuseScore_General.sf3"),
}
# Light mastering: FFmpeg audio filters applied after the render (noise is mixed in separately).
_REVERB = "aecho=0.8:0.6:43|71|113:0.35|0.25|0.15"
_COMP = "acompressor=threshold=0.08:ratio=6:attack=3:release=80:makeup=2"
EFFECTS = {
    "clean": "",
    "reverb": _REVERB,
    "comp": _COMP,
    "noise": "",
    "reverb+comp": f"{_REVERB},{_COMP}",
}


# -------------------------------------------------------------------------------------- rendering


def truth(spec: Spec) -> dict[str, Any]:
    per_bar, _ = METERS[spec.meter]
    knots = beat_times(spec)
    n_beats = spec.pickup + spec.bars * per_bar
    beats = knots[:n_beats]
    downbeats = beats[spec.pickup :: per_bar]
    return {
        "beats": [round(float(t), 5) for t in beats],
        "downbeats": [round(float(t), 5) for t in downbeats],
        "beats_per_bar": per_bar,
        "tempo": float(60.0 / np.median(np.diff(beats))),
    }


def _key(spec: Spec) -> str:
    fields = asdict(spec)
    if not spec.programs:  # the default leaves the 48 pieces' keys (and cached renders) as they were
        del fields["programs"]
    return hashlib.sha256(json.dumps([CORPUS_VERSION, fields]).encode()).hexdigest()[:16]


def audio_path(spec: Spec, cache: Path = CACHE) -> Path:
    return cache / f"{spec.name.replace('/', '')}.flac"


def render(spec: Spec, cache: Path = CACHE) -> tuple[Path, dict[str, Any]]:
    """The piece's audio file (rendered once, cached in ``cache``) and its ground truth."""
    path = audio_path(spec, cache)
    truth_path = path.with_suffix(".json")
    key = _key(spec)
    try:
        cached = json.loads(truth_path.read_text(encoding="utf-8"))
        if cached.get("key") == key and path.is_file():
            return path, cached
    except (OSError, ValueError):
        pass
    sf = SOUNDFONTS[spec.soundfont]
    if not sf.is_file():
        raise SystemExit(f"corpus: missing soundfont {sf}; run scripts/install-system-deps.sh --bench")
    path.parent.mkdir(parents=True, exist_ok=True)
    knots = beat_times(spec)
    facts = truth(spec) | {"key": key}
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        mid, wav = Path(tmp) / "piece.mid", Path(tmp) / "render.wav"
        write_midi(spec, compose(spec), knots, mid)
        subprocess.run(
            # Dynamic sample loading reads only the samples the piece plays (same output, bit for
            # bit; an .sf3 otherwise takes 3-5 s to decompress whole before the first note).
            [
                *("fluidsynth", "-ni", "-q", "-o", "synth.dynamic-sample-loading=1", "-g", "0.5"),
                *("-r", str(RENDER_SR), "-F", str(wav), str(sf), str(mid)),
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
        end = float(facts["beats"][-1]) + 3.0
        chain = [f"atrim=0:{end:.3f}", "pan=mono|c0=0.5*c0+0.5*c1"]
        if EFFECTS[spec.fx]:
            chain.append(EFFECTS[spec.fx])
        chain.append("alimiter=limit=0.9")
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav)]
        if spec.fx == "noise":
            cmd += [
                "-f",
                "lavfi",
                "-i",
                f"anoisesrc=color=pink:amplitude=0.03:seed={spec.seed}:r={RENDER_SR}",
            ]
            mix = "amix=inputs=2:duration=first:normalize=0,alimiter=limit=0.9"
            graph = f"[0:a]{','.join(chain[:2])}[m];[m][1:a]{mix}[out]"
        else:
            graph = f"[0:a]{','.join(chain)}[out]"
        out = Path(tmp) / "out.flac"
        subprocess.run(
            [*cmd, "-filter_complex", graph, "-map", "[out]", "-ar", str(RENDER_SR), str(out)], check=True
        )
        os.replace(out, path)
    truth_path.write_text(json.dumps(facts), encoding="utf-8")
    return path, facts


def main() -> int:
    counts = {"tuning": 0, "test": 0}
    for spec in SPECS:
        path, facts = render(spec)
        counts[part(spec.name)] += 1
        print(
            f"{part(spec.name):6} {spec.name:26} {facts['tempo']:6.1f} BPM "
            f"{len(facts['beats']):3d} beats  {path.name}"
        )
    print(f"{len(SPECS)} pieces: {counts['tuning']} tuning, {counts['test']} test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
