"""The API's start-up preflight in cloud mode: ``doctor`` run once, its problems logged, jobs refused
while a blocking one exists.

Why refuse jobs rather than fail start-up: a Cloud Run revision that cannot start gives the user no
sentence to read, and a start-up check that meets a passing blip (Firestore slow to answer) would
crash-loop the service. So the API starts, logs each problem with its fix, answers ``GET /healthz``,
and ``POST /v1/jobs`` is a 503 ``deployment_not_ready`` naming the problems, instead of a job that
fails minutes later (a model missing in the location, an unset upload secret, no URL signing). While
blocked, the checks run again at most every ``RECHECK_S`` when a job is submitted, so fixing an IAM
binding heals the service without a new revision. Advisory problems (the bucket's CORS: only studio
uploads need it) and warnings (a retirement date Google gives, still ahead) are logged and do
not block; a video model Google has retired does. The checks are the ones the API's own identity can
pass (``run_doctor(api=True)``: no ``models.get``, a read of the delivery bucket); ``kapsule doctor``
run with the job's identity checks the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from kapsule.control.doctor import Finding, blocking, is_cloud, problems, run_doctor, warnings
from kapsule.core.errors import DeploymentNotReady
from kapsule.core.settings import Settings

log = logging.getLogger("kapsule.api")

RECHECK_S = 60.0


def api_doctor(settings: Settings) -> list[Finding]:
    """The checks the API's own identity can pass (see the module docstring)."""
    return run_doctor(settings, api=True)


class Preflight:
    """The last findings of ``run_doctor`` for this deployment (none outside cloud mode)."""

    def __init__(
        self,
        settings: Settings,
        run: Callable[[Settings], Sequence[Finding]] = api_doctor,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.enabled = is_cloud(settings)
        self._run = run
        self._clock = clock
        self._lock = threading.Lock()
        self.findings: list[Finding] = []
        self._checked_at: float | None = None

    def check(self) -> list[Finding]:
        """Run every check now (cloud mode only) and log each problem with its fix."""
        if not self.enabled:
            return []
        with self._lock:
            self.findings = list(self._run(self.settings))
            self._checked_at = self._clock()
        for finding in problems(self.findings):
            log.error("preflight: %s: %s (fix: %s)", finding.check, finding.problem, finding.fix)
        for finding in warnings(self.findings):  # e.g. a retirement date Google gives, still ahead
            log.warning("preflight: %s: %s (fix: %s)", finding.check, finding.problem, finding.fix)
        if not problems(self.findings):
            log.info("preflight: every check passed")
        return self.findings

    def blocking(self) -> list[Finding]:
        """The blocking problems now; while there are some, the checks are re-run every ``RECHECK_S``."""
        found = blocking(self.findings)
        if found and self._checked_at is not None and self._clock() - self._checked_at >= RECHECK_S:
            self.check()
            found = blocking(self.findings)
        return found

    def require_ready(self) -> None:
        """Raise ``DeploymentNotReady`` naming each blocking problem and its fix."""
        found = self.blocking()
        if found:
            raise DeploymentNotReady(
                "this deployment cannot run jobs until it is fixed (run `kapsule doctor`): "
                + "; ".join(f"{f.check}: {f.problem} (fix: {f.fix})" for f in found)
            )
