"""``JobParams``: every input of a job, with its allowed values and limits declared once.

Why one model: the CLI's options, the API's request body, the notebooks' parameter cells and the
stage functions all used to spell a job's inputs on their own, and they drifted (the API could not
set a transition, and skipped the model checks the CLI made). Now each of them is derived from the
fields below: ``cli`` builds its options from ``model_fields``, ``api`` builds its request model
from them, ``notebooks/_build.py`` writes them into each notebook's parameters cell, and the stages
read ``ctx.params``. A new job input is one new field here, with a description; a test walks the
fields and checks that each is reachable from both the CLI and the API.

What is *not* here: what the job learns or decides while it runs (timings, approval, prompt edits,
the upload it came from, its trace header; typed fields of the job record, ``job.record``), and where
its files are stored (the layout derives every key from the job id, ``job.layout``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kapsule.core.errors import InvalidParameter
from kapsule.core.text import StorableText
from kapsule.job.artifacts import AnalysisHints, AspectRatio, Resolution, Transition

Continuity = Literal["none", "last_frame"]
CaptionsMode = Literal["auto", "burned", "soft", "both", "none"]
LyricsAligner = Literal["auto", "offline", "gemini"]

MAX_PROMPT_CHARS = 2000
MAX_SHOTS = 150  # a 10-minute song (the longest accepted by default) in 4 s shots
MAX_JOB_SEED = 2**31 - 1  # a shot's own seed is derived from it (MAX_SHOT_SEED, job.artifacts)
MAX_BUDGET_USD = 10_000.0
MAX_REFERENCE_IMAGES = 3  # the form's bound; the catalog's per-model limit is equal (a test checks)
MAX_LYRICS_BYTES = 256 * 1024  # a 10-minute song's word-timed LRC is ~30 KB; more is not lyrics
MODEL_ID_PATTERN = r"^$|^[a-z0-9][\w.-]{0,63}$"

ModelId = Annotated[str, Field(pattern=MODEL_ID_PATTERN)]


class JobOptions(BaseModel):
    """The job inputs a user gives as values (every ``JobParams`` field but the files).

    The API's request body extends this class (adding the uploads that carry the files) and the CLI
    builds one option per field of it, so both accept exactly the same values with the same limits.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: StorableText = Field(
        "", max_length=MAX_PROMPT_CHARS, description="What the video shows; empty lets the writer choose."
    )
    style: StorableText = Field(
        "", max_length=MAX_PROMPT_CHARS, description="Look and feel, e.g. 'grainy 16 mm, neon'."
    )
    aspect_ratio: AspectRatio = Field("16:9", description="16:9, 9:16 (phones) or 1:1.")
    resolution: Resolution = Field(
        "720p", description="720p, 1080p, or 4k (only with a Veo model that makes 4k: Veo 3.1 and 3.1 Fast)."
    )
    max_shots: int = Field(
        0, ge=0, le=MAX_SHOTS, description="Most shots the video may have (0: as many as the music asks)."
    )
    seed: int = Field(0, ge=0, le=MAX_JOB_SEED, description="Same seed, same storyboard and shots.")
    transition: Transition = Field(
        "cut", description="'cut' (hard cuts on the beat) or 'crossfade' (0.5 s dissolves on the cuts)."
    )
    video_model: ModelId = Field(
        "", description="'local' renderer or a Veo model id (empty: the deployment's KAPSULE_VIDEO_MODEL)."
    )
    prompt_model: ModelId = Field(
        "", description="'local' writer or a Gemini model id (empty: the deployment's KAPSULE_PROMPT_MODEL)."
    )
    budget_usd: float = Field(
        0.0, ge=0.0, le=MAX_BUDGET_USD, description="Most the job may spend on video, in USD (0: no cap)."
    )
    continuity: Continuity = Field(
        "none",
        description="'none' (shots in parallel) or 'last_frame': each shot starts from the previous "
        "one's last frame (Veo image-to-video; shots then run one at a time).",
    )
    review: bool = Field(
        False, description="Stop after the storyboard (prompts, lengths, cost) until approved."
    )
    # The musician's hints for the beat grid: the analysis keeps them and refines only local timing.
    bpm: float | None = Field(
        None, ge=30.0, le=300.0, description="Tempo of the beat in BPM, if you know it (empty: detect)."
    )
    beats_per_bar: int | None = Field(
        None,
        ge=2,
        le=12,
        description="Beats in one bar: 3 for a waltz, 4 for most songs; 6/8 and 12/8 count 2 and 4.",
    )
    downbeat: float | None = Field(
        None, ge=0.0, le=3600.0, description="Time in seconds of any bar line (a '1') in the song."
    )
    captions: CaptionsMode = Field(
        "auto",
        description="Lyric captions: 'burned' into the frames (karaoke highlight where words are timed), "
        "'soft' (a subtitle track plus .srt/.vtt files), 'both', or 'none'; 'auto' is 'both' when "
        "lyrics are given, else 'none'.",
    )
    lyrics_aligner: LyricsAligner = Field(
        "auto",
        description="How plain-text lyrics are timed to the song: 'offline' (no network, no model "
        "download), 'gemini' (Gemini listens to the song; checked against its singing, offline "
        "fallback) or 'auto' (Gemini when the prompt model is a Gemini model). Timed LRC/SRT/VTT "
        "files are used as they are.",
    )

    def hints(self) -> AnalysisHints | None:
        """The beat-grid hints as the analysis takes them, or None when the musician gave none."""
        hints = AnalysisHints(bpm=self.bpm, beats_per_bar=self.beats_per_bar, downbeat=self.downbeat)
        return hints if hints.given() else None


class JobParams(JobOptions):
    """Everything a user decides about one job. Frozen: a job's inputs never change once submitted."""

    song: str = Field(
        "",
        max_length=255,
        description="The song's file name as the user gave it (shown in lists, names the downloaded MP4). "
        "The audio itself is the job's input/song.* file, checked by its content.",
    )
    reference_images: tuple[Annotated[str, Field(max_length=255)], ...] = Field(
        (),
        max_length=MAX_REFERENCE_IMAGES,
        description="A character, product or cover kept the same across shots (Veo 3.1): the images' file "
        "names as the user gave them. The images themselves are the job's input/refs/ files.",
    )
    lyrics: str = Field(
        "",
        max_length=255,
        description="The song's lyrics: the name of the LRC (line- or word-timed), SRT, VTT or plain-text "
        "file the user gave, or 'pasted' for pasted text (aligned to the song); empty: none. The text "
        "itself is the job's input/lyrics.* file.",
    )


FILE_FIELDS = frozenset(JobParams.model_fields) - frozenset(JobOptions.model_fields)
"""Fields a user fills with files (a path on the CLI, an upload on the API), not with values."""


def validation_message(exc: ValidationError) -> str:
    """One readable line for a pydantic error: the same words from the CLI, the API and a notebook."""
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "the job's parameters are not valid"


def parse_options(values: dict[str, Any]) -> JobOptions:
    """``JobOptions`` (what an entry point's options hold) from plain values, or ``InvalidParameter``."""
    try:
        return JobOptions.model_validate(values)
    except ValidationError as exc:
        raise InvalidParameter(validation_message(exc)) from None


def parse_params(values: dict[str, Any]) -> JobParams:
    """``JobParams`` from plain values, or ``InvalidParameter`` with a readable message."""
    try:
        return JobParams.model_validate(values)
    except ValidationError as exc:
        raise InvalidParameter(validation_message(exc)) from None
