"""benchmarks/assembly.py as a subprocess on 6 s from 2 clips (720p, like its --quick but shorter: the
FFmpeg memory it checks depends on the frame size, not the length): it runs, prints its ratios, and its
FFmpeg stays under 400 MB."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO


@pytest.mark.xdist_group("heavy")  # CPU and memory
def test_assembly_benchmark_quick_run_prints_its_ratios_and_stays_under_400_mb(tmp_path: Path) -> None:
    script = REPO / "benchmarks" / "assembly.py"
    args = ["--seconds", "6", "--clips", "2", "--skip-moviepy", "--cache", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    match = re.fullmatch(
        r"assembly/floor=([\d.]+) xfade/floor=([\d.]+) moviepy/assembly=nan rss_mb=(\d+)", last
    )
    assert match, last
    assert int(match.group(3)) <= 400
