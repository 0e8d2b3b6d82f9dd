"""``kapsule doctor`` against endpoints that accept a connection and never answer (black holes): it
names each of them within 15 s, process start included, printing every line as its check finishes."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support.black_hole import black_hole
from tests.support.fake_google import write_service_account
from tests.support.paths import REPO
from tests.support.servers import server_env

WITHIN_S = 15.0


def test_doctor_names_every_unreachable_endpoint_within_15_s(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        storage, firestore, google = (stack.enter_context(black_hole()) for _ in range(3))
        key = write_service_account(tmp_path / "sa.json", f"http://127.0.0.1:{google}/token")
        env = server_env(
            tmp_path / "home",
            KAPSULE_STORAGE_URL="gs://kapsule-private",
            KAPSULE_DELIVERY_URL="gs://kapsule-delivery",
            KAPSULE_STATUS_URL="firestore://fake-project/jobs",
            STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{storage}",
            FIRESTORE_EMULATOR_HOST=f"127.0.0.1:{firestore}",
            GOOGLE_GENAI_USE_VERTEXAI="true",
            GOOGLE_CLOUD_PROJECT="fake-project",
            GOOGLE_APPLICATION_CREDENTIALS=str(key),
            KAPSULE_GENAI_BASE_URL=f"http://127.0.0.1:{google}",
            KAPSULE_VIDEO_MODEL="veo-3.1-fast-generate-001",
            KAPSULE_PROMPT_MODEL="gemini-2.5-flash",
            KAPSULE_UPLOAD_SECRET="s3cret",
            KAPSULE_CORS_ORIGINS="https://studio.example.com",
            COLUMNS="400",  # one finding per line, unwrapped
        )
        env.pop("GEMINI_API_KEY", None)
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "kapsule.cli.main", "doctor"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            text=True,
        )
        lines: list[tuple[float, str]] = []

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append((time.monotonic() - started, line.rstrip("\n")))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            code = process.wait(timeout=60)  # generous: the assertion below is the bound
        finally:
            if process.poll() is None:
                process.kill()
        reader.join(timeout=5)
        took = time.monotonic() - started

    output = "\n".join(text for _, text in lines)
    assert code == 1, output
    assert took < WITHIN_S, f"doctor took {took:.1f} s:\n{output}"
    for named in (
        f"no answer from Cloud Storage at http://127.0.0.1:{storage} (gs://kapsule-private)",
        f"no answer from Cloud Storage at http://127.0.0.1:{storage} (gs://kapsule-delivery)",
        f"no answer from Firestore at 127.0.0.1:{firestore} (firestore://fake-project/jobs)",
        f"no answer from Google's model API at http://127.0.0.1:{google}",
    ):
        assert named in output, output
    # Each line as its check finishes: the settings' own check is printed long before any overrun.
    secret_at = next(at for at, text in lines if text.startswith("ok    upload secret"))
    first_overrun = min(at for at, text in lines if "no answer from" in text)
    assert secret_at < first_overrun - 2, lines
