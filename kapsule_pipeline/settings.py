"""The one settings object. Every tunable comes from here (environment, prefix ``KAPSULE_``).

No other module reads ``os.environ`` for configuration; code asks ``get_settings()``, which is cached
so it is built once per process, and tests call ``get_settings.cache_clear()`` after changing the
environment. Backends are chosen from the URLs below by the small factories in ``storage``,
``status`` and ``launch``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration for one Kapsule process (CLI, job, or API)."""

    model_config = SettingsConfigDict(env_prefix="KAPSULE_", env_file=None, extra="ignore")

    storage_url: str = Field(
        "file://./.kapsule/data", description="Private storage: uploads, work files, notebooks."
    )
    delivery_url: str | None = Field(None, description="Where final videos go; defaults to storage_url.")
    status_url: str = Field("sqlite:///./.kapsule/jobs.db", description="Job record store.")
    launcher: str = Field("local", description="'local' (subprocess) or cloudrun://projects/P/locations/L/jobs/J.")
    video_model: str = Field("local", description="'local' renderer or a Veo model id.")
    prompt_model: str = Field("local", description="'local' writer or a Gemini model id.")
    genai_base_url: str | None = Field(None, description="Override the google-genai endpoint (tests).")
    api_keys: str | None = Field(None, description="owner=key,owner2=key2; unset = open loopback mode.")

    work_dir: Path = Field(Path("./.kapsule/work"), description="Local scratch space for running stages.")
    min_song_seconds: float = Field(5.0, gt=0)
    max_song_seconds: float = Field(600.0, gt=0, description="Longest accepted song (default 10 min).")
    max_upload_bytes: int = Field(300 * 1024 * 1024, gt=0)
    silence_dbfs: float = Field(-60.0, description="A song whose peak is below this is 'silent'.")

    fps: int = Field(24, description="Frame rate of every shot and of the final video (Veo's rate).")
    video_crf: int = Field(20, ge=0, le=51)
    video_preset: str = Field("veryfast")
    ffmpeg_threads: int = Field(0, ge=0, description="0 lets FFmpeg choose.")
    ffmpeg_timeout_s: float = Field(1800.0, gt=0)

    kernel_name: str = Field("python3", description="Jupyter kernel papermill runs the notebooks in.")
    notebooks_dir: Path | None = Field(None, description="Where the pipeline notebooks live (default: repo's).")

    # The job entrypoint's inputs. Cloud Run sets the CLOUD_RUN_* names itself (unprefixed), and the
    # launcher passes KAPSULE_JOB_ID; reading them here keeps one settings loader for everything.
    job_id: str | None = Field(None, validation_alias=AliasChoices("KAPSULE_JOB_ID"))
    cloud_run_execution: str | None = Field(None, validation_alias=AliasChoices("CLOUD_RUN_EXECUTION"))
    cloud_run_task_attempt: int = Field(0, validation_alias=AliasChoices("CLOUD_RUN_TASK_ATTEMPT"))

    @field_validator("delivery_url")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @property
    def effective_delivery_url(self) -> str:
        """Final videos go to the delivery store, which defaults to the private one locally."""
        return self.delivery_url or self.storage_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, built once. Tests clear the cache after changing the environment."""
    return Settings()
