"""What runs inside a notebook kernel: opening a job, one module per stage, and what a reviewer reads.

Each notebook under ``notebooks/`` stays thin (a tagged parameters cell, then calls into these names
and into ``report`` / ``plots``), so the logic is tested like any other library code and a creative
technologist can drive one job by hand from JupyterLab. Every stage reads its inputs from and writes
its outputs to the job's storage folder (``job.layout.JobLayout``), which is what lets any stage be
re-run alone and lets the pipeline skip a finished stage when a job is retried (``stage_done``).

A ``KapsuleError`` raised here crosses the notebook boundary as itself: papermill reports its class
name and text, and the pipeline maps the name back to the class (``errors.by_name``), so the job
record keeps ``not_audio`` rather than a generic "stage failed".

The names below are loaded on first use (PEP 562): the job entrypoint needs only ``stage_done`` and
``STAGE_NOTEBOOKS``, and a kernel only its own stage, so neither pays for importing the analysis,
the generators and the assembly it does not run (about half a second of CPU per process).
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what mypy and readers see; at run time ``__getattr__`` below loads each on first use
    from kapsule.stages.analyze import Analyzed as Analyzed
    from kapsule.stages.analyze import run_analyze as run_analyze
    from kapsule.stages.assemble import run_assemble as run_assemble
    from kapsule.stages.files import load_analysis as load_analysis
    from kapsule.stages.files import load_lyrics_lines as load_lyrics_lines
    from kapsule.stages.files import load_manifest as load_manifest
    from kapsule.stages.files import load_storyboard as load_storyboard
    from kapsule.stages.generate import run_generate as run_generate
    from kapsule.stages.job import DEMO_JOB_ID as DEMO_JOB_ID
    from kapsule.stages.job import STAGE_NOTEBOOKS as STAGE_NOTEBOOKS
    from kapsule.stages.job import open_demo_job as open_demo_job
    from kapsule.stages.job import open_job as open_job
    from kapsule.stages.job import prepare as prepare
    from kapsule.stages.job import stage_done as stage_done
    from kapsule.stages.storyboard import run_storyboard as run_storyboard

# pooch (imported by librosa) imports tqdm.auto, which warns in a kernel without ipywidgets; the
# warning would be the first thing a reviewer reads in the analysis notebook.
warnings.filterwarnings("ignore", message="IProgress not found", module="tqdm")

_HOMES = {
    "Analyzed": "analyze",
    "run_analyze": "analyze",
    "run_assemble": "assemble",
    "load_analysis": "files",
    "load_lyrics_lines": "files",
    "load_manifest": "files",
    "load_storyboard": "files",
    "run_generate": "generate",
    "DEMO_JOB_ID": "job",
    "STAGE_NOTEBOOKS": "job",
    "open_demo_job": "job",
    "open_job": "job",
    "prepare": "job",
    "stage_done": "job",
    "run_storyboard": "storyboard",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # looked up once
    return value


__all__ = sorted(_HOMES)
