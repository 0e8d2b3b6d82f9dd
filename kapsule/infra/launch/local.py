"""``local`` launcher: the job entrypoint as a subprocess of this machine, in its own process group.

The job's output (one JSON line per event, plus anything a notebook kernel prints) goes to
``{work_dir}/{job_id}/job.log``. Cancelling sends SIGTERM to the whole process group, then SIGKILL
if it has not ended after ``CANCEL_GRACE_S``: the notebook kernel and FFmpeg go with the job.

Every child is waited for by a small reaper thread the moment it exits, so a long-lived API leaves no
zombies behind, and the launcher keeps only the exit codes of the last ``EXITED_KEPT`` executions
(what ``reconcile`` asks about), not a table that grows with every job ever started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from kapsule.core.errors import BadExecutionName
from kapsule.core.settings import Settings
from kapsule.infra.launch.base import settings_env, uses_genai
from kapsule.infra.launch.cloudrun import ExecutionStatus

CANCEL_GRACE_S = 10.0
EXECUTION_PREFIX = "local-"
EXITED_KEPT = 1000


def job_log_path(settings: Settings, job_id: str) -> Path:
    return Path(settings.work_dir) / job_id / "job.log"


class LocalLauncher:
    """Runs the job entrypoint (``command``, with ``KAPSULE_JOB_ID``) as a detached subprocess."""

    def __init__(self, settings: Settings, command: Sequence[str]) -> None:
        self.settings = settings
        self._command = list(command)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}  # running children
        self._exited: OrderedDict[str, int] = OrderedDict()  # recent children's exit codes
        self._lock = threading.Lock()

    def command(self) -> list[str]:
        return list(self._command)

    def launch(self, job_id: str, *, genai: bool = False) -> str:
        log_path = job_log_path(self.settings, job_id)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        set_vars, unset = settings_env(self.settings, genai=genai or uses_genai(self.settings))
        env = {k: v for k, v in os.environ.items() if k not in unset}
        env.update(set_vars)
        env["KAPSULE_JOB_ID"] = job_id
        for name in ("CLOUD_RUN_EXECUTION", "CLOUD_RUN_TASK_ATTEMPT"):
            env.pop(name, None)
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=Path.cwd(),
                start_new_session=True,  # its own process group: cancel reaches the kernel and FFmpeg too
            )
        execution = f"{EXECUTION_PREFIX}{proc.pid}"
        with self._lock:
            self._procs[execution] = proc
        threading.Thread(
            target=self._reap, args=(execution, proc), name=f"reap-{proc.pid}", daemon=True
        ).start()
        return execution

    def _reap(self, execution: str, proc: subprocess.Popen[bytes]) -> None:
        """Wait for the child (so it never lingers as a zombie), then keep only its exit code."""
        code = proc.wait()
        with self._lock:
            self._procs.pop(execution, None)
            self._exited[execution] = code
            while len(self._exited) > EXITED_KEPT:
                self._exited.popitem(last=False)

    @property
    def running(self) -> int:
        """How many children this launcher is still waiting for."""
        with self._lock:
            return len(self._procs)

    @staticmethod
    def _pid(execution: str) -> int:
        if not execution.startswith(EXECUTION_PREFIX) or not execution[len(EXECUTION_PREFIX) :].isdigit():
            raise BadExecutionName(f"not a local execution name: {execution!r}")
        return int(execution[len(EXECUTION_PREFIX) :])

    def poll(self, execution: str) -> int | None:
        with self._lock:
            if execution in self._exited:
                return self._exited[execution]
            proc = self._procs.get(execution)
        if proc is not None:
            return proc.poll()
        try:
            os.kill(self._pid(execution), 0)
        except ProcessLookupError:
            return -1  # gone, exit code unknown (not our child)
        except PermissionError:
            return None
        return None

    def status(self, execution: str) -> ExecutionStatus | None:
        """How the process is doing, for ``reconcile``: ``None`` once a process we did not start is gone.

        A process this launcher started reports its exit code; one started by another process (the
        API restarted, ``kapsule reconcile`` in another terminal) can only be seen alive or gone, and
        gone without a word in the job record means it died.
        """
        code = self.poll(execution)
        if code is None:
            return ExecutionStatus(execution, done=False, succeeded=False, cancelled=False)
        with self._lock:
            ours = execution in self._exited or execution in self._procs
        if not ours:
            return None
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        return ExecutionStatus(execution, done=True, succeeded=code == 0, cancelled=False, message=how)

    def cancel(self, execution: str) -> None:
        pid = self._pid(execution)
        with self._lock:
            exited = execution in self._exited
        if exited:  # the job process is gone; whatever is left of its group (a stray kernel) goes too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            return
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + CANCEL_GRACE_S
        while time.monotonic() < deadline:
            if self.poll(execution) is not None:
                break
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # whatever is left of the group
