"""Songs with sung lyrics and known word times, for the aligner's tests and ``benchmarks/lyrics.py``.

espeak-ng "sings" each word (slowed, pitched per line), words are laid end to end into lines, and
lines start near a downbeat (a little early or late, as singers do) over an instrumental from
``demo_song``; the vocal sits at the instrumental's loudness. Every word's start and end is
therefore known to the sample. The lyrics are original filler written for this purpose.

``sing(piece, path)`` makes material unlike that: other espeak-ng voices and variants (``en-gb+f3``,
``en-us+klatt2``...), slower or faster singing, other backings (a classical progression played by a
Debian soundfont through fluidsynth, or a real recording from the hyperrogue-music / singularity-music
packages, CC BY-SA 3.0), other mix levels and intros. ``TUNE`` and ``TEST`` are disjoint sets of such
pieces: the aligner may be tuned on ``TUNE`` only; ``TEST`` is what ``benchmarks/lyrics.py`` reports.
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


def _word(text: str, pitch: int, speed: int, tmp: Path, voice: str = "en-us") -> np.ndarray:
    out = tmp / "w.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-a", "180", "-w", str(out), text],
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


# --------------------------------------------------------------------- material the aligner never saw

SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2")
RECORDINGS = ("/usr/share/hyperrogue/music", "/usr/share/games/singularity/music")
# General MIDI programs of a classical ensemble: piano, strings, harp, organ, choir pad.
PROGRAMS = {"piano": 0, "strings": 48, "harp": 46, "organ": 19, "quartet": 40}
# I-vi-IV-V and i-VI-III-VII style progressions (semitones over the key's root).
PROGRESSIONS = (
    ((0, 4, 7), (9, 12, 16), (5, 9, 12), (7, 11, 14)),
    ((0, 3, 7), (8, 12, 15), (3, 7, 10), (10, 14, 17)),
)


@dataclass(frozen=True)
class Piece:
    """One sung piece: who sings it, over what, how fast and how loud (see the module docstring).

    ``backing``: ``soundfont:<sf2 file name>:<program name>`` or ``recording:<ogg file name>``.
    ``speed``: espeak-ng words per minute (lower is slower, more drawn-out singing).
    """

    name: str
    seed: int
    voice: str
    backing: str
    tempo: float
    vocal_db: float = 0.0
    speed: tuple[int, int] = (95, 125)
    pitch: tuple[int, int] = (25, 75)
    intro_s: float = 3.0
    lines: int = 8
    offset_s: float = 0.0  # where in the recording the song starts

    def available(self) -> bool:
        return espeak_available() and _backing_file(self.backing) is not None


TUNE = (
    Piece("tune-gb-f2-piano", 10, "en-gb+f2", "soundfont:FluidR3_GM.sf2:piano", 84.0, 0.0, intro_s=3.0),
    Piece("tune-us-m3-strings", 11, "en-us+m3", "soundfont:TimGM6mb.sf2:strings", 72.0, -3.0, (80, 100)),
    Piece("tune-us-f1-ivory", 12, "en-us+f1", "recording:hr-savino-ivory.ogg", 100.0, -2.0, intro_s=5.0),
    Piece("tune-rp-m1-harp", 13, "en-gb-x-rp+m1", "soundfont:FluidR3_GM.sf2:harp", 96.0, 3.0, (110, 140)),
    Piece("tune-us-f4-caves", 14, "en-us+f4", "recording:hr3-caves.ogg", 90.0, -4.0, intro_s=6.0),
    Piece("tune-us-klatt-organ", 15, "en-us+klatt", "soundfont:TimGM6mb.sf2:organ", 66.0, 0.0, (75, 95)),
)
# Held out: voices, variants, backings and recordings none of TUNE uses.
TEST = (
    Piece("test-us-f3-quartet", 20, "en-us+f3", "soundfont:FluidR3_GM.sf2:quartet", 76.0, -2.0, (85, 105)),
    Piece("test-scot-m4-piano", 21, "en-gb-scotland+m4", "soundfont:TimGM6mb.sf2:piano", 92.0, 0.0),
    Piece(
        "test-us-klatt3-palace", 22, "en-us+klatt3", "recording:hr-savino-palace.ogg", 88.0, -3.0, intro_s=4
    ),
    Piece("test-gb-f5-strings", 23, "en-gb+f5", "soundfont:FluidR3_GM.sf2:strings", 68.0, -5.0, (80, 100)),
    Piece("test-us-m7-ocean", 24, "en-us+m7", "recording:hr-savino-ocean.ogg", 104.0, 2.0, (115, 145)),
    Piece("test-029-f2-journey", 25, "en-029+f2", "recording:A New Journey.ogg", 96.0, -1.0, intro_s=7.0),
)


def _backing_file(backing: str) -> Path | None:
    kind, _, rest = backing.partition(":")
    if kind == "soundfont":
        if shutil.which("fluidsynth") is None:
            return None
        name = rest.split(":")[0]
        found = [Path(f) for f in SOUNDFONTS if Path(f).name == name and Path(f).exists()]
    else:
        found = [Path(d) / rest for d in RECORDINGS if (Path(d) / rest).exists()]
    return found[0] if found else None


def _midi(path: Path, tempo: float, seconds: float, program: int, rng: random.Random) -> None:
    """A standard MIDI file: a chord progression, arpeggiated in the bass and held above, 4/4."""
    ticks = 480
    events: list[tuple[int, bytes]] = [(0, bytes([0xC0, program])), (0, bytes([0xC1, program]))]
    root = rng.choice((48, 50, 53, 55, 57))
    progression = rng.choice(PROGRESSIONS)
    bars = int(seconds * tempo / 240) + 1
    for bar in range(bars):
        chord = progression[bar % len(progression)]
        at = bar * 4 * ticks
        for note in chord:  # held chord an octave up, soft
            events.append((at, bytes([0x91, root + 12 + note, 50])))
            events.append((at + 4 * ticks - 10, bytes([0x81, root + 12 + note, 0])))
        for beat in range(8):  # eighth-note arpeggio
            note = root + chord[beat % 3] + (12 if beat >= 4 else 0)
            start = at + beat * ticks // 2
            events.append((start, bytes([0x90, note, 70 + rng.randint(-10, 10)])))
            events.append((start + ticks // 2 - 5, bytes([0x80, note, 0])))
    events.sort(key=lambda e: e[0])
    track = bytearray()
    micros = int(60_000_000 / tempo)
    track += b"\x00\xff\x51\x03" + micros.to_bytes(3, "big")
    now = 0
    for at, data in events:
        track += _varlen(at - now) + data
        now = at
    track += b"\x00\xff\x2f\x00"
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
    body = b"MTrk" + len(track).to_bytes(4, "big") + bytes(track)
    path.write_bytes(header + ticks.to_bytes(2, "big") + body)


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def _backing(piece: Piece, seconds: float, rng: random.Random, tmp: Path) -> np.ndarray:
    source = _backing_file(piece.backing)
    if source is None:
        raise RuntimeError(f"{piece.backing} is not installed")
    if piece.backing.startswith("soundfont:"):
        program = PROGRAMS[piece.backing.split(":")[2]]
        midi, wav = tmp / "backing.mid", tmp / "backing.wav"
        _midi(midi, piece.tempo, seconds, program, rng)
        subprocess.run(
            ["fluidsynth", "-ni", "-g", "0.8", "-r", str(SR), "-F", str(wav), str(source), str(midi)],
            check=True,
            capture_output=True,
        )
        samples, _ = sf.read(wav, dtype="float32")
        music = samples.mean(axis=1) if samples.ndim == 2 else samples
    else:
        # libsndfile reads these Ogg files; FFmpeg refuses some of them (a header it calls invalid).
        samples, rate = sf.read(source, dtype="float32")
        sf.write(tmp / "recording.wav", samples.mean(axis=1) if samples.ndim == 2 else samples, rate)
        resampled = tmp / "resampled.wav"
        subprocess.run(
            [
                "ffmpeg",
                "-nostdin",
                "-v",
                "error",
                "-i",
                str(tmp / "recording.wav"),
                "-ar",
                str(SR),
                str(resampled),
            ],
            check=True,
            capture_output=True,
        )
        music, _ = sf.read(resampled, dtype="float32")
        music = music[int(piece.offset_s * SR) :]
    music = np.asarray(music[: int(seconds * SR)], dtype=np.float32)
    if len(music) < int(seconds * SR):  # a short recording loops
        music = np.resize(music, int(seconds * SR))
    return music


def sing(piece: Piece, path: Path) -> SungSong:
    """Write ``path`` (WAV, 22050 Hz mono): ``piece``'s lines sung over its backing, truth attached.

    Lines start on bar lines of ``piece.tempo`` (a little early or late), every one or two bars,
    with an instrumental break of a few bars halfway; the first after ``intro_s``.
    """
    rng = random.Random(piece.seed)
    bar = 4 * 60.0 / piece.tempo
    order = list(LYRICS)
    rng.shuffle(order)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sung: list[list[tuple[str, np.ndarray]]] = []
        for text in order[: piece.lines]:
            pitch, speed = rng.randint(*piece.pitch), rng.randint(*piece.speed)
            sung.append([(t, _word(t.strip(","), pitch, speed, tmp, piece.voice)) for t in text.split()])
        starts: list[float] = []
        at = piece.intro_s
        for i, words in enumerate(sung):
            start = at + rng.uniform(-0.2, 0.3)
            starts.append(start)
            length = sum(len(s) for _, s in words) / SR + 0.1 * len(words)
            bars = max(1, int(np.ceil((length + 0.5) / bar)))
            at += bars * bar + (3 * bar if i == len(sung) // 2 - 1 else 0.0)
        seconds = at + 2 * bar
        music = _backing(piece, seconds, rng, tmp)
    vocal = np.zeros_like(music)
    lines: list[TimedLine] = []
    for words, start_s in zip(sung, starts, strict=True):
        timed: list[TimedWord] = []
        at = start_s
        for token, sound in words:
            start = int(at * SR)
            end = min(start + len(sound), len(vocal))
            vocal[start:end] += sound[: end - start]
            timed.append(TimedWord(start=start / SR, end=end / SR, text=token))
            at = end / SR + rng.uniform(0.04, 0.14)
        text = " ".join(t for t, _ in words)
        lines.append(TimedLine(start=timed[0].start, end=timed[-1].end, text=text, words=timed))
    active = np.abs(music) > 1e-4
    music_rms = float(np.sqrt(np.mean(music[active] ** 2))) if active.any() else 0.1
    voiced = np.abs(vocal) > 1e-4
    vocal_rms = float(np.sqrt(np.mean(vocal[voiced] ** 2)))
    mix = music + vocal * (music_rms / vocal_rms) * 10 ** (piece.vocal_db / 20)
    mix *= 0.89 / max(1e-9, float(np.max(np.abs(mix))))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, mix, SR, subtype="PCM_16")
    return SungSong(path=path, lines=lines, duration=len(mix) / SR)
