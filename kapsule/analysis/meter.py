"""Which bar: the number of beats per bar (2, 3 or 4, or the musician's) and the beat the bars start
on, read from the network's downbeat activation at the tracked beats (step 3), and how plausible the
runner-up readings are."""

from __future__ import annotations

import numpy as np

from kapsule.analysis.common import around

METERS_HEARD = (2, 3, 4)  # bar lengths the beat network's downbeat activation chooses between
# 4/4 is far more common than 3/4 or 2/4: another bar length must show this much more downbeat
# contrast to be chosen. 2/4 needs 1.5×: where beats 1 and 3 of a 4/4 bar are equally marked (a
# ballad's kick on both), two-beat bars score exactly 1.5× four-beat ones, and a cut in mid-bar is
# worse than a bar line missed (four-beat "bars" of a 2/4 piece still start on its bar lines). The
# runner-up reading still offers it.
METER_MARGIN = {4: 1.0, 3: 1.25, 2: 1.5}
PLAUSIBILITY_SCALE = 0.08  # a contrast gap this large makes a runner-up e⁻¹ as plausible
RIVAL_METER = {4: 3, 3: 4, 2: 4}  # the runner-up bar length offered for each


def downbeat_contrasts(beat_frames: np.ndarray, downbeat: np.ndarray, meter: int) -> np.ndarray:
    """Per phase of ``meter``: mean downbeat activation on that phase's beats minus on the others.

    WHY a contrast: in 4/4 only one beat in four is lit, so 4 beats explain it better than 2 (whose
    "downbeats" include the dark third beat); in 2/4 every other beat is lit, and 4 beats leave a lit
    beat among the "others". The right bar length and phase have the largest contrast.
    """
    values = around(downbeat, beat_frames, before=1, after=1)
    out = []
    for phase in range(meter):
        mask = np.zeros(values.size, dtype=bool)
        mask[phase::meter] = True
        out.append(float(values[mask].mean() - values[~mask].mean()) if mask.any() and (~mask).any() else 0.0)
    return np.asarray(out)


def bar_phase(
    beat_frames: np.ndarray, downbeat: np.ndarray, meter: int | None = None, downbeat_index: int | None = None
) -> tuple[int, int]:
    """(beats per bar, index of the first downbeat) from the network's downbeat activation; the
    musician's ``meter`` and bar line (``downbeat_index``) are kept when given."""
    if meter is not None and downbeat_index is not None:
        return meter, downbeat_index % meter
    if beat_frames.size < 4:
        return meter or 4, (downbeat_index or 0) % (meter or 4)
    candidates = (meter,) if meter is not None else METERS_HEARD
    best_meter, best_phase, best = candidates[0], 0, -np.inf
    for m in candidates:
        contrasts = downbeat_contrasts(beat_frames, downbeat, m)
        phase = downbeat_index % m if downbeat_index is not None else int(np.argmax(contrasts))
        score = float(contrasts[phase]) / (METER_MARGIN.get(m, 1.0) if len(candidates) > 1 else 1.0)
        if score > best:
            best_meter, best_phase, best = m, phase, score
    return best_meter, best_phase


def meter_plausibility(
    beat_frames: np.ndarray, downbeat: np.ndarray, meter: int, phase: int, other: int
) -> tuple[float, float, int]:
    """(plausibility of ``other`` beats per bar, of the bar line one beat later, each 0 … 1 against
    the chosen reading, from the gaps in downbeat-activation contrast; and the phase ``other`` beats
    per bar would start on)."""
    if beat_frames.size < 8:
        return 1.0, 1.0, 0
    chosen = downbeat_contrasts(beat_frames, downbeat, meter)
    rival = downbeat_contrasts(beat_frames, downbeat, other)
    meter_gap = float(chosen[phase % meter] - rival.max())
    shift_gap = float(chosen[phase % meter] - chosen[(phase + 1) % meter])
    return (
        float(np.exp(-max(meter_gap, 0.0) / PLAUSIBILITY_SCALE)),
        float(np.exp(-max(shift_gap, 0.0) / PLAUSIBILITY_SCALE)),
        int(np.argmax(rival)),
    )
