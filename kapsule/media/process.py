"""The only code in the library that starts FFmpeg or ffprobe: find the tool, run it, or feed it frames.

Nothing is ever passed through a shell. ``run`` executes with a timeout and turns any failure into a
``MediaError`` carrying the command and the tail of stderr; ``RawVideoWriter`` streams frames into an
encoder and checks its exit code the same way.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
from collections.abc import Sequence
from functools import cache
from types import TracebackType
from typing import IO

import numpy as np

from kapsule.core.errors import MediaError, ToolMissing

log = logging.getLogger(__name__)

STDERR_TAIL_CHARS = 2000


@cache
def tool(name: str) -> str:
    """Absolute path of ``ffmpeg`` or ``ffprobe``, found once; a missing one gives a human message."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(
            f"{name} is not installed. Install FFmpeg (Debian/Ubuntu: `sudo apt-get install ffmpeg`, "
            "macOS: `brew install ffmpeg`), or run `make demo`, which installs it."
        )
    return path


def run(
    args: Sequence[str],
    *,
    timeout: float = 1800.0,
    input_bytes: bytes | None = None,
    what: str = "ffmpeg",
) -> subprocess.CompletedProcess[bytes]:
    """Run one command (first element a tool name), raising ``MediaError`` on failure or timeout."""
    command = [tool(args[0]), *args[1:]]
    log.debug("running %s", " ".join(command))
    try:
        result = subprocess.run(command, input=input_bytes, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"{what} took longer than {timeout:.0f} s", command=list(command)) from exc
    if result.returncode != 0:
        stderr = result.stderr.decode("utf-8", "replace")[-STDERR_TAIL_CHARS:]
        raise MediaError(f"{what} failed: {_last_line(stderr)}", command=list(command), stderr=stderr)
    return result


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


class RawVideoWriter:
    """Feed numpy frames (H×W×3 uint8) to an FFmpeg encoder process; ``close`` checks its exit code."""

    def __init__(self, args: list[str], timeout: float = 1800.0) -> None:
        self.args = [tool(args[0]), *args[1:]]
        self.timeout = timeout
        self._proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self._proc.stdin is not None
        self._stdin: IO[bytes] = self._proc.stdin

    def write(self, frame: np.ndarray) -> None:
        try:
            self._stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        except BrokenPipeError as exc:
            self.close()
            raise MediaError("the video encoder stopped early", command=self.args) from exc

    def close(self) -> None:
        if self._proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self._stdin.close()
            self._proc.stdin = None  # closed: communicate() must not flush it again
        try:
            _, err = self._proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            self._proc.kill()
            raise MediaError("the video encoder timed out", command=self.args) from exc
        if self._proc.returncode != 0:
            stderr = (err or b"").decode("utf-8", "replace")[-STDERR_TAIL_CHARS:]
            raise MediaError(f"encoding failed: {_last_line(stderr)}", command=self.args, stderr=stderr)

    def __enter__(self) -> RawVideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._proc.kill()
            self._proc.wait()
