"""The pictures a reviewer looks at in the stage notebooks: waveform, energy, shot timeline.

Notebook presentation is kept out of the pipeline logic: ``stages.py`` runs a stage and writes its
outputs, this module only draws an analysis or storyboard with matplotlib (imported lazily, so a
pipeline run that shows no plot never pays for it). Nothing here writes to storage or the job record.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kapsule.infra.context import JobContext
from kapsule.job.artifacts import Analysis, Storyboard

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

_SECTION_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


PLOT_RATE = 8000  # a waveform picture needs no more


def song_samples(ctx: JobContext, sample_rate: int = PLOT_RATE) -> np.ndarray:
    """The song as mono samples for plotting."""
    from kapsule.song.probe import load_audio

    return load_audio(ctx.input_song(), sample_rate=sample_rate)


def _envelope(samples: np.ndarray, sample_rate: int, bins: int = 3000) -> tuple[Any, Any, Any]:
    import numpy as np

    n = max(1, len(samples) // bins)
    usable = samples[: (len(samples) // n) * n].reshape(-1, n)
    times = (np.arange(usable.shape[0]) + 0.5) * n / sample_rate
    return times, usable.min(axis=1), usable.max(axis=1)


class Plot:
    """A matplotlib figure that a notebook shows as one PNG, whatever backend the kernel has.

    Returning a bare ``Figure`` renders only as text unless pyplot's inline backend happens to be
    active, and pyplot figures are shown twice (once auto-shown, once returned); this shows once.
    """

    def __init__(self, figure: Figure, description: str) -> None:
        self.figure = figure
        self.description = description

    def _repr_png_(self) -> bytes:
        import io

        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()

    def save(self, path: Path) -> Path:
        self.figure.savefig(path, dpi=100)
        return Path(path)

    def __repr__(self) -> str:
        return f"<plot: {self.description}>"


def _figure(rows: int = 1, height: float = 3.0) -> tuple[Figure, Any]:
    # A bare Figure (not pyplot) is not auto-shown by the inline backend, so returning it from a
    # cell displays it exactly once.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, height * rows), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return fig, axes


def _draw_sections(ax: Any, analysis: Analysis, label: bool = True) -> None:
    colors: dict[str, str] = {}
    for s in analysis.sections:
        color = colors.setdefault(s.label, _SECTION_COLORS[len(colors) % len(_SECTION_COLORS)])
        ax.axvspan(s.start, s.end, color=color, alpha=0.13, lw=0)
        if label:
            ax.text(
                s.start + 0.2,
                0.97,
                s.label,
                transform=ax.get_xaxis_transform(),
                va="top",
                fontsize=9,
                color=color,
            )


def _draw_waveform(ax: Any, samples: np.ndarray, sample_rate: int, color: str = "#444") -> None:
    times, low, high = _envelope(samples, sample_rate)
    ax.fill_between(times, low, high, color=color, lw=0)
    peak = float(max(abs(low.min()), abs(high.max()), 1e-6))
    ax.set_ylim(-peak * 1.1, peak * 1.25)
    ax.set_yticks([])


def plot_waveform(analysis: Analysis, samples: np.ndarray, sample_rate: int = PLOT_RATE) -> Plot:
    """Waveform with sections shaded, beats as thin lines and downbeats as thick ones."""
    fig, (ax,) = _figure(height=3.2)
    _draw_sections(ax, analysis)
    _draw_waveform(ax, samples, sample_rate)
    ax.vlines(analysis.beats, 0, 1, transform=ax.get_xaxis_transform(), color="#1f77b4", lw=0.5, alpha=0.6)
    ax.vlines(
        analysis.downbeats, 0, 1, transform=ax.get_xaxis_transform(), color="#d62728", lw=1.2, alpha=0.8
    )
    ax.set_xlim(0, analysis.duration)
    ax.set_xlabel("seconds")
    ax.set_title(
        f"{analysis.tempo:.1f} BPM · {len(analysis.beats)} beats (blue) · "
        f"{len(analysis.downbeats)} downbeats (red) · {len(analysis.sections)} sections"
    )
    return Plot(fig, "waveform with beats, downbeats and sections")


def plot_energy(analysis: Analysis) -> Plot:
    """The energy curve (0..1) over the sections: what drives shot length and intensity."""
    fig, (ax,) = _figure(height=2.4)
    _draw_sections(ax, analysis)
    ax.plot(analysis.energy.times, analysis.energy.values, color="#2ca02c", lw=1.5)
    ax.set_ylim(0, 1.08)
    ax.set_xlim(0, analysis.duration)
    ax.set_ylabel("energy")
    ax.set_xlabel("seconds")
    return Plot(fig, "energy curve over the sections")


def plot_shots(
    board: Storyboard,
    analysis: Analysis,
    samples: np.ndarray,
    sample_rate: int = PLOT_RATE,
    lyrics: Sequence[tuple[float, float, str]] = (),
) -> Plot:
    """The shot timeline over the waveform: each shot a coloured bar, each cut a line on the music,
    and the sung lines (``lyrics``: start, end, text) as bars along the bottom, so a reviewer sees
    which words each shot carries and whether cuts fall on line starts."""
    fig, (ax,) = _figure(height=3.2)
    for index, (start, end, text) in enumerate(lyrics):
        low = 0.03 + 0.07 * (index % 2)  # alternate rows: neighbouring lines stay readable
        ax.axvspan(start, end, ymin=low, ymax=low + 0.06, color="#5b3cc4", alpha=0.35, lw=0)
        label = text if len(text) <= 28 else text[:27] + "…"
        ax.text(start, low + 0.03, label, transform=ax.get_xaxis_transform(), fontsize=6, va="center")
    _draw_sections(ax, analysis, label=False)
    _draw_waveform(ax, samples, sample_rate, color="#999")
    ax.vlines(analysis.downbeats, 0, 0.1, transform=ax.get_xaxis_transform(), color="#d62728", lw=0.8)
    for shot in board.shots:
        color = _SECTION_COLORS[shot.index % len(_SECTION_COLORS)]
        ax.axvspan(shot.start, shot.end, ymin=0.86, ymax=0.97, color=color, alpha=0.85, lw=0)
        ax.axvline(shot.start, color="black", lw=0.8, alpha=0.7)
        ax.text((shot.start + shot.end) / 2, 0.915, str(shot.number), transform=ax.get_xaxis_transform(),
                ha="center", va="center", fontsize=8, color="white")  # fmt: skip
    ax.set_xlim(0, board.duration)
    ax.set_xlabel("seconds")
    ax.set_title(f"{len(board.shots)} shots; cuts (black) on the music, downbeats (red ticks)")
    return Plot(fig, f"timeline of {len(board.shots)} shots over the waveform")
