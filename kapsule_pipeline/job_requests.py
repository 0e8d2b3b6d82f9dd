"""What the entry points hand the job service: a submission, a beat-grid fix, and the model check.

Kept apart from ``service`` so each stays small; the service re-exports them, and the CLI and the API
build these objects from their options and request bodies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kapsule_pipeline.errors import KapsuleError, UnknownModel
from kapsule_pipeline.generation.references import ReferenceImage
from kapsule_pipeline.intake import SongSource
from kapsule_pipeline.params import JobParams
from kapsule_pipeline.settings import Settings


def check_models(params: JobParams, settings: Settings) -> None:
    """Refuse a model this deployment does not know or cannot use, before any job exists.

    Only names, prices and credentials are looked at (no client, no request), so a typo in
    ``--video-model`` is one line at submission instead of a failed job minutes later.
    """
    from kapsule_pipeline.genai_client import genai_mode
    from kapsule_pipeline.pricing import price_per_second

    video, prompt = params.video_model, params.prompt_model
    if video != "local":
        if not video.startswith("veo-"):
            raise UnknownModel(
                f"video model {video!r} is not one Kapsule knows: use 'local' or a Veo model id"
            )
        try:
            price_per_second(video, settings)
        except KapsuleError as exc:
            raise UnknownModel(f"video model {video!r} cannot be used here: {exc.message}") from None
    if prompt != "local" and not prompt.startswith("gemini-"):
        raise UnknownModel(
            f"prompt model {prompt!r} is not one Kapsule knows: use 'local' or a Gemini model id"
        )
    models = {video, prompt} - {"local"}
    if params.lyrics_aligner == "gemini":  # asked for by name: refused here, not silently offline later
        models.add("the Gemini lyrics aligner")
    for model in models:
        try:
            genai_mode(settings)
        except KapsuleError as exc:
            raise UnknownModel(f"{model} cannot be used on this deployment: {exc.message}") from None


def request_hash(*parts: bytes) -> str:
    """The fingerprint of a creating request (its body and files), stored with its Idempotency-Key."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


class GridChange(BaseModel):
    """A musician's fix of the beat grid: double or half the tempo, another meter, the bar line moved,
    or an exact BPM (which analyses the song again with it as a hint)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tempo: Literal["keep", "double", "half"] = Field("keep", description="Double or half the tempo.")
    shift_beats: int = Field(0, ge=-11, le=11, description="Move every bar line by this many beats.")
    beats_per_bar: int | None = Field(None, ge=2, le=12, description="Regroup the beats into bars of N.")
    bpm: float | None = Field(None, ge=30.0, le=300.0, description="Analyse again with this tempo.")

    @property
    def tempo_factor(self) -> float:
        return {"keep": 1.0, "double": 2.0, "half": 0.5}[self.tempo]


@dataclass(frozen=True)
class Submission:
    """A job as an entry point hands it over: inputs, files, and who asks."""

    params: JobParams
    song: SongSource
    owner: str = "local"
    references: Sequence[ReferenceImage] = ()
    job_id: str | None = None  # from an Idempotency-Key: a retried request maps to the same job
    request_hash: str | None = None  # of the whole request, to tell a replay from a different job
    upload_id: str | None = None
    trace_header: str | None = None
    lyrics: bytes | None = None  # a lyrics file's bytes or pasted text (UTF-8); checked before the job exists
