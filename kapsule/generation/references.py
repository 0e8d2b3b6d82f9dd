"""Reference images (a character, a product, an album cover) and continuity frames for Veo.

Why a module of its own: the CLI stores the user's images into the job's ``input/refs/`` folder and
the Veo generator reads them back by storage key, and both must agree on names and formats. A
storage key is built from the job id, an index and a checked extension, never from the user's
file name. An image is named in a shot's request by the sha256 of its bytes, so replacing a
reference re-bills the shots that used it and an unchanged one is never paid for again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kapsule.core.errors import InputFileMissing, InvalidParameter
from kapsule.infra.storage.base import Storage
from kapsule.job.artifacts import ShotManifest
from kapsule.job.layout import JobLayout
from kapsule.job.params import MAX_REFERENCE_IMAGES, JobParams

MAX_REFERENCE_BYTES = 20 * 1024 * 1024
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/webp": (b"RIFF",),
}


@dataclass(frozen=True)
class ImageRef:
    """One image as sent to Veo: its bytes, MIME type and the hash that names it in request keys."""

    data: bytes
    mime_type: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def mime_type_for(name: str, data: bytes) -> str:
    """The image's MIME type, judged by its first bytes (never by its name, which is only for messages)."""
    for mime, magics in _MAGIC.items():
        webp_ok = mime != "image/webp" or data[8:12] == b"WEBP"
        if webp_ok and any(data.startswith(magic) for magic in magics):
            return mime
    raise InvalidParameter(f"reference image {name!r} is not a PNG, JPEG or WebP image (judged by content)")


@dataclass(frozen=True)
class ReferenceImage:
    """A user's image before it is stored: its name (for messages only) and its bytes."""

    name: str
    data: bytes


def read_reference_image(path: Path) -> ReferenceImage:
    """A reference image from a local file (the CLI), refused when missing or too large."""
    if not path.is_file():
        raise InputFileMissing(f"there is no reference image at {path}")
    if path.stat().st_size > MAX_REFERENCE_BYTES:
        raise InvalidParameter(f"reference image {path.name} is over {MAX_REFERENCE_BYTES // 2**20} MiB")
    return ReferenceImage(path.name, path.read_bytes())


def check_reference_images(images: Sequence[ReferenceImage]) -> list[str]:
    """Each image's MIME type, after checking count, size and content; nothing is stored yet."""
    if len(images) > MAX_REFERENCE_IMAGES:
        raise InvalidParameter(f"at most {MAX_REFERENCE_IMAGES} reference images, got {len(images)}")
    for image in images:
        if len(image.data) > MAX_REFERENCE_BYTES:
            raise InvalidParameter(f"reference image {image.name} is over {MAX_REFERENCE_BYTES // 2**20} MiB")
    return [mime_type_for(image.name, image.data) for image in images]


def reference_keys(mimes: Sequence[str], layout: JobLayout) -> tuple[str, ...]:
    """Where a job's reference images go (``input/refs/NN.ext``), from their index and content type,
    never from the user's file name; known before anything is written."""
    return tuple(
        layout.reference_image(index, "jpg" if mime == "image/jpeg" else mime.split("/")[1])
        for index, mime in enumerate(mimes)
    )


def store_reference_images(
    images: Sequence[ReferenceImage], storage: Storage, layout: JobLayout
) -> tuple[str, ...]:
    """Write the user's images into the job's ``input/refs/``; return their storage keys, in order."""
    mimes = check_reference_images(images)
    keys = reference_keys(mimes, layout)
    for key, image, mime in zip(keys, images, mimes, strict=True):
        storage.write_bytes(key, image.data, content_type=mime)
    return keys


def load_reference_image(storage: Storage, key: str) -> ImageRef:
    """Read one stored reference image back (``ObjectNotFound`` if it is gone)."""
    data = storage.read_bytes(key)
    return ImageRef(data=data, mime_type=mime_type_for(key, data))


def note_ignored_images(manifest: ShotManifest, generator: str, params: JobParams) -> ShotManifest | None:
    """For a generator that takes no images (the local renderer), say in each shot what it ignored.

    Returns the annotated manifest, or ``None`` when there is nothing to add (a Veo generator
    records its own notes; an already annotated manifest is left alone).
    """
    if generator.startswith("veo-"):
        return None
    ignored = []
    if params.continuity != "none":
        ignored.append(f"continuity {params.continuity!r}")
    if params.reference_images:
        ignored.append(f"{len(params.reference_images)} reference image(s)")
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
