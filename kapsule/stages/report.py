"""The tables and displays a reviewer reads in the stage notebooks.

Notebook presentation is kept out of the pipeline logic: ``stages.py`` runs a stage and writes its
outputs, this module only turns a job's records, models and files into small HTML/text tables and
IPython displays (the video player, an image). Nothing here writes to storage or the job record, so
changing how a notebook looks never touches how a job runs.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kapsule import media
from kapsule.infra.context import JobContext
from kapsule.job.artifacts import (
    FINISHED_SHOT_STATES,
    Analysis,
    Reading,
    ReadingKind,
    ShotManifest,
    Storyboard,
)

if TYPE_CHECKING:
    from kapsule.assembly.video import AssemblyResult
    from kapsule.lyrics import TimedLine
    from kapsule.song.probe import SongInfo


class Table:
    """A small table that renders as HTML in a notebook (and its HTML export) and as text elsewhere."""

    def __init__(self, rows: Iterable[dict[str, Any]], title: str = "") -> None:
        self.rows = list(rows)
        self.title = title
        self.columns: list[str] = []
        for row in self.rows:
            self.columns += [c for c in row if c not in self.columns]

    @staticmethod
    def _cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}".rstrip("0").rstrip(".") if value == value else ""
        return "" if value is None else str(value)

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>"
            + "".join(
                f"<td style='text-align:left'>{html.escape(self._cell(r.get(c)))}</td>" for c in self.columns
            )
            + "</tr>"
            for r in self.rows
        )
        caption = (
            f"<caption style='text-align:left'><b>{html.escape(self.title)}</b></caption>"
            if self.title
            else ""
        )
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        lines = [self.title] if self.title else []
        lines.append(" | ".join(self.columns))
        lines += [" | ".join(self._cell(r.get(c)) for c in self.columns) for r in self.rows]
        return "\n".join(lines)


def _kv(title: str, pairs: Sequence[tuple[str, Any]]) -> Table:
    return Table(({"": k, "value": v} for k, v in pairs), title)


def job_table(ctx: JobContext) -> Table:
    """The job record's headline fields, then every input this run uses (the reviewer's record of
    what ran: the pipeline injects only the job's id, and its inputs are its record's)."""
    r = ctx.record()
    pairs: list[tuple[str, Any]] = [
        ("job", r.id),
        ("state", r.state.value),
        ("stage", r.stage),
        ("progress", r.progress),
    ]
    pairs += [("message", r.message), ("storage", ctx.storage.url)]
    if r.error:
        pairs.append(("error", f"[{r.error.code}] {r.error.message}"))
    for name, value in ctx.params.model_dump(mode="json").items():
        pairs.append((name, ", ".join(value) if isinstance(value, list) else value))
    return _kv("Job", pairs)


def analysis_table(analysis: Analysis, info: SongInfo | None = None) -> Table:
    """What the analysis found, in the numbers a reviewer checks first."""
    bars = max(0, len(analysis.downbeats))
    pairs: list[tuple[str, Any]] = []
    if info is not None:
        pairs += [("file", f"{info.format_name} / {info.codec}, {info.sample_rate} Hz, {info.channels} ch")]
        pairs += [("peak", f"{info.peak_dbfs:.1f} dBFS")]
    pairs += [
        ("duration", f"{analysis.duration:.2f} s"),
        ("tempo", f"{analysis.tempo:.1f} BPM"),
        ("beats", len(analysis.beats)),
        ("downbeats (bars)", bars),
        ("meter", f"{analysis.beats_per_bar}/4"),
        ("sections", ", ".join(f"{s.label} {s.start:.1f}–{s.end:.1f}" for s in analysis.sections)),
        ("mean energy", f"{sum(analysis.energy.values) / max(1, len(analysis.energy.values)):.2f}"),
    ]
    return _kv("Analysis", pairs)


def shot_table(board: Storyboard, prompt_chars: int = 120) -> Table:
    """The storyboard: one row per shot, where it sits on the music and what it shows."""
    return Table(
        (
            {
                "#": s.number,
                "start": s.start,
                "end": s.end,
                "frames": s.frames,
                "asks (s)": s.request_seconds,
                "section": s.section,
                "energy": round(s.energy, 2),
                "prompt": s.prompt if len(s.prompt) <= prompt_chars else s.prompt[: prompt_chars - 1] + "…",
            }
            for s in board.shots
        ),
        f"{len(board.shots)} shots, {board.aspect_ratio} {board.resolution}, {board.fps} fps, "
        f"{board.video_model}",
    )


def lyrics_table(board: Storyboard, lines: Sequence[TimedLine]) -> Table:
    """The lyrics on the shot timeline: each shot, where it sits, and the lines sung during it."""
    rows = [
        {"#": s.number, "start": s.start, "end": s.end, "sung": " / ".join(s.lyrics) or "—"}
        for s in board.shots
    ]
    sung = sum(1 for s in board.shots if s.lyrics)
    title = f"{len(lines)} lyric lines over {sung} of {len(board.shots)} shots" if lines else "no lyrics"
    return Table(rows if lines else [], title)


def timed_lyrics_table(lines: Sequence[TimedLine]) -> Table:
    """The timed lyric lines with the aligner's confidence; unsure ones (listen to them, or give a
    timed LRC/SRT file) are marked and shown without a karaoke highlight in the video."""
    rows = [
        {
            "start": line.start,
            "end": line.end,
            "confidence": line.confidence,
            "placed": "sure" if line.sure else "UNSURE",
            "line": line.text,
        }
        for line in lines
    ]
    unsure = sum(1 for line in lines if not line.sure)
    title = f"{len(lines)} timed lyric lines, {unsure} unsure" if lines else "no lyrics"
    return Table(rows, title)


def caption_frame(ctx: JobContext, lines: Sequence[TimedLine], width: int = 640) -> Any:
    """A frame of the delivered video in the middle of the first lyric line: what burned captions
    look like. Grabbed with FFmpeg at the cue's time (no decoding of the whole video); the stage has
    already removed its local copy, so a remote video is fetched for the grab and removed again."""
    if not lines:
        return Table([], "no lyrics: no captions")
    line = lines[0]
    at = (line.start + line.end) / 2
    out = ctx.output_dir / "caption-frame.jpg"
    out.parent.mkdir(parents=True, exist_ok=True)
    video = ctx.delivery.local_path(ctx.layout.video)
    fetched = video is None
    if video is None:
        video = ctx.delivery.download_to(ctx.layout.video, ctx.workdir / "caption-frame-source.mp4")
    try:
        media.run(media.frame_at_cmd(video, at, out, width=width), timeout=60, what="grabbing a frame")
    finally:
        if fetched:
            video.unlink(missing_ok=True)
    print(f"{at:.2f} s: {line.text}")
    return show_image(out)


def cost_table(ctx: JobContext, board: Storyboard) -> Table:
    """What the storyboard will cost before anything is generated, and who wrote its prompts.

    Shown after the storyboard (and before generation) so a reviewer sees the bill, the budget and
    any prompt-writer fallback before paying for a single shot.
    """
    from kapsule.catalog.pricing import price_per_second
    from kapsule.generation import make_video_generator
    from kapsule.storyboard.cost import estimate_storyboard

    record = ctx.record()
    model = board.video_model
    generator = make_video_generator(ctx, model)
    total = estimate_storyboard(board, generator)
    new = estimate_storyboard(board, generator, exists=ctx.storage.exists, layout=ctx.layout)
    budget_usd = ctx.params.budget_usd
    pairs: list[tuple[str, Any]] = [("prompt writer", board.prompt_model)]
    if board.prompt_writer_note:
        pairs.append(("prompt writer note", board.prompt_writer_note))
    pairs += [
        (
            "video model",
            f"{model} (${price_per_second(model, ctx.settings, resolution=board.resolution):.2f}/s)",
        ),
        ("shots", f"{total.shots}, {total.video_seconds:.0f} s of video requested"),
        ("estimated cost", f"${total.total_usd:.2f}"),
        ("still to generate", f"{new.to_generate} shots, ${new.new_usd:.2f}"),
        ("spent so far", f"${record.cost.actual_usd:.2f}"),
        ("reserved (started, bill not known yet)", f"${record.cost.reserved_usd:.2f}"),
        ("budget", f"${budget_usd:.2f}" if budget_usd else "no cap"),
        ("prompt tokens", record.cost.prompt_tokens),
    ]
    if budget_usd and record.cost.committed_usd + new.new_usd > budget_usd + 1e-9:
        pairs.append(("warning", "over budget: the generate stage will refuse to start"))
    return _kv("Cost estimate", pairs)


def shot_status_table(board: Storyboard, manifest: ShotManifest) -> Table:
    """Per shot: state, generator, length, cost and anything the model refused."""
    rows = []
    for shot in board.shots:
        r = manifest.by_index(shot.index)
        rows.append(
            {
                "#": shot.number,
                "state": r.state if r else "missing",
                "generator": r.generator if r else "",
                "frames": f"{r.frames}/{shot.frames}" if r else f"0/{shot.frames}",
                "seconds": r.seconds if r else 0.0,
                "cost $": r.cost_usd if r else 0.0,
                "key": r.key if r else "",
                "refusals": "; ".join(r.refusals) if r else "",
                "note": r.note if r else "",
            }
        )
    done = sum(1 for row in rows if row["state"] in FINISHED_SHOT_STATES)
    fallback = sum(1 for row in rows if row["state"] == "fallback")
    cost = sum(r.cost_usd for r in manifest.shots)
    title = f"{done}/{len(rows)} shots finished, ${cost:.2f}"
    if fallback:
        title += f"; {fallback} refused and filled by the local renderer"
    return Table(rows, title)


def video_summary(video: Path | media.ProbeResult) -> Table:
    """ffprobe's view of a video (a file, or a probe kept after the file was deleted): container,
    streams, duration, frame rate."""
    p = video if isinstance(video, media.ProbeResult) else media.probe(Path(video))
    path = p.path
    pairs: list[tuple[str, Any]] = [
        ("container", p.format_name),
        ("duration", f"{(p.duration or 0):.3f} s"),
        ("size", f"{p.size / 1e6:.2f} MB"),
    ]
    for v in p.real_video:
        fps = float(v.frame_rate) if v.frame_rate else 0.0
        pairs.append(
            (
                f"video #{v.index}",
                f"{v.codec} {v.width}x{v.height} {v.pix_fmt} {fps:g} fps, {v.frames} frames",
            )
        )
    for a in p.audio:
        pairs.append((f"audio #{a.index}", f"{a.codec} {a.sample_rate} Hz, {a.channels} ch"))
    return _kv(Path(path).name, pairs)


def loudness_table(ctx: JobContext) -> Table:
    """EBU R128 readout of the song as uploaded: analysis only, the video carries the song unchanged.

    Integrated loudness near -14 LUFS is what streaming services play at; a true peak above -1 dBTP
    may clip once a platform re-encodes the audio. Kapsule never normalizes: the mix is the artist's.
    """
    reading = media.loudness(ctx.input_song(), timeout=ctx.settings.ffmpeg_timeout_s)
    return _kv(
        "Loudness (EBU R128, the song as uploaded)",
        [
            ("integrated", f"{reading.integrated_lufs:.1f} LUFS"),
            ("loudness range", f"{reading.range_lu:.1f} LU"),
            ("true peak", f"{reading.true_peak_dbtp:.1f} dBTP"),
        ],
    )


def assembly_table(result: AssemblyResult) -> Table:
    """How the final cut was made: length, frames, and whether video/audio were stream-copied."""
    return _kv(
        "Assembly",
        [
            ("video", str(result.video)),
            ("duration", f"{result.duration:.3f} s"),
            ("frames", result.frames),
            ("video stream-copied", result.copied_video),
            ("audio stream-copied", result.audio_copied),
            ("took", f"{result.seconds_taken:.1f} s"),
        ],
    )


READING_NAMES = {
    "half_tempo": "half the tempo",
    "double_tempo": "double the tempo",
    "other_meter": "another number of beats per bar",
    "shifted_downbeat": "the bar line one beat later",
}


def how_to_choose(reading: Reading) -> str:
    """The command that makes a runner-up reading the grid (the studio's buttons do the same)."""
    return {
        "half_tempo": "kapsule regrid JOB_ID --tempo half",
        "double_tempo": "kapsule regrid JOB_ID --tempo double",
        "other_meter": f"kapsule regrid JOB_ID --beats-per-bar {reading.beats_per_bar}",
        "shifted_downbeat": "kapsule regrid JOB_ID --shift 1",
    }[reading.kind]


def readings_table(analysis: Analysis) -> Table:
    """How sure the analysis is of its beat grid, and the readings it weighed against it.

    A plausibility near 1 means the runner-up is almost as likely as the chosen grid: the storyboard
    then cuts only on the beats both share, and the musician can hear the grid (the click track)
    and fix it (``--bpm``, ``--beats-per-bar``, ``--downbeat``, or the studio's double/half/shift).
    """
    rows: list[dict[str, Any]] = [
        {
            "reading": "chosen" + (" (from your hints)" if analysis.hints is not None else ""),
            "plausibility": f"confidence {analysis.confidence:.2f}",
            "tempo": f"{analysis.tempo:.1f} BPM",
            "beats per bar": analysis.beats_per_bar,
        }
    ]
    for alt in analysis.alternatives:
        rows.append(
            {
                "reading": READING_NAMES.get(alt.kind, alt.kind),
                "plausibility": f"{alt.plausibility:.2f}",
                "tempo": f"{alt.tempo:.1f} BPM",
                "beats per bar": alt.beats_per_bar,
            }
        )
    return Table(rows, "Beat grid: the chosen reading and its runners-up")


def click_player(ctx: JobContext, analysis: Analysis | None = None) -> Any:
    """The click-track preview as a player embedded in the notebook (so its HTML plays it anywhere);
    when ``analysis`` is unsure (``close_call``), the runner-up reading's preview beside it, each
    with its tempo and meter, and what to give to choose it."""
    import base64

    from IPython.display import HTML

    from kapsule.stages.files import reading_click

    def player(reading: ReadingKind | None) -> str:
        data = base64.b64encode(reading_click(ctx, reading)).decode()
        return f'<audio controls preload="none" src="data:audio/mp4;base64,{data}"></audio>'

    if analysis is None or analysis.close_call is None:
        return HTML(player(None))  # type: ignore[no-untyped-call]  # IPython: unannotated
    runner_up = next(r for r in analysis.alternatives if r.kind == analysis.close_call)
    rows = [
        ("the chosen grid", analysis.tempo, analysis.beats_per_bar, player(None)),
        (
            READING_NAMES.get(runner_up.kind, runner_up.kind),
            runner_up.tempo,
            runner_up.beats_per_bar,
            player(runner_up.kind),
        ),
    ]
    lines = [
        f"<p><b>The analysis is unsure</b> between the chosen grid and {html.escape(rows[1][0])} "
        f"(plausibility {runner_up.plausibility:.2f}): listen to both. Until you choose, the "
        "storyboard cuts only on the beats both share. To choose the other one: "
        f"<code>{html.escape(how_to_choose(runner_up))}</code>.</p>"
    ]
    for name, tempo, per_bar, tag in rows:
        lines.append(f"<p>{html.escape(name)}: {tempo:.1f} BPM, {per_bar} beats per bar<br>{tag}</p>")
    return HTML("\n".join(lines))  # type: ignore[no-untyped-call]  # IPython: unannotated


def video_src(ctx: JobContext) -> str:
    """Where the stored notebook finds the delivered video.

    The executed notebook is kept at ``jobs/{id}/notebooks/``; when the video is delivered to the
    same store it sits at ``../output/video.mp4`` from there, so the saved HTML plays it wherever the
    job folder is served from. A separate delivery store is named by its URL.
    """
    if ctx.delivery is ctx.storage:
        return "../output/video.mp4"
    return f"{ctx.delivery.url.rstrip('/')}/{ctx.layout.video}"


def show_video(ctx: JobContext, width: int = 640) -> Any:
    """The final video as a player (linked, not embedded: notebooks stay small), its poster inline.

    The poster is embedded so the notebook shows the video's look even where the link cannot be
    followed (a notebook opened outside the job folder).
    """
    import base64

    from IPython.display import Video

    attributes = 'controls preload="none"'
    poster = ctx.output_dir / "poster.jpg"
    if poster.is_file():
        attributes += f' poster="data:image/jpeg;base64,{base64.b64encode(poster.read_bytes()).decode()}"'
    # IPython.display's constructors are unannotated.
    video = Video(  # type: ignore[no-untyped-call]
        url=video_src(ctx), embed=False, width=width, html_attributes=attributes
    )
    return video


def show_image(path: Path, width: int | None = None) -> Any:
    from IPython.display import Image

    return Image(filename=str(path), width=width)  # type: ignore[no-untyped-call]  # IPython: unannotated
