"""Writes the four pipeline notebooks from the cell sources below, without outputs.

The notebooks are code that runs in production (papermill executes them for every job), so they are
generated from this file and reviewed as code: change a cell here, run
``.venv/bin/python notebooks/_build.py``, and commit both. ``--check`` exits 1 if a committed notebook
differs from what this file would write (the test suite runs it).

Every notebook has the same shape: a tagged ``parameters`` cell (papermill injects the job's id after
it; a job's inputs come from its record, so the cell's values only serve a run by hand), a ``setup``
cell that opens the job and shows its inputs, one ``stage`` cell doing the stage's work, then cells
showing what a reviewer wants to see. The tags let the pipeline split a notebook's time into setup,
the stage's own work and the rest.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat

from kapsule.job.params import JobOptions
from kapsule.stages import STAGE_NOTEBOOKS

HERE = Path(__file__).resolve().parent

SETUP = """\
from kapsule import stages
from kapsule.core.settings import Settings
from kapsule.job.params import JobOptions
from kapsule.stages import {modules}

# The KAPSULE_* environment: the pipeline hands a kernel the deployment's settings this way.
settings = Settings()
if job_id:  # a job the pipeline runs: its inputs are its record's, read once
    ctx = stages.open_job(settings, job_id)
else:  # a run by hand: the demo song, with the values of the parameters cell
    ctx = stages.open_demo_job(settings, JobOptions(
{fields}
    ))
