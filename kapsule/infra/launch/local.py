"""``local`` launcher: the job entrypoint as a subprocess of this machine, in its own process group.

The job's output (one JSON line per event, plus anything a notebook kernel prints) goes to
``{work_dir}/{job_id}/job.log``. Cancelling sends SIGTERM to the whole process group, then SIGKILL
if it has not ended after ``CANCEL_GRACE_S``: the notebook kernel and FFmpeg go with the job.

Every child is waited for by a small reaper thread the moment it exits, so a long-lived API leaves no
zombies behind, and the launcher keeps only the exit codes of the last ``EXITED_KEPT`` executions
(what ``reconcile`` asks about), not a table that grows with every job ever started.

At most ``max_running`` jobs run at once (``local_max_jobs``; default half the cores, at least two):
eight jobs started together on two cores starved each other's kernels until they failed to start. A
job launched beyond that waits in this launcher's queue under the execution name
``local-queued-JOB``; the reaper starts the next one as a job ends, and ``place`` tells how many are
ahead of it (the job service shows it on the job while it is queued). Cancelling a queued job takes it
out of the queue; cancelling one that has started since stops its process.
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
QUEUED_PREFIX = "local-queued-"
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
        self._queue: OrderedDict[str, bool] = OrderedDict()  # queued job -> genai, in launch order
        self._started: OrderedDict[str, str] = OrderedDict()  # queued name -> the process it became
        self._lock = threading.Lock()
        self.max_running = settings.local_max_jobs or max(2, (os.cpu_count() or 2) // 2)

    def command(self) -> list[str]:
        return list(self._command)

    def launch(self, job_id: str, *, genai: bool = False) -> str:
        """Start the job now if fewer than ``max_running`` run, else queue it (``local-queued-JOB``)."""
        with self._lock:
            if len(self._procs) >= self.max_running or self._queue:
                self._queue[job_id] = genai
                return f"{QUEUED_PREFIX}{job_id}"
            return self._start(job_id, genai)

    def place(self, execution: str) -> int | None:
        """How many queued jobs are ahead of ``execution`` (0: next), or None if it is not queued."""
        job_id = execution.removeprefix(QUEUED_PREFIX)
        with self._lock:
            if not execution.startswith(QUEUED_PREFIX) or job_id not in self._queue:
                return None
            return list(self._queue).index(job_id)

    def _resolve(self, execution: str) -> str:
        """The process a queued execution became, once it started (else the name as given)."""
        with self._lock:
            return self._started.get(execution, execution)

    def _start(self, job_id: str, genai: bool) -> str:
        """Start the job's process (the caller holds ``_lock``)."""
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
            while self._queue and len(self._procs) < self.max_running:
                job_id, genai = self._queue.popitem(last=False)
                self._started[f"{QUEUED_PREFIX}{job_id}"] = self._start(job_id, genai)
                while len(self._started) > EXITED_KEPT:
                    self._started.popitem(last=False)

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
        if self.place(execution) is not None:
            return None  # waiting in the queue: not done
        execution = self._resolve(execution)
        if execution.startswith(QUEUED_PREFIX):
            return -1  # taken out of the queue before it started: it never ran
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
        execution = self._resolve(execution)
        with self._lock:
            ours = execution in self._exited or execution in self._procs
        if not ours:
            return None
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        return ExecutionStatus(execution, done=True, succeeded=code == 0, cancelled=False, message=how)

    def cancel(self, execution: str) -> None:
        with self._lock:
            if self._queue.pop(execution.removeprefix(QUEUED_PREFIX), None) is not None:
                return  # it never started: out of the queue, nothing to stop
        execution = self._resolve(execution)
        if execution.startswith(QUEUED_PREFIX):
            return  # cancelled before: nothing ran
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
