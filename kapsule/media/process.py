"""The only code in the library that starts FFmpeg or ffprobe: find the tool, run it, or feed it frames.

Nothing is ever passed through a shell. ``run`` executes with a timeout and turns any failure into a
``MediaError`` carrying the command and the tail of stderr; ``run_streaming`` does the same for a
process whose output is consumed piece by piece (and whose input may be fed the same way), so that
what it produces is never held whole; ``RawVideoWriter`` streams frames into an encoder and checks its
exit code the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
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


def run_streaming(
    args: Sequence[str],
    consume: Callable[[bytes], bool],
    *,
    feed: Iterable[bytes] | None = None,
    timeout: float,
    memory_bytes: int | None = None,
    what: str = "ffmpeg",
) -> bool:
    """Run one command, handing its stdout to ``consume`` as it arrives; True if it ran to its end.

    ``consume`` returns False to stop the process early (then False is returned and its exit code
    does not matter). ``feed`` is written to its stdin from a thread. The process is killed after
    ``timeout`` seconds (``MediaError``), and on Linux its address space is capped at ``memory_bytes``,
    so neither a slow nor a greedy decode can hold the caller up or exhaust its machine.
    """
    command = [tool(args[0]), *args[1:]]
    log.debug("running %s", " ".join(command))
    stdin = subprocess.PIPE if feed is not None else subprocess.DEVNULL
    proc = subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if memory_bytes is not None and sys.platform == "linux":
        import resource  # Unix only; the cap is a guard, not a condition of working

        with contextlib.suppress(OSError, ValueError):
            resource.prlimit(proc.pid, resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    tail = _StderrTail(proc)
    threads = [threading.Thread(target=tail.collect, daemon=True)]
    if feed is not None:
        threads.append(threading.Thread(target=_feed, args=(proc, feed), daemon=True))
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        proc.kill()

    timer = threading.Timer(timeout, expire)
    for thread in [*threads, timer]:
        thread.start()
    finished = False  # the output ran to its end
    stopped = False  # ``consume`` asked to stop
    try:
        assert proc.stdout is not None
        while chunk := os.read(proc.stdout.fileno(), 1 << 16):  # what is there, up to 64 KiB
            if not consume(chunk):
                stopped = True
                break
        finished = not stopped
    finally:
        timer.cancel()
        if not finished and proc.poll() is None:  # stopped, or ``consume`` raised: nothing more is read
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()
        returncode = proc.wait()
        for thread in threads:
            thread.join(timeout=5.0)
    if expired.is_set():
        raise MediaError(f"{what} took longer than {timeout:.0f} s", command=list(command))
    if finished and returncode != 0:
        stderr = tail.text()
        raise MediaError(f"{what} failed: {_last_line(stderr)}", command=list(command), stderr=stderr)
    return finished


def _feed(proc: subprocess.Popen[bytes], feed: Iterable[bytes]) -> None:
    """Write ``feed`` to the process's stdin; a process that stopped reading ends the feed quietly."""
    assert proc.stdin is not None
    try:
        for chunk in feed:
            proc.stdin.write(chunk)
    except (BrokenPipeError, ValueError, OSError):
        return  # the process exited or was stopped: what it did not read is not needed
    finally:
        with contextlib.suppress(BrokenPipeError, OSError, ValueError):
            proc.stdin.close()


class _StderrTail:
    """The last ``STDERR_TAIL_CHARS`` of a process's stderr, read from a thread so the pipe never fills."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self._tail = b""

    def collect(self) -> None:
        assert self._proc.stderr is not None
        with self._proc.stderr as err:
            while chunk := os.read(err.fileno(), 1 << 14):
                self._tail = (self._tail + chunk)[-STDERR_TAIL_CHARS * 4 :]

    def text(self) -> str:
        return self._tail.decode("utf-8", "replace")[-STDERR_TAIL_CHARS:]


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
