"""``--lyrics FILE`` for ``kapsule make`` and the ``kapsule lyrics`` command (time lyrics to a song).

Kept out of ``kapsule.cli.main`` so that module stays small; ``kapsule.cli.main`` registers the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kapsule.control.submission import LyricsFile
from kapsule.core.errors import InputFileMissing, KapsuleError
from kapsule.core.settings import get_settings
from kapsule.job.params import parse_options
from kapsule.song.intake import LocalSong

LyricsOpt = Annotated[
    Path | None,
    typer.Option(
        "--lyrics",
        help="The song's lyrics: LRC (line or word timed), SRT, VTT or plain text (one line per sung "
        "line, blank lines between verses; timed to the song).",
    ),
]

EXIT_BAD_INPUT = 2


def read_lyrics_file(path: Path | None) -> LyricsFile | None:
    """The lyrics file (the job service checks it), or None without ``--lyrics``."""
    if path is None:
        return None
    if not path.is_file():
        raise InputFileMissing(f"there is no lyrics file at {path}")
    return LyricsFile(path.name, path.read_bytes())


def lyrics_command(
    song: Annotated[Path, typer.Argument(help="The song the lyrics are sung in.")],
    lyrics: Annotated[Path, typer.Option("--lyrics", help="LRC, SRT, VTT or plain-text lyrics.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print [{start, end, text, words, confidence, sure}] as JSON.")
    ] = False,
    aligner: Annotated[
        str, typer.Option("--lyrics-aligner", help="auto, offline or gemini (for plain text).")
    ] = "auto",
) -> None:
    """Time LYRICS to SONG: timed files as they are, plain text aligned; prints the timed lines."""
    from kapsule.lyrics import lines_to_json, load_lyrics, resolve_aligner

    try:
        settings = get_settings()
        options = parse_options({"lyrics_aligner": aligner})
        info = LocalSong(song).inspect(settings)
        given = read_lyrics_file(lyrics)
        assert given is not None
        lines = load_lyrics(
            given.data,
            song_seconds=info.duration,
            song=song,
            aligner=resolve_aligner(options.lyrics_aligner, settings.prompt_model),
            settings=settings,
        )
    except KapsuleError as exc:
        typer.echo(f"error [{exc.code}]: {exc.message}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if as_json:
        typer.echo(lines_to_json(lines))
    else:
        for line in lines:  # an unsure line (the aligner may have misplaced it) is marked "?"
            typer.echo(f"{line.start:8.2f} {line.end:8.2f} {' ' if line.sure else '?'} {line.text}")
