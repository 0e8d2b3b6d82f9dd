"""Run the job entrypoint as the platform does, and kill it as a crash does (helpers for the tests).

``start_attempt`` starts ``python -m kapsule.worker`` in its own session with the Cloud Run task
variables of one attempt; ``kill_tree`` sends SIGKILL to its process group and to the notebook
kernel (which jupyter_client starts in a session of its own), as a dying container would.
``wait_for`` polls the job record in the status store, which is how a test knows which stage runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from kapsule.core.settings import Settings
from kapsule.infra.launch import settings_env
from kapsule.infra.status import StatusStore
from kapsule.job.record import JobRecord
from tests.support.paths import REPO


def start_attempt(
    settings: Settings, job_id: str, log: Path, attempt: int | None = None, execution: str = "exec-crash"
) -> subprocess.Popen[bytes]:
    """Start one attempt of the job; ``attempt=None`` runs it as the local launcher does (no Cloud Run)."""
    set_vars, unset = settings_env(settings)
    env = {k: v for k, v in os.environ.items() if k not in unset and not k.startswith("CLOUD_RUN_")}
    env.update(set_vars)
    env["KAPSULE_JOB_ID"] = job_id
    if attempt is not None:
        env.update(CLOUD_RUN_EXECUTION=execution, CLOUD_RUN_TASK_ATTEMPT=str(attempt))
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "kapsule.worker"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the kernel and its FFmpeg included)."""
    out, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the job's process group and everything it started, with no chance to clean up."""
    below = descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in below:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)


def wait_for(
    status: StatusStore,
    job_id: str,
    ready: Callable[[JobRecord], bool],
    proc: subprocess.Popen[bytes] | None = None,
    timeout: float = 240.0,
    poll_s: float = 0.02,
) -> JobRecord:
    """Poll the job record until ``ready(record)``; fail if the job process ended or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = status.get(job_id)
        if ready(record):
            return record
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the job process exited ({proc.returncode}) first; last record: {record}")
        time.sleep(poll_s)
    raise AssertionError(f"timed out; last record: {status.get(job_id)}")
