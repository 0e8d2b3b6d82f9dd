"""The local prompt writer: deterministic prompts from the user's idea and the music, no network.

Why rules and not a model: the local path must work offline, cost nothing and give the same
storyboard for the same song and parameters (so cached shots are reused). A music video reads as
one piece when the subject and look stay the same while camera, light and pace follow the music;
so every prompt repeats the subject and the style, picks its camera move and pace words from the
shot's energy and its light from the song section, and adds one detail of its own so consecutive
shots differ. When lyrics are given, the words sung during a shot are quoted as imagery to act out.
Choices use a stable hash (never Python's salted ``hash``).
"""

from __future__ import annotations

import hashlib

from kapsule.job.artifacts import Analysis
from kapsule.prompting.base import PromptPlan, ShotBrief

DEFAULT_SUBJECT = "a lone dancer in a long red coat moving through a rain-soaked city at night"
DEFAULT_STYLE = "cinematic, anamorphic 35 mm film look, rich colour grade, shallow depth of field"
NEGATIVE_PROMPT = (
    "text, captions, subtitles, watermark, logo, blurry, distorted faces, extra limbs, low quality"
)

# Energy bands (upper bound exclusive) → camera moves and pace words.
ENERGY_BANDS: tuple[tuple[float, str], ...] = (
    (0.3, "calm"),
    (0.55, "steady"),
    (0.8, "driving"),
    (1.01, "peak"),
)
CAMERA: dict[str, tuple[str, ...]] = {
    "calm": ("Slow dolly-in", "Locked-off wide shot", "Gentle crane rising", "Slow lateral track"),
    "steady": ("Smooth tracking shot", "Slow orbit", "Steady push-in", "Over-the-shoulder follow shot"),
    "driving": ("Handheld follow shot", "Fast dolly-out", "Low-angle tracking shot", "Quick orbit"),
    "peak": ("Whip pan into a crash zoom", "Fast FPV fly-through", "Spinning overhead shot", "Rapid push-in"),
}
PACE: dict[str, str] = {
    "calm": "still, unhurried, lingering movement",
    "steady": "flowing movement with a steady rhythm",
    "driving": "energetic, pulsing movement on the beat",
    "peak": "explosive, frenetic movement, strobing light on every beat",
}
# Section label keywords → lighting; labels the analysis may use that are not here get a stable pick.
LIGHTING: tuple[tuple[tuple[str, ...], str], ...] = (
    (("intro",), "soft pre-dawn blue light and drifting haze"),
    (("pre", "build", "rise"), "rising backlight, beams cutting through haze"),
    (("chorus", "drop", "hook", "refrain"), "bright saturated neon light with lens flares"),
    (("bridge", "break", "interlude"), "silhouettes against a deep coloured sky"),
    (("outro", "end", "coda"), "fading golden light and long shadows"),
    (("verse",), "moody low-key light from practical lamps"),
)
FALLBACK_LIGHTING = (
    "cool moonlight with wet reflections",
    "warm tungsten light and deep shadows",
    "flickering neon signs in magenta and cyan",
    "hard sunlight through venetian blinds",
)
DETAILS = (
    "rain streaking across glass in the foreground",
    "confetti drifting through the air",
    "reflections rippling in puddles",
    "a flock of birds taking off behind",
    "smoke curling through a shaft of light",
    "sparks falling in slow arcs",
    "petals swirling in the wind",
    "mirror shards catching the light",
    "shadows of a passing train",
    "paper lanterns floating upward",
    "dust glowing in a light beam",
    "city lights blurring into streaks",
)
LYRIC_CUE_CHARS = 160  # of sung words quoted into a prompt: the imagery, not the whole verse
DETAIL_STRIDE = 5  # coprime with len(DETAILS): 12 shots in a row never repeat a detail


def _stable_int(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def energy_band(energy: float) -> str:
    """'calm', 'steady', 'driving' or 'peak' for an energy in 0..1."""
    return next(name for bound, name in ENERGY_BANDS if energy < bound)


def lighting_for(section: str) -> str:
    """Light for a song section: known labels by keyword, any other label by a stable pick."""
    label = section.lower()
    for keywords, light in LIGHTING:
        if any(word in label for word in keywords):
            return light
    return FALLBACK_LIGHTING[_stable_int(label) % len(FALLBACK_LIGHTING)]


def lyric_cue(lines: list[str]) -> str:
    """A sentence steering the shot by what is sung during it (empty when nothing is).

    The words are quoted as imagery to act out, never as text to show: video models tend to paint
    quoted text onto signs, which is why the negative prompt also forbids text and captions.
    """
    sung = " / ".join(" ".join(line.split()) for line in lines if line.strip())
    if not sung:
        return ""
    if len(sung) > LYRIC_CUE_CHARS:
        sung = sung[: LYRIC_CUE_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return f'The picture acts out the imagery of the words sung here, "{sung}", without showing any text. '


class LocalPromptWriter:
    """Rule-based writer; same inputs → same prompts."""

    name = "local"
    prompt_tokens = 0  # calls no model

    def write(self, briefs: list[ShotBrief], *, prompt: str, style: str, analysis: Analysis) -> PromptPlan:
        subject = prompt.strip().rstrip(".") or DEFAULT_SUBJECT
        look = style.strip().rstrip(".") or DEFAULT_STYLE
        seed = _stable_int(f"{subject}|{look}")
        prompts = []
        for brief in briefs:
            band = energy_band(max(0.0, min(1.0, brief.energy)))
            moves = CAMERA[band]
            camera = moves[(seed + brief.index) % len(moves)]
            detail = DETAILS[(seed + brief.index * DETAIL_STRIDE) % len(DETAILS)]
            prompts.append(
                f"{camera} of {subject}, {detail}. {lighting_for(brief.section).capitalize()}. "
                f"{PACE[band].capitalize()}, in time with a {brief.tempo:.0f} BPM beat. "
                f"{lyric_cue(brief.lyrics)}"
                f"Style: {look}. Same subject, wardrobe and colour palette as the rest of the video."
            )
        return PromptPlan(
            prompts=prompts,
            negative_prompt=NEGATIVE_PROMPT,
            style_bible=f"Subject: {subject}. Style: {look}.",
            note="" if prompt.strip() else "no prompt given; used the default concept",
        )
