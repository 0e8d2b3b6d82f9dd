"""The job entrypoint's logs, as the platform reads them from the real process: JSON lines, no secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from kapsule.core.settings import Settings
from tests.support.paths import REPO

GEMINI_KEY = "AIzaSyD-not-a-real-key-0123456789abcdef"
API_KEYS = "alice=ka_live_4f9c2e71b0,bob=kb_live_88d1e0aa27"


def test_the_job_entrypoint_never_logs_a_secret(kapsule_env: Settings) -> None:
    """The real entrypoint, for a job that does not exist: its lines are JSON and key-free."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUD_RUN_")}
    job_id = "j" + "b" * 20
    env |= {"KAPSULE_JOB_ID": job_id, "GEMINI_API_KEY": GEMINI_KEY, "KAPSULE_API_KEYS": API_KEYS}
    # The status URL carries a key-like secret into an error message the entrypoint logs.
    env["KAPSULE_STATUS_URL"] = f"bogus://{GEMINI_KEY}"

    proc = subprocess.run(
        [sys.executable, "-m", "kapsule.worker"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert proc.returncode == 2
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events and all(e["job_id"] == job_id for e in events)
    assert "unsupported status URL" in events[-1]["message"]
    assert GEMINI_KEY not in proc.stdout + proc.stderr
    assert "[redacted]" in events[-1]["message"]
