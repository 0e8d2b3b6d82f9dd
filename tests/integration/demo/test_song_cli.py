"""``python -m kapsule.demo.song`` as a subprocess: the same bytes as the library writes, and its usage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_command_line_writes_the_same_bytes(demo_song_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "listen.wav"
    done = subprocess.run(
        [sys.executable, "-m", "kapsule.demo.song", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "listen.wav" in done.stdout
    assert out.read_bytes() == demo_song_file.read_bytes()  # same bytes in another process
    usage = subprocess.run([sys.executable, "-m", "kapsule.demo.song"], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage" in usage.stderr
