"""``JobContext``: what the code working on one job is handed, instead of reaching for globals.

A stage, a video generator, a prompt writer, the review and the job service all need the same few
things for one job: its inputs (``params``), where its files live (``layout``, ``storage``,
``delivery``), its record (``status``), a scratch folder, the deployment's ``settings`` and a way to
report progress. Before this existed, per-job values travelled inside ``Settings`` (``job_id``,
``continuity``, reference images, via ``model_copy``) and generators opened storage themselves; now
``Settings`` holds only deployment configuration and everything about the job is here.

The params are read from the job record when the context is opened (the demo job a notebook runs by
hand takes the values of its parameters cell instead). A job's files (the song, the lyrics, the
reference images) are found under its ``input/`` folder, where intake stored them; their keys come
from the layout, never from the params, which hold only what the user decided.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from kapsule.core.errors import InvalidTransition, KapsuleError, ObjectNotFound
from kapsule.core.settings import Settings
from kapsule.infra.status import StatusStore, open_status_store
from kapsule.infra.storage import Storage, open_storage
from kapsule.job.layout import JobLayout
from kapsule.job.params import JobParams
from kapsule.job.record import JobError, JobRecord, JobState, overall_progress
from kapsule.job.update import JobUpdate

log = logging.getLogger(__name__)

_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class Stores:
    """The deployment's stores, opened once from settings and shared by every job's context."""

    settings: Settings
    storage: Storage
    delivery: Storage
    status: StatusStore

    @classmethod
    def open(cls, settings: Settings) -> Stores:
        storage = open_storage(settings.storage_url)
        delivery_url = settings.effective_delivery_url
        delivery = storage if delivery_url == settings.storage_url else open_storage(delivery_url)
        return cls(settings, storage, delivery, open_status_store(settings.status_url))


@dataclass
class JobContext:
    """One job's inputs, files, record, scratch folder and progress reporting."""

    job_id: str
    params: JobParams
    stores: Stores
    workdir: Path
    layout: JobLayout = field(init=False)

    def __post_init__(self) -> None:
        self.layout = JobLayout(self.job_id)

    @classmethod
    def for_job(cls, stores: Stores, job_id: str, params: JobParams | None = None) -> JobContext:
        """The context of an existing job (``JobNotFound`` otherwise); ``params`` default to its record's."""
        record = stores.status.get(job_id)
        return cls.for_record(stores, record, params)

    @classmethod
    def for_record(cls, stores: Stores, record: JobRecord, params: JobParams | None = None) -> JobContext:
        workdir = Path(stores.settings.work_dir) / record.id
        return cls(job_id=record.id, params=params or record.params, stores=stores, workdir=workdir)

    # ------------------------------------------------------------------ the deployment's parts

    @property
    def settings(self) -> Settings:
        return self.stores.settings

    @property
    def storage(self) -> Storage:
        return self.stores.storage

    @property
    def delivery(self) -> Storage:
        return self.stores.delivery

    @property
    def status(self) -> StatusStore:
        return self.stores.status

    # -------------------------------------------------------------------------- the record

    def record(self) -> JobRecord:
        return self.status.get(self.job_id)

    def update(self, change: JobUpdate) -> JobRecord | None:
        """Write to the job record; a finished job refuses writes, which is fine when run by hand."""
        try:
            return self.status.update(self.job_id, change)
        except InvalidTransition as exc:
            log.info("job record not updated: %s", exc)
            return None

    def report(self, stage: str, fraction: float, message: str = "") -> None:
        """Record ``fraction`` (0..1 of ``stage``) as the job's overall progress across the stages."""
        self.update(
            JobUpdate(stage=stage, progress=overall_progress(stage, fraction), message=message or stage)
        )

    def fail(self, error: KapsuleError, stage: str | None = None) -> JobRecord:
        """Mark the job failed with ``error`` (unless it already finished, e.g. was cancelled)."""
        failure = JobError(code=error.code, message=error.message, stage=stage or error.stage)
        change = JobUpdate(state=JobState.failed, error=failure, message=f"failed: {error.message}")
        try:
            return self.status.update(self.job_id, change)
        except InvalidTransition:
            return self.record()

    def cancelled(self) -> bool:
        return self.record().state == JobState.cancelled

    # --------------------------------------------------------------------------- the files

    def _input_keys(self, stem: str) -> list[str]:
        """Keys of ``input/{stem}.*`` (intake chose the extension from the content)."""
        prefix = self.layout.input_prefix
        return [k for k in self.storage.list(prefix) if k[len(prefix) :].startswith(f"{stem}.")]

    def has_input_song(self) -> bool:
        return bool(self._input_keys("song"))

    def input_song(self) -> Path:
        """A local copy of ``jobs/{id}/input/song.*`` (the extension was chosen at intake)."""
        keys = self._input_keys("song")
        if not keys:
            raise ObjectNotFound(
                f"job {self.job_id} has no input song (nothing under {self.layout.input_prefix})"
            )
        key = keys[0]
        local = self.storage.local_path(key)
        if local is not None and local.is_file():
            return local
        return self.storage.download_to(key, self.workdir / "input" / key.rsplit("/", 1)[-1])

    def has_lyrics(self) -> bool:
        """Whether the user gave lyrics (``params.lyrics`` names their file; intake stored it)."""
        return bool(self.params.lyrics)

    def lyrics_key(self) -> str:
        """The key of ``input/lyrics.*``, the lyrics as the user gave them (``ObjectNotFound`` if gone)."""
        keys = self._input_keys("lyrics")
        if not keys:
            raise ObjectNotFound(f"job {self.job_id} has no lyrics file under {self.layout.input_prefix}")
        return keys[0]

    def reference_image_keys(self) -> list[str]:
        """Keys of the user's reference images under ``input/refs/``, in the order given."""
        if not self.params.reference_images:
            return []
        return sorted(self.storage.list(self.layout.references_prefix))

    @property
    def output_dir(self) -> Path:
        """Local folder of the final files (video, poster, contact sheet) while they are made."""
        return self.workdir / "output"

    def read_model(self, key: str, model: type[_M]) -> _M:
        return model.model_validate_json(self.storage.read_bytes(key))

    def write_model(self, key: str, value: BaseModel) -> None:
        self.storage.write_bytes(
            key, value.model_dump_json(indent=2).encode(), content_type="application/json"
        )
