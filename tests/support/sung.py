"""Songs with sung lyrics and known word times, for the aligner's tests and ``benchmarks/lyrics.py``.

espeak-ng "sings" each word (slowed, pitched per line), words are laid end to end into lines, and
lines start near a downbeat (a little early or late, as singers do) over an instrumental from
``demo_song``; the vocal sits at the instrumental's loudness. Every word's start and end is
therefore known to the sample. The lyrics are original filler written for this purpose.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from kapsule.demo.song import synthesize_song
from kapsule.lyrics.models import TimedLine, TimedWord

SR = 22050
LYRICS = (
    "walking down the river road",
    "every light is turning gold",
    "hold the night before it goes",
    "we are running out of time",
    "sing it louder one more time",
    "paper boats on silver streams",
    "carry all our little dreams",
    "never let the morning come",
    "dancing till the night is done",
    "shadows falling on the wall",
    "I can hear the city call",
    "open up the window wide",
    "let the summer come inside",
    "every heartbeat, every song",
    "we were waiting all along",
    "turn the radio up high",
)


@dataclass(frozen=True)
class SungSong:
    path: Path
    lines: list[TimedLine]  # the truth: every word's start and end
    duration: float

    @property
    def verses(self) -> list[list[str]]:
        return [[line.text for line in self.lines]]


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def _word(text: str, pitch: int, speed: int, tmp: Path) -> np.ndarray:
    out = tmp / "w.wav"
    subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", str(speed), "-p", str(pitch), "-a", "180", "-w", str(out), text],
        check=True,
        capture_output=True,
    )
    samples, rate = sf.read(out, dtype="float32")
    if rate != SR:  # espeak-ng writes 22050 Hz
        raise RuntimeError(f"espeak-ng wrote {rate} Hz")
    loud = np.flatnonzero(np.abs(samples) > 0.02)
    return samples[loud[0] : loud[-1] + 1] if loud.size else samples[:0]


def sing_song(
    path: Path, *, seed: int = 0, tempo: float = 110.0, style: str = "pop", vocal_db: float = 0.0
) -> SungSong:
    """Write ``path`` (WAV, 22050 Hz mono) and return its sung lines with exact word times."""
    rng = random.Random(seed)
    song = synthesize_song(tempo=tempo, seed=seed, style=style, sample_rate=SR)
    music = song.samples.mean(axis=1).astype(np.float32)
    vocal = np.zeros_like(music)
    sung_sections = [s for s in song.sections if s.label in ("verse", "chorus", "bridge")]
    bar = song.beats_per_bar * 60.0 / tempo
    lines: list[TimedLine] = []
    order = list(LYRICS)
    rng.shuffle(order)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for section in sung_sections:
            downbeats = [d for d in song.downbeats if section.start <= d < section.end - bar]
            for downbeat in downbeats[::2]:  # a line every two bars, unless the last one is still sung
                if lines and lines[-1].end > downbeat - 0.6:
                    continue
                text = order[len(lines) % len(order)]
                pitch, speed = rng.randint(25, 75), rng.randint(95, 125)
                at = downbeat + rng.uniform(-0.25, 0.4)
                words: list[TimedWord] = []
                for token in text.split():
                    sound = _word(token.strip(","), pitch, speed, tmp)
                    start = int(at * SR)
                    end = min(start + len(sound), len(vocal))
                    vocal[start:end] += sound[: end - start]
                    words.append(TimedWord(start=start / SR, end=end / SR, text=token))
                    at = end / SR + rng.uniform(0.04, 0.14)
                lines.append(TimedLine(start=words[0].start, end=words[-1].end, text=text, words=words))
    active = np.abs(music) > 1e-4
    music_rms = float(np.sqrt(np.mean(music[active] ** 2))) if active.any() else 0.1
    voiced = np.abs(vocal) > 1e-4
    vocal_rms = float(np.sqrt(np.mean(vocal[voiced] ** 2)))
    mix = music + vocal * (music_rms / vocal_rms) * 10 ** (vocal_db / 20)
    mix *= 0.89 / max(1e-9, float(np.max(np.abs(mix))))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, mix, SR, subtype="PCM_16")
    return SungSong(path=path, lines=lines, duration=len(mix) / SR)
