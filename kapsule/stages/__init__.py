"""What runs inside a notebook kernel: opening a job, one module per stage, and what a reviewer reads.

Each notebook under ``notebooks/`` stays thin (a tagged parameters cell, then calls into these names
and into ``report`` / ``plots``), so the logic is tested like any other library code and a creative
technologist can drive one job by hand from JupyterLab. Every stage reads its inputs from and writes
its outputs to the job's storage folder (``job.layout.JobLayout``), which is what lets any stage be
re-run alone and lets the pipeline skip a finished stage when a job is retried (``stage_done``).

A ``KapsuleError`` raised here crosses the notebook boundary as itself: papermill reports its class
name and text, and the pipeline maps the name back to the class (``errors.by_name``), so the job
record keeps ``not_audio`` rather than a generic "stage failed".
"""

import warnings

from kapsule.stages.analyze import Analyzed, run_analyze
from kapsule.stages.assemble import run_assemble
from kapsule.stages.files import load_analysis, load_lyrics_lines, load_manifest, load_storyboard
from kapsule.stages.generate import run_generate
from kapsule.stages.job import (
    DEMO_JOB_ID,
    STAGE_NOTEBOOKS,
    open_demo_job,
    open_job,
    prepare,
    stage_done,
)
from kapsule.stages.storyboard import run_storyboard

# pooch (imported by librosa) imports tqdm.auto, which warns in a kernel without ipywidgets; the
# warning would be the first thing a reviewer reads in the analysis notebook.
warnings.filterwarnings("ignore", message="IProgress not found", module="tqdm")

__all__ = [
    "DEMO_JOB_ID",
    "STAGE_NOTEBOOKS",
    "Analyzed",
    "load_analysis",
    "load_lyrics_lines",
    "load_manifest",
    "load_storyboard",
    "open_demo_job",
    "open_job",
    "prepare",
    "run_analyze",
    "run_assemble",
    "run_generate",
    "run_storyboard",
    "stage_done",
]
