"""Small real media for assembly and caption tests: a four-shot board, solid-colour clips, a tone."""

from __future__ import annotations

import json
from pathlib import Path

from kapsule import media
from kapsule.job.artifacts import Shot, Storyboard

FPS = 24


CRF, PRESET = 28, "ultrafast"


SHOT_FRAMES = [(0, 40), (40, 100), (100, 118), (118, 130)]  # 130 frames = 5.4167 s


SONG_SECONDS = 5.42  # round(5.42 * 24) == 130


def make_board(energies: tuple[float, ...] = (0.2, 0.9, 0.4, 0.1)) -> Storyboard:
    shots = [
        Shot(
            index=i,
            start=s / FPS,
            end=e / FPS,
            start_frame=s,
            end_frame=e,
            request_seconds=4,
            section="verse",
            energy=energies[i],
            prompt=f"shot {i}",
        )
        for i, (s, e) in enumerate(SHOT_FRAMES)
    ]
    return Storyboard(fps=FPS, duration=SONG_SECONDS, total_frames=130, shots=shots)


def colour_clip(path: Path, colour: str, frames: int, size: str) -> Path:
    """A clip made the way the local renderer makes them: the shared H.264 args, an exact frame count."""
    media.run([
        "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=c={colour}:s={size}:r={FPS}",
        *media.h264_args(crf=CRF, preset=PRESET, fps=FPS), "-frames:v", str(frames), "-an", str(path),
    ])  # fmt: skip
    return path


def tone(path: Path, *, codec: str, sample_rate: int) -> Path:
    media.run([
        "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
        "-i", f"sine=frequency=330:sample_rate={sample_rate}:duration={SONG_SECONDS}",
        "-c:a", codec, "-b:a", "96k", str(path),
    ])  # fmt: skip
    return path


def subtitle_packets(video: Path) -> list[tuple[float, float]]:
    result = media.run([
        "ffprobe", "-v", "error", "-select_streams", "s:0", "-print_format", "json",
        "-show_entries", "packet=pts_time,duration_time,size", str(video),
    ], what="ffprobe")  # fmt: skip
    packets = json.loads(result.stdout)["packets"]
    # mov_text fills the gaps between cues with empty samples (2 bytes: a zero text length): not cues.
    return [
        (float(p["pts_time"]), float(p["pts_time"]) + float(p["duration_time"]))
        for p in packets
        if int(p["size"]) > 2
    ]
