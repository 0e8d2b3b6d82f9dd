"""What runs inside a notebook kernel: opening a job, one function per stage, and what a reviewer reads.

The notebooks call ``kapsule.stages`` (these names) and ``kapsule.stages.report`` / ``plots``.
"""

from kapsule.stages.files import load_lyrics_lines
from kapsule.stages.runners import (
    DEMO_JOB_ID,
    NOTEBOOK_ARGS,
    STAGE_NOTEBOOKS,
    load_analysis,
    load_manifest,
    load_storyboard,
    open_job,
    prepare,
    run_analyze,
    run_assemble,
    run_generate,
    run_storyboard,
    stage_done,
)

__all__ = [
    "DEMO_JOB_ID",
    "NOTEBOOK_ARGS",
    "STAGE_NOTEBOOKS",
    "load_analysis",
    "load_lyrics_lines",
    "load_manifest",
    "load_storyboard",
    "open_job",
    "prepare",
    "run_analyze",
    "run_assemble",
    "run_generate",
    "run_storyboard",
    "stage_done",
]
