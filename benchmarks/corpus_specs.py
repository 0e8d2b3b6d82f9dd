"""The 48 pieces of the generalization corpus (``benchmarks/corpus.py``): what decides each one's
audio, and which part (tuning or test) it belongs to."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

METERS = {  # name -> (beats per bar, sub-pulses per beat); the beat of 6/8 and 12/8 is the dotted quarter
    "2/4": (2, 2),
    "3/4": (3, 2),
    "4/4": (4, 2),
    "6/8": (2, 3),
    "12/8": (4, 3),
}


@dataclass(frozen=True)
class Spec:
    """One piece: everything that decides its audio."""

    name: str
    meter: str
    bpm: float  # of the beat (dotted quarter in 6/8 and 12/8)
    instr: str  # piano | strings | choir | band | electronic
    drums: str  # rock | backbeat | halftime | four | breakbeat | none
    tempo: str = "steady"  # steady | ramp | rubato
    feel: str = "straight"  # straight | swing | sync
    pickup: int = 0  # beats before the first downbeat
    soundfont: str = "fluidr3"
    fx: str = "clean"
    bars: int = 16
    end_bpm: float = 0.0  # for a ramp
    seed: int = 0
    # (channel, GM program) pairs replacing the instrumentation's defaults (channel 9: a drum kit);
    # the beat model's training renders draw them, the 48 pieces keep the defaults.
    programs: tuple[tuple[int, int], ...] = ()

    @property
    def category(self) -> dict[str, str]:
        tempo_band = "slow<90" if self.bpm < 90 else "fast>=140" if self.bpm >= 140 else "mid"
        return {
            "meter": self.meter,
            "tempo": self.tempo if self.tempo != "steady" else tempo_band,
            "feel": self.feel + ("+pickup" if self.pickup else ""),
            "drums": self.drums,
            "instr": self.instr,
        }


def part(name: str) -> str:
    """``tuning`` or ``test``: fixed by the name's hash, decided before any tuning."""
    return "test" if hashlib.sha256(name.encode()).digest()[0] % 2 else "tuning"


