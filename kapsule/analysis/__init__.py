"""Song analysis: tempo, beats, meter, downbeats, sections and an energy curve from mono samples.

The steps live in their own modules: ``dsp`` (spectral features, numpy/scipy only), ``tempo``
(which tempo), ``beats`` (which phase), ``meter`` (which bar), ``sections`` (sections and energy),
and ``core`` (the whole analysis). ``kapsule.song.probe.analyze_song`` loads a file and calls it.
"""

from __future__ import annotations

from kapsule.analysis.common import ANALYSIS_RATE
from kapsule.analysis.core import analyze_samples

__all__ = ["ANALYSIS_RATE", "analyze_samples"]
