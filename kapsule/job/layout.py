"""Every storage key of a job, derived from its id (ARCHITECTURE.md, "Storage keys").

No path anywhere is built from user text: the job id is validated, shot keys are hashes we compute,
and the upload's extension comes from what ffprobe found, not from the uploaded file's name.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapsule.core.errors import BadJobId, InvalidParameter, UnknownNotebook
from kapsule.job.artifacts import ReadingKind
from kapsule.job.record import is_valid_job_id

NOTEBOOK_NAMES = ("01_analyze", "02_storyboard", "03_generate", "04_assemble")
LYRICS_EXTENSIONS = ("lrc", "srt", "vtt", "txt")
IMAGE_EXTENSIONS = ("png", "jpg", "webp")


@dataclass(frozen=True)
class JobLayout:
    """Storage keys (relative, '/'-separated) of one job's files."""

    job_id: str

    def __post_init__(self) -> None:
        if not is_valid_job_id(self.job_id):
            raise BadJobId(f"not a Kapsule job id: {self.job_id[:40]!r}")

    @property
    def root(self) -> str:
        return f"jobs/{self.job_id}"

    def input_song(self, ext: str) -> str:
        if not ext.isalnum() or len(ext) > 5:
            raise InvalidParameter(f"bad audio extension {ext!r}")
        return f"{self.root}/input/song.{ext}"

    def input_lyrics(self, ext: str) -> str:
        """The lyrics as the user gave them (``ext``: the format the parser recognised)."""
        if ext not in LYRICS_EXTENSIONS:
            raise InvalidParameter(f"bad lyrics extension {ext!r}")
        return f"{self.root}/input/lyrics.{ext}"

    @property
    def input_prefix(self) -> str:
        return f"{self.root}/input/"

    @property
    def references_prefix(self) -> str:
        """The user's reference images, ``NN.ext`` in the order given (see ``reference_image``)."""
        return f"{self.input_prefix}refs/"

    def reference_image(self, index: int, ext: str) -> str:
        """Reference image ``index`` (0-based), named by its position and checked type, never by the
        user's file name."""
        if ext not in IMAGE_EXTENSIONS or not 0 <= index < 100:
            raise InvalidParameter(f"bad reference image {index} .{ext}")
        return f"{self.references_prefix}{index:02d}.{ext}"

    @property
    def analysis(self) -> str:
        return f"{self.root}/work/analysis.json"

    @property
    def lyrics(self) -> str:
        """The timed lines (``[{start, end, text, words}]``), written by the analyze stage."""
        return f"{self.root}/work/lyrics.json"

    @property
    def storyboard(self) -> str:
        return f"{self.root}/work/storyboard.json"

    @property
    def click_preview(self) -> str:
        """The song with a click on every beat (accented on downbeats): check the grid by ear."""
        return f"{self.root}/work/click_preview.m4a"

    def reading_click_preview(self, reading: ReadingKind, grid: str) -> str:
        """The song with the clicks of a runner-up reading of the grid (half tempo, …), to compare;
        ``grid`` is a hash of that reading's beats, so a re-planned grid never plays an old file."""
        if not grid.isalnum():
            raise InvalidParameter(f"bad grid key {grid!r}")
        return f"{self.root}/work/click_preview-{reading}-{grid}.m4a"

    @property
    def shots_prefix(self) -> str:
        return f"{self.root}/work/shots/"

    def shot(self, index: int, key: str) -> str:
        if not key.isalnum():
            raise InvalidParameter(f"bad shot key {key!r}")
        return f"{self.shots_prefix}{index:03d}-{key}.mp4"

    @property
    def manifest(self) -> str:
        return f"{self.shots_prefix}manifest.json"

    def notebook(self, name: str, suffix: str = "ipynb") -> str:
        if name not in NOTEBOOK_NAMES:
            raise UnknownNotebook(f"unknown notebook {name!r}")
        return f"{self.root}/notebooks/{name}.{suffix}"

    @property
    def video(self) -> str:
        return f"{self.root}/output/video.mp4"

    def captions(self, ext: str) -> str:
        """The delivered caption files, beside the video: ``srt`` and ``vtt``."""
        if ext not in ("srt", "vtt"):
            raise InvalidParameter(f"bad captions extension {ext!r}")
        return f"{self.root}/output/video.{ext}"

    @property
    def poster(self) -> str:
        return f"{self.root}/output/poster.jpg"

    @property
    def contact_sheet(self) -> str:
        return f"{self.root}/output/contact-sheet.jpg"