def _specs() -> list[Spec]:
    rows = [
        # name, meter, bpm, instr, drums, tempo, feel, pickup, sf, fx, end_bpm
        ("pop-rock-4-120", "4/4", 120, "band", "rock", "steady", "straight", 0, "fluidr3", "clean", 0),
        ("pop-rock-4-96-sync", "4/4", 96, "band", "rock", "steady", "sync", 0, "timgm6mb", "comp", 0),
        ("punk-4-196", "4/4", 196, "band", "rock", "steady", "straight", 0, "musescore", "comp", 0),
        ("rock-4-168", "4/4", 168, "band", "rock", "steady", "straight", 1, "fluidr3", "reverb+comp", 0),
        ("shuffle-4-150-swing", "4/4", 150, "band", "rock", "steady", "swing", 0, "timgm6mb", "clean", 0),
        ("blues-12/8-72", "12/8", 72, "band", "rock", "steady", "straight", 0, "musescore", "reverb", 0),
        ("backbeat-4-100", "4/4", 100, "band", "backbeat", "steady", "straight", 0, "fluidr3", "noise", 0),
        ("backbeat-4-132-sync", "4/4", 132, "band", "backbeat", "steady", "sync", 0, "musescore", "clean", 0),
        ("backbeat-4-88-swing", "4/4", 88, "band", "backbeat", "steady", "swing", 0, "timgm6mb", "reverb", 0),
        ("halftime-4-140", "4/4", 140, "band", "halftime", "steady", "straight", 0, "fluidr3", "comp", 0),
        (
            "halftime-4-160-e",
            "4/4",
            160,
            "electronic",
            "halftime",
            "steady",
            "sync",
            0,
            "musescore",
            "clean",
            0,
        ),
        ("halftime-4-76", "4/4", 76, "band", "halftime", "steady", "straight", 1, "timgm6mb", "reverb", 0),
        ("house-4-124", "4/4", 124, "electronic", "four", "steady", "straight", 0, "fluidr3", "clean", 0),
        ("house-4-128-sync", "4/4", 128, "electronic", "four", "steady", "sync", 0, "timgm6mb", "noise", 0),
        ("disco-4-112", "4/4", 112, "band", "four", "steady", "straight", 0, "musescore", "reverb+comp", 0),
        ("techno-4-140", "4/4", 140, "electronic", "four", "steady", "straight", 0, "musescore", "comp", 0),
        ("break-4-174", "4/4", 174, "electronic", "breakbeat", "steady", "sync", 0, "fluidr3", "comp", 0),
        ("break-4-92", "4/4", 92, "band", "breakbeat", "steady", "straight", 0, "timgm6mb", "clean", 0),
        (
            "break-4-104-swing",
            "4/4",
            104,
            "electronic",
            "breakbeat",
            "steady",
            "swing",
            0,
            "musescore",
            "noise",
            0,
        ),
        ("ballad-4-64-pickup", "4/4", 64, "piano", "none", "rubato", "straight", 1, "fluidr3", "reverb", 0),
        ("piano-4-108", "4/4", 108, "piano", "none", "steady", "straight", 0, "timgm6mb", "clean", 0),
        ("piano-4-84-sync", "4/4", 84, "piano", "none", "steady", "sync", 2, "musescore", "clean", 0),
        ("piano-4-140-swing", "4/4", 140, "piano", "none", "steady", "swing", 0, "fluidr3", "noise", 0),
        ("piano-3-90-waltz", "3/4", 90, "piano", "none", "steady", "straight", 0, "fluidr3", "clean", 0),
        ("piano-3-160-waltz", "3/4", 160, "piano", "none", "steady", "straight", 1, "musescore", "reverb", 0),
        ("piano-3-72-rubato", "3/4", 72, "piano", "none", "rubato", "straight", 0, "timgm6mb", "clean", 0),
        ("piano-2-110-march", "2/4", 110, "piano", "none", "steady", "straight", 1, "timgm6mb", "comp", 0),
        ("piano-6/8-66", "6/8", 66, "piano", "none", "steady", "straight", 1, "fluidr3", "clean", 0),
        ("piano-12/8-60", "12/8", 60, "piano", "none", "rubato", "straight", 0, "musescore", "reverb", 0),
        ("strings-4-80", "4/4", 80, "strings", "none", "steady", "straight", 0, "fluidr3", "reverb", 0),
        ("strings-3-120", "3/4", 120, "strings", "none", "steady", "straight", 0, "musescore", "clean", 0),
        (
            "strings-4-100-ramp",
            "4/4",
            100,
            "strings",
            "none",
            "ramp",
            "straight",
            0,
            "timgm6mb",
            "clean",
            124,
        ),
        ("strings-6/8-84", "6/8", 84, "strings", "none", "rubato", "straight", 1, "fluidr3", "comp", 0),
        ("strings-2-128", "2/4", 128, "strings", "none", "steady", "sync", 0, "musescore", "noise", 0),
        ("choir-4-70", "4/4", 70, "choir", "none", "steady", "straight", 0, "fluidr3", "reverb", 0),
        ("choir-3-96", "3/4", 96, "choir", "none", "rubato", "straight", 1, "timgm6mb", "reverb", 0),
        ("choir-4-60-rubato", "4/4", 60, "choir", "none", "rubato", "straight", 0, "musescore", "clean", 0),
        ("choir-12/8-66", "12/8", 66, "choir", "none", "steady", "straight", 0, "fluidr3", "noise", 0),
        ("band-4-110-ramp", "4/4", 110, "band", "rock", "ramp", "straight", 0, "fluidr3", "clean", 138),
        ("band-4-150-ramp-down", "4/4", 150, "band", "four", "ramp", "sync", 0, "musescore", "comp", 120),
        ("band-3-138", "3/4", 138, "band", "rock", "steady", "straight", 0, "timgm6mb", "clean", 0),
        ("band-6/8-92", "6/8", 92, "band", "rock", "steady", "straight", 1, "musescore", "reverb+comp", 0),
        ("band-2-184-polka", "2/4", 184, "band", "rock", "steady", "straight", 0, "fluidr3", "clean", 0),
        ("electro-3-126", "3/4", 126, "electronic", "four", "steady", "straight", 0, "timgm6mb", "comp", 0),
        (
            "electro-12/8-80",
            "12/8",
            80,
            "electronic",
            "halftime",
            "steady",
            "straight",
            0,
            "fluidr3",
            "clean",
            0,
        ),
        ("electro-4-90-none", "4/4", 90, "electronic", "none", "steady", "sync", 0, "musescore", "clean", 0),
        ("band-4-200-swing", "4/4", 200, "band", "rock", "steady", "swing", 0, "fluidr3", "noise", 0),
        ("band-4-62-rubato", "4/4", 62, "band", "backbeat", "rubato", "straight", 1, "timgm6mb", "reverb", 0),
    ]
    specs = []
    for k, (name, meter, bpm, instr, drums, tempo, feel, pickup, sf, fx, end) in enumerate(rows):
        beats_per_bar = METERS[meter][0]
        bars = max(8, min(24, round(36.0 * bpm / 60.0 / beats_per_bar)))  # ~36 s whatever the tempo
        specs.append(
            Spec(name, meter, float(bpm), instr, drums, tempo, feel, pickup, sf, fx, bars, float(end), k)
        )
    return specs


SPECS = _specs()
