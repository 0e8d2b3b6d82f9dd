"""The one settings object. Every tunable comes from here (environment, prefix ``KAPSULE_``).

No other module reads ``os.environ`` for configuration. Only the entry points (the CLI, the API's
``create_app``, the job worker) call ``get_settings()``, which is cached so it is built once per
process; everything below them is handed a ``Settings`` object, so tests build one and pass it in.
Backends are chosen from the URLs below by the small factories in ``storage``,
``status`` and ``launch``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from platformdirs import user_data_path
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def kapsule_home() -> Path:
    """Where a machine's jobs live unless the settings say otherwise: the user's data folder
    (``~/.local/share/kapsule`` on Linux), so every command finds the same jobs from any folder."""
    return user_data_path("kapsule", appauthor=False)


class Settings(BaseSettings):
    """Configuration for one Kapsule process (CLI, job, or API)."""

    model_config = SettingsConfigDict(env_prefix="KAPSULE_", env_file=None, extra="ignore")

    storage_url: str = Field(
        default_factory=lambda: f"file://{kapsule_home() / 'data'}",
        description="Private storage: uploads, work files, notebooks (default: the user's data folder).",
    )
    delivery_url: str | None = Field(None, description="Where final videos go; defaults to storage_url.")
    status_url: str = Field(
        default_factory=lambda: f"sqlite:///{kapsule_home() / 'jobs.db'}", description="Job record store."
    )
    launcher: str = Field(
        "local", description="'local' (subprocess) or cloudrun://projects/P/locations/L/jobs/J."
    )
    video_model: str = Field("local", description="'local' renderer or a Veo model id.")
    prompt_model: str = Field("local", description="'local' writer or a Gemini model id.")
    genai_base_url: str | None = Field(None, description="Override the google-genai endpoint (tests).")
    api_keys: str | None = Field(None, description="owner=key,owner2=key2; unset = open loopback mode.")
    upload_secret: SecretStr | None = Field(
        None,
        description="Signs local upload URLs; unset = a random one per API process (uploads die with it).",
    )
    upload_url_expiry_s: int = Field(900, ge=10, le=7 * 24 * 3600, description="Life of an upload URL.")
    cors_origins: str | None = Field(None, description="Comma-separated origins allowed to call the API.")
    public_url: str | None = Field(
        None, description="The API's external base URL (https://kapsule.example.com); links are built on it."
    )
    max_request_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest request body (uploads PUT excepted), refused with 413."
    )
    session_ttl_s: int = Field(
        8 * 3600, ge=60, le=7 * 24 * 3600, description="Life of a studio session cookie (key exchange)."
    )
    notebook_link_expiry_s: int = Field(300, ge=10, le=3600, description="Life of a signed notebook link.")
    event_stream_max_s: float = Field(
        300.0, gt=0, description="A server-sent events stream ends after this; the client reconnects."
    )
    max_event_streams_per_owner: int = Field(8, ge=1, description="Event streams one owner may hold open.")
    upload_ttl_s: int = Field(
        24 * 3600,
        ge=0,
        description="Unused or rejected uploads are deleted this long after their URL expired.",
    )

    api_docs: bool | None = Field(
        None,
        description="Serve /docs and /redoc (pages whose scripts come from a CDN); unset: only in open "
        "mode, off when API keys are set or the deployment is Google Cloud.",
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="A connection that has not sent a whole request head by then is closed."
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="Proxies whose X-Forwarded-For/-Proto are trusted under --proxy-headers (addresses "
        "or networks, comma-separated; '*' only where nothing but the proxy reaches the server: Cloud Run).",
    )

    work_dir: Path = Field(
        default_factory=lambda: kapsule_home() / "work",
        description="Local scratch space for running stages; the CLI writes videos beside it in videos/.",
    )
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
    local_max_jobs: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Local launcher: jobs run at once; the rest wait in a queue (empty: half the cores, "
        "at least two).",
    )
    notebooks_dir: Path | None = Field(
        None, description="Where the pipeline notebooks live (default: repo's)."
    )

    # google-genai (Gemini prompts, Veo shots). Two modes, as the library has: an API key (a laptop)
    # or Vertex AI with Application Default Credentials (the job's service account in Google Cloud).
    # The unprefixed names are the library's own, so one environment works for both.
    gemini_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("KAPSULE_GEMINI_API_KEY", "GEMINI_API_KEY")
    )
    genai_use_vertexai: bool = Field(
        False, validation_alias=AliasChoices("KAPSULE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_VERTEXAI")
    )
    google_cloud_project: str | None = Field(
        None, validation_alias=AliasChoices("KAPSULE_GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_PROJECT")
    )
    # Vertex AI serves Gemini and Veo in different places: the Gemini 3 previews only on the global
    # endpoint, Veo only in a few regions (docs/cloud-settings.md, "Locations"). One location each.
    veo_location: str = Field(
        "us-central1",
        validation_alias=AliasChoices("KAPSULE_VEO_LOCATION", "KAPSULE_VERTEX_LOCATION"),
        description="Vertex AI region where Veo is called (one Google documents for Veo; not the Cloud Run "
        "region). KAPSULE_VERTEX_LOCATION, its name before Gemini had a location of its own, is still read.",
    )
    gemini_location: str = Field(
        "global",
        validation_alias=AliasChoices("KAPSULE_GEMINI_LOCATION"),
        description="Vertex AI location where Gemini is called; 'global' serves every current Gemini model, "
        "including the previews no region serves.",
    )
    video_prices_usd_per_s: dict[str, float] = Field(
        default_factory=dict,
        description="Overrides of the list price per second of video (video_models), by model id or glob; "
        "the most specific match wins. Empty: the table's price for the mode.",
    )
    veo_concurrency: int = Field(4, ge=1, le=64, description="Veo operations in flight at once.")
    veo_requests_per_minute: float | None = Field(
        None,
        gt=0,
        description="The project's Veo start requests per minute, shared by every job (empty: the model's "
        "quota, 50 for -001 ids and 10 for -preview; set it to a quota Google raised).",
    )
    veo_poll_interval_s: float = Field(10.0, gt=0, description="First wait between operation polls.")
    veo_poll_max_interval_s: float = Field(30.0, gt=0, description="Polls back off up to this interval.")
    veo_timeout_s: float = Field(900.0, gt=0, description="Give up on one Veo operation after this long.")
    gemini_send_audio: bool = Field(
        False,
        description="Also send a low-bitrate excerpt of the song to Gemini with the storyboard request.",
    )
    veo_output_gcs_uri: str | None = Field(
        None, description="Vertex only: gs://BUCKET/PREFIX where Veo writes clips (else bytes come back)."
    )

    # Cloud Run Jobs launcher (KAPSULE_LAUNCHER=cloudrun://projects/P/locations/L/jobs/J).
    cloudrun_endpoint: str | None = Field(
        None, description="Override the Cloud Run Admin API endpoint; an http:// URL (tests) is anonymous."
    )
    cloudrun_task_timeout_s: float = Field(
        3600.0, gt=0, description="Task timeout passed with every execution (one attempt's limit)."
    )

    # Spending: who may use which model, and how much a job and an owner's day may cost. The machine's
    # own user (owner "local": the CLI, and the API in open loopback mode) is the operator and exempt
    # from the allow-list; every job with a paid model gets a budget, and keyed owners a daily cap.
    allowed_models: dict[str, list[str]] = Field(
        default_factory=lambda: {"*": ["local"]},
        description="Owner -> model id globs they may use (JSON); '*' is everyone without an entry.",
    )
    default_job_budget_usd: float = Field(
        5.0, ge=0, description="The budget of a paid job that sets none (0: no default cap)."
    )
    owner_daily_cap_usd: float = Field(
        20.0, ge=0, description="Most one API owner's jobs of one UTC day may spend (0: no cap)."
    )
    job_max_retries: int = Field(
        2,
        ge=0,
        le=10,
        description="Retries of a failed job execution (Cloud Run's --max-retries; deploy.sh sets both from "
        "this one value). The last attempt records any failure, so no job stays running.",
    )

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
    """The process's settings, built once, for the entry points (library code is handed ``Settings``)."""
    return Settings()


class TaskEnv(BaseSettings):
    """What the platform tells one job execution: which job, and which attempt of which execution.

    Not deployment configuration (that is ``Settings``), but read from the environment the same way
    and in this module, so there is still one place that reads it. Cloud Run sets the CLOUD_RUN_*
    names itself (unprefixed); the launcher passes KAPSULE_JOB_ID.
    """

    model_config = SettingsConfigDict(env_prefix="", env_file=None, extra="ignore", populate_by_name=True)

    job_id: str | None = Field(None, validation_alias=AliasChoices("KAPSULE_JOB_ID"))
    cloud_run_execution: str | None = Field(None, validation_alias=AliasChoices("CLOUD_RUN_EXECUTION"))
    cloud_run_task_attempt: int = Field(0, validation_alias=AliasChoices("CLOUD_RUN_TASK_ATTEMPT"))

    @property
    def attempts(self) -> int:
        return self.cloud_run_task_attempt + 1
