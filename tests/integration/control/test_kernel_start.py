"""A notebook kernel that fails to start is started again before the job fails (issue 23).

Eight jobs started at once on a 2-core machine: three died in the storyboard with ``kernel_failed:
Kernel died before replying to kernel_info`` (papermill's kernel start timed out under load).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import papermill
import pytest

from kapsule.control import pipeline
from kapsule.control.service import JobService, Submission
from kapsule.core.errors import KernelFailed
from kapsule.core.settings import Settings
from kapsule.infra.context import JobContext, Stores
from kapsule.job.params import JobParams
from kapsule.job.record import StageTiming
from kapsule.song.intake import LocalSong
from tests.support.api import RecordingLauncher, sine_wav


def _job(settings: Settings, tmp_path: Path) -> JobContext:
    service = JobService(Stores.open(settings), RecordingLauncher())
    record, _ = service.submit(Submission(JobParams(), LocalSong(sine_wav(tmp_path / "s.wav", 6.0))))
    ctx = JobContext.for_record(service.stores, record)
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    return ctx


def _kernel_that_fails_to_start(monkeypatch: pytest.MonkeyPatch, failures: int) -> list[str]:
    """papermill whose first ``failures`` kernels die before replying to kernel_info, as under load."""
    real = papermill.execute_notebook
    calls: list[str] = []

    def execute(source: str, output: str, **kwargs: Any) -> Any:
        calls.append(output)
        if len(calls) <= failures:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return real(source, output, **kwargs)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    monkeypatch.setattr(pipeline, "KERNEL_START_PAUSE_S", 0.01)
    return calls


def test_a_kernel_that_did_not_start_is_started_again_and_the_stage_runs(
    kapsule_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = _job(kapsule_env, tmp_path)
    calls = _kernel_that_fails_to_start(monkeypatch, failures=2)
    timings: dict[str, StageTiming] = {}
    pipeline.run_stage_notebook(ctx, "analyze", timings)
    assert len(calls) == 3
    assert not timings["analyze"].failed and ctx.storage.exists(ctx.layout.analysis)


def test_a_kernel_that_never_starts_fails_the_stage_after_its_attempts(
    kapsule_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = _job(kapsule_env, tmp_path)
    calls = _kernel_that_fails_to_start(monkeypatch, failures=10)
    with pytest.raises(KernelFailed, match="kernel_info"):
        pipeline.run_stage_notebook(ctx, "analyze", {})
    assert len(calls) == pipeline.KERNEL_START_ATTEMPTS
