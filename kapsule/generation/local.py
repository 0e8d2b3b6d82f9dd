"""The local audio-reactive renderer: the stand-in for Veo that needs no account and costs nothing.

Each shot becomes a procedural animation (one of eight motifs, in one of nine colour palettes) chosen
from a hash of its prompt, its section and its seed, with words in the prompt ("tunnel", "stars",
"sunset"…) steering the choice. The music drives it: motion speed and brightness follow the song's
energy inside the shot, every beat gives a flash and a zoom punch, a downbeat a stronger one.

Why it looks like this: the clip is the first thing a newcomer sees, so it must look intentional,
and it must be fast (well under the shot's own duration on two cores). Frames are therefore drawn
small (e.g. 384x216) with vectorised float32 numpy on precomputed coordinate grids, mapped through a
colour look-up table, and FFmpeg upscales them in the same encode. Smooth procedural images lose
nothing visible in a bicubic upscale. Every clip uses ``media.h264_args`` and has exactly
``shot.frames`` frames, so assembly can join the clips with the concat demuxer without re-encoding.

Where things live: ``local_look`` chooses the look from the prompt and samples the music on the
shot's frames, ``local_draw`` draws the motifs, and this module is the ``VideoGenerator`` that plans
the clip (with ``media``'s dissolve rule, the one the storyboard and assembly use) and encodes it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from kapsule import media
from kapsule.core.errors import InvalidParameter
from kapsule.core.settings import Settings
from kapsule.generation.local_draw import MOTIFS as MOTIFS
from kapsule.generation.local_draw import render_frames as render_frames
from kapsule.generation.local_draw import render_size as render_size
from kapsule.generation.local_look import MOTIF_WORDS as MOTIF_WORDS
from kapsule.generation.local_look import PALETTE_WORDS as PALETTE_WORDS
from kapsule.generation.local_look import PALETTES as PALETTES
from kapsule.generation.local_look import choose_look as choose_look
from kapsule.generation.local_look import music_track as music_track
from kapsule.job.artifacts import Analysis, Shot, ShotRequest, ShotResult, Storyboard, frame_size


class LocalRenderer:
    """``VideoGenerator`` that draws audio-reactive procedural clips on this machine, for free."""

    name = "local"
    exact_length = True
    # Measured on 2 cores (6 shots x 4 s at 720p): a shot costs the same CPU either way (~0.64 CPU-s
    # per second of video, ~90 % of it x264), but one worker keeps only ~1.55 cores busy (the encoder
    # waits on the Python drawing and vice versa) while two keep ~1.95 busy: 0.40x vs 0.33x of the
    # video's duration on a quiet machine, and two won 8 of 11 paired runs.
    max_workers = 2

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.should_stop: Callable[[], bool] | None = None  # a shot is drawn without waiting: unused

    def request_for(self, shot: Shot, board: Storyboard) -> ShotRequest:
        wanted = dict(zip((s.index for s in board.shots), media.clip_frames_wanted(board), strict=True))
        frames = wanted.get(shot.index, shot.frames)
        lead = media.crossfade_half_frames(board) if board.shots and shot.index != board.shots[0].index else 0
        # The section is not a request field: it is a function of ``start`` on this job's song.
        return ShotRequest(
            model=self.name,
            prompt=shot.prompt,
            negative_prompt=shot.negative_prompt,
            seed=shot.seed,
            aspect_ratio=board.aspect_ratio,
            resolution=board.resolution,
            seconds=shot.request_seconds,
            fps=board.fps,
            # With dissolves the clip starts before its cut and runs on past it by the handles, and
            # its motion must still land on the beats it plays over.
            start=shot.start - lead / board.fps,
            frames=frames,
        )

    def estimate_cost_usd(self, request: ShotRequest) -> float:
        return 0.0

    def generate(self, request: ShotRequest, shot: Shot, analysis: Analysis, dest: Path) -> ShotResult:
        frames = request.frames or shot.frames
        if frames <= 0:
            raise InvalidParameter(f"shot {shot.number} has no frames ({shot.start:.3f}–{shot.end:.3f} s)")
        if request.fps <= 0:
            raise InvalidParameter(f"frame rate must be positive, got {request.fps}")
        width, height = frame_size(request.aspect_ratio, request.resolution)
        src_w, src_h = render_size(request.aspect_ratio, request.resolution)
        look = choose_look(request.prompt, shot.section, request.seed)
        track = music_track(analysis, request.start, frames, request.fps, look.speed)

        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".tmp-{os.getpid()}-{dest.name}")
        cmd = media.raw_video_encode_cmd(
            tmp,
            src_width=src_w,
            src_height=src_h,
            width=width,
            height=height,
            fps=request.fps,
            crf=self.settings.video_crf,
            preset=self.settings.video_preset,
            frames=frames,
            threads=self.settings.ffmpeg_threads,
        )
        try:
            with media.RawVideoWriter(cmd, timeout=self.settings.ffmpeg_timeout_s) as writer:
                for image in render_frames(look, track, src_w, src_h):
                    writer.write(image)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return ShotResult(
            index=shot.index,
            key=request.key(),
            file=str(dest),
            state="done",
            generator=self.name,
            cost_usd=0.0,
            seconds=frames / request.fps,
            frames=frames,
            exact_length=True,
            note=f"local {look.motif} / {look.palette}",
        )
