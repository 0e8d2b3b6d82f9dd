"""Reference images (a character, a product, an album cover) and continuity frames for Veo.

Why a module of its own: the CLI stores the user's images into the job's ``input/refs/`` folder and
the Veo generator reads them back by storage key, and both must agree on names and formats. A
storage key is built from the job id, an index and a checked extension, never from the user's
file name. An image is named in a shot's request by the sha256 of its bytes, so replacing a
reference re-bills the shots that used it and an unchanged one is never paid for again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kapsule_pipeline.errors import InvalidParameter
from kapsule_pipeline.layout import JobLayout
from kapsule_pipeline.models import ShotManifest
from kapsule_pipeline.settings import Settings
from kapsule_pipeline.storage.base import Storage

MAX_REFERENCE_IMAGES = 3  # Veo 3.1 takes up to three "asset" reference images
MAX_REFERENCE_BYTES = 20 * 1024 * 1024
IMAGE_TYPES: dict[str, str] = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
}
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/webp": (b"RIFF",),
}
CONTINUITY_MODES = ("none", "last_frame")


@dataclass(frozen=True)
class ImageRef:
    """One image as sent to Veo: its bytes, MIME type and the hash that names it in request keys."""

    data: bytes
    mime_type: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def check_continuity(mode: str) -> str:
    """``"none"`` (default, shots in parallel) or ``"last_frame"``; anything else is refused."""
    mode = (mode or "none").strip().lower()
    if mode not in CONTINUITY_MODES:
        raise InvalidParameter(f"continuity must be one of {', '.join(CONTINUITY_MODES)}, got {mode!r}")
    return mode


def mime_type_for(name: str, data: bytes) -> str:
    """The image's MIME type from its extension, checked against its first bytes."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    mime = IMAGE_TYPES.get(ext)
    if mime is None:
        raise InvalidParameter(
            f"reference image {name!r} must be PNG, JPEG or WebP (.png, .jpg, .jpeg, .webp)"
        )
    if not data.startswith(_MAGIC[mime]):
        raise InvalidParameter(f"reference image {name!r} is not a {mime} file (its content does not match)")
    return mime


def store_reference_images(paths: list[Path], storage: Storage, layout: JobLayout) -> list[str]:
    """Copy the user's images into the job's ``input/refs/``; return their storage keys, in order."""
    if len(paths) > MAX_REFERENCE_IMAGES:
        raise InvalidParameter(f"at most {MAX_REFERENCE_IMAGES} reference images, got {len(paths)}")
    keys = []
    for index, path in enumerate(paths):
        if not path.is_file():
            raise InvalidParameter(f"there is no reference image at {path}")
        if path.stat().st_size > MAX_REFERENCE_BYTES:
            raise InvalidParameter(f"reference image {path.name} is over {MAX_REFERENCE_BYTES // 2**20} MiB")
        data = path.read_bytes()
        mime = mime_type_for(path.name, data)
        ext = "jpg" if mime == "image/jpeg" else mime.split("/")[1]
        key = f"{layout.input_prefix}refs/{index:02d}.{ext}"
        storage.write_bytes(key, data, content_type=mime)
        keys.append(key)
    return keys


def load_reference_image(storage: Storage, key: str) -> ImageRef:
    """Read one stored reference image back (``ObjectNotFound`` if it is gone)."""
    data = storage.read_bytes(key)
    return ImageRef(data=data, mime_type=mime_type_for(key, data))


def settings_for_job(settings: Settings, job_id: str, params: Mapping[str, Any]) -> Settings:
    """The settings one job's video generator is built with: its id, continuity and reference images.

    The job's params (``continuity``, ``reference_images``) win over the settings' defaults. Every
    place that prices or generates a job's shots builds its generator from this, so they all
    compute the same request keys.
    """
    continuity = check_continuity(str(params.get("continuity") or settings.continuity))
    refs = params.get("reference_images")
    references = [str(key) for key in refs] if refs else list(settings.reference_images)
    if len(references) > MAX_REFERENCE_IMAGES:
        raise InvalidParameter(f"at most {MAX_REFERENCE_IMAGES} reference images, got {len(references)}")
    return settings.model_copy(
        update={"job_id": job_id, "continuity": continuity, "reference_images": references}
    )


def note_ignored_images(manifest: ShotManifest, generator: str, settings: Settings) -> ShotManifest | None:
    """For a generator that takes no images (the local renderer), say in each shot what it ignored.

    Returns the annotated manifest, or ``None`` when there is nothing to add (a Veo generator
    records its own notes; an already annotated manifest is left alone).
    """
    if generator.startswith("veo-"):
        return None
    ignored = []
    if settings.continuity != "none":
        ignored.append(f"continuity {settings.continuity!r}")
    if settings.reference_images:
        ignored.append(f"{len(settings.reference_images)} reference image(s)")
    if not ignored:
        return None
    note = f"{generator} renderer ignored {' and '.join(ignored)}"
    if all(note in shot.note for shot in manifest.shots):
        return None
    shots = [
        shot
        if note in shot.note
        else shot.model_copy(update={"note": "; ".join(filter(None, [shot.note, note]))})
        for shot in manifest.shots
    ]
    return manifest.model_copy(update={"shots": shots})