stages.prepare(ctx, "{stage}")
report.job_table(ctx)"""

Cell = tuple[str, str, str]  # (cell type, tag, source); tag "" for cells that only show things


def md(text: str) -> Cell:
    return ("markdown", "", textwrap.dedent(text).strip())


def code(source: str, tag: str = "") -> Cell:
    return ("code", tag, textwrap.dedent(source).strip())


CELLS: dict[str, list[Cell]] = {
    "analyze": [
        md("""
            # 01 · Analyze

            Checks that the job's song is usable audio, then finds its tempo, beats, downbeats, sections
            and energy. Writes `work/analysis.json`, which every later stage reads.
        """),
        code(
            """
            song, analysis = stages.run_analyze(ctx)
            report.analysis_table(analysis, song)
        """,
            tag="stage",
        ),
        md("""
            ## Waveform, beats and sections

            Thin blue lines are beats, thick red lines downbeats (the first beat of a bar); shaded bands
            are the sections. Cuts will land on these lines.
        """),
        code("""
            samples = plots.song_samples(ctx)
            plots.plot_waveform(analysis, samples)
        """),
        md("""
            ## Energy

            Louder, denser passages get shorter, more intense shots.
        """),
        code("plots.plot_energy(analysis)"),
        md("""
            ## Check the beat grid by ear

            The song with a click on every beat and a higher click on every bar line: the grid the
            cuts will land on. If it is off (double or half speed, the bar line on the wrong beat),
            give hints (`bpm`, `beats_per_bar`, `downbeat`) or use double / half / shift in the studio.
            Where the runner-up reading is close (the analysis's `close_call`), both readings play
            here side by side: choose one by ear (the command is shown). Until you do, the storyboard
            cuts only on the beats they share. Every reading weighed is listed below.
        """),
        code("report.click_player(ctx, analysis)"),
        code("report.readings_table(analysis)"),
        md("""
            ## Timed lyrics

            Each lyric line where the aligner placed it, with its confidence. An UNSURE line may be
            misplaced: listen to it, or give a timed LRC/SRT file. Burned karaoke shows unsure lines
            whole, without a word highlight.
        """),
        code("report.timed_lyrics_table(stages.load_lyrics_lines(ctx))"),
    ],
    "storyboard": [
        md("""
            # 02 · Storyboard

            Places a cut on the music for every shot (on beats, mostly downbeats, shorter when the energy
            is high) and writes a prompt per shot. Writes `work/storyboard.json`.
        """),
        code(
            """
            board = stages.run_storyboard(ctx)
            report.shot_table(board)
        """,
            tag="stage",
        ),
        md("## Lyrics on the shot timeline"),
        code("report.lyrics_table(board, stages.load_lyrics_lines(ctx))"),
        md("""
            ## Shot timeline

            Each coloured bar is a shot and each black line a cut, over the song's waveform; the purple
            bars along the bottom are the sung lines, so you see which words each shot carries.
        """),
        code("""
            analysis = stages.load_analysis(ctx)
            lines = [(line.start, line.end, line.text) for line in stages.load_lyrics_lines(ctx)]
            plots.plot_shots(board, analysis, plots.song_samples(ctx), lyrics=lines)
        """),
        md("""
            ## Cost estimate

            What generating these shots will cost at list price, before anything is requested. Clips
            already in storage cost nothing again. If the prompt writer fell back to the local one,
            the reason is shown here.
        """),
        code("report.cost_table(ctx, board)"),
    ],
    "generate": [
        md("""
            # 03 · Generate

            Renders every shot of the storyboard. A shot whose clip is already in storage (same request,
            same key) is not generated again, so a retry never pays twice. Writes `work/shots/*.mp4` and
            `work/shots/manifest.json`.
        """),
        code(
            """
            manifest = stages.run_generate(ctx)
            report.shot_status_table(stages.load_storyboard(ctx), manifest)
        """,
            tag="stage",
        ),
        md("""
            ## Shots and cost

            Per shot: whether it came from the video model (`done`) or was refused by its safety
            filter and filled by the local renderer (`fallback`, with the refusal reasons), and what
            it cost. Below, the job's estimate and spending so far.
        """),
        code("report.cost_table(ctx, stages.load_storyboard(ctx))"),
        md("""
            ## Contact sheet

            One frame from the middle of each shot.
        """),
        code('report.show_image(ctx.output_dir / "contact-sheet.jpg")'),
    ],
    "assemble": [
        md("""
            # 04 · Assemble

            Cuts the clips onto the song frame-exactly and muxes the audio. Delivers `output/video.mp4`
            (H.264 + AAC, faststart) with a poster and a contact sheet.
        """),
        code(
            """
            result = stages.run_assemble(ctx)
            report.assembly_table(result)
        """,
            tag="stage",
        ),
        md("## The video"),
        code("report.show_video(ctx)"),
        md("## Captions (a frame in the first lyric line)"),
        code("report.caption_frame(ctx, stages.load_lyrics_lines(ctx))"),
        md("## ffprobe"),
        code("report.video_summary(result.probe or result.video)"),
        md("""
            ## Loudness

            EBU R128 measured on the song as uploaded. Nothing is normalized: the video carries the
            song's own audio (copied when it is AAC, else AAC 256 kb/s), so this is the mix as released.
        """),
        code("report.loudness_table(ctx)"),
    ],
}


def parameters_source() -> str:
    """The tagged parameters cell: the job's id, then every value a user gives (``JobOptions``), each
    with its default and meaning. papermill injects only ``job_id``; the values are for a run by hand."""
    lines = [
        "# job_id: the job to run (the pipeline injects it; its inputs then come from its record).",
        "# Empty: the bundled demo song, with the values below (change them and run by hand).",
        "job_id = ''",
    ]
    for name, field in JobOptions.model_fields.items():
        lines.append(f"{name} = {field.default!r}  # {field.description}")
    return "\n".join(lines)


def setup_source(stage: str) -> str:
    fields = "\n".join(f"        {name}={name}," for name in JobOptions.model_fields)
    return SETUP.format(stage=stage, modules=setup_modules(stage), fields=fields)


def setup_modules(stage: str) -> str:
    """The library modules the setup cell imports: ``plots`` only where a cell draws one."""
    modules = ["report"]
    if any(kind == "code" and "plots." in src for kind, _, src in CELLS[stage]):
        modules.insert(0, "plots")
    return ", ".join(modules)


def _cell(kind: str, source: str, tag: str, cell_id: str) -> nbformat.NotebookNode:
    make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
    cell = make(source)
    cell.id = cell_id
    if tag:
        cell.metadata["tags"] = [tag]
    return cell


def build(stage: str) -> nbformat.NotebookNode:
    name = STAGE_NOTEBOOKS[stage]
    title, *rest = CELLS[stage]
    specs = [
        title,
        ("code", "parameters", parameters_source()),
        ("code", "setup", setup_source(stage)),
        *rest,
    ]
    nb = nbformat.v4.new_notebook()
    # Stable cell ids: rebuilding an unchanged notebook changes no byte.
    nb.cells = [_cell(kind, src, tag, f"{name[:2]}-{i:02d}") for i, (kind, tag, src) in enumerate(specs)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    return nb


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for stage, name in STAGE_NOTEBOOKS.items():
        path = HERE / f"{name}.ipynb"
        text = nbformat.writes(build(stage)) + "\n"
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parent)}")
    if stale:
        print(f"out of date (run python notebooks/_build.py): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
