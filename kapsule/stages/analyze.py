"""Notebook 01's stage: check the song, find its beat grid, sections and energy, time the lyrics."""

from __future__ import annotations

from typing import NamedTuple

from kapsule.infra.context import JobContext
from kapsule.job.artifacts import Analysis
from kapsule.song.probe import SongInfo, analyze_song, inspect_song
from kapsule.stages.files import time_lyrics, write_click_file


class Analyzed(NamedTuple):
    """What the analyze stage found: the song as intake sees it, and its analysis."""

    song: SongInfo
    analysis: Analysis


def run_analyze(ctx: JobContext) -> Analyzed:
    """Validate the input song, analyze it, and write ``work/analysis.json``."""
    ctx.report("analyze", 0.0, "checking the song")
    path = ctx.input_song()
    song = inspect_song(path, ctx.settings)
    ctx.report("analyze", 0.2, f"analyzing {song.duration:.1f} s of audio")
    analysis = analyze_song(path, ctx.params.hints())
    ctx.report("analyze", 0.8, "writing the click-track preview")
    write_click_file(ctx, path, analysis)
    if ctx.has_lyrics():
        ctx.report("analyze", 0.9, "timing the lyrics")
        time_lyrics(ctx, path, analysis.duration)
    # analysis.json goes last: its presence is what marks this stage done (the preview exists too).
    ctx.write_model(ctx.layout.analysis, analysis)
    ctx.report(
        "analyze",
        1.0,
        f"{analysis.tempo:.0f} BPM, {len(analysis.beats)} beats, {len(analysis.sections)} sections",
    )
    return Analyzed(song, analysis)
