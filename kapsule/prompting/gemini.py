"""The Gemini storyboard writer: one style bible and one prompt per shot, as structured JSON.

Gemini decides *what* each shot shows; our analysis decides *where* the cuts are (Gemini's
timestamps for music are unreliable), so it is given the shot list with times, sections and energy
and must answer exactly one prompt per shot index. The answer is a pydantic ``response_schema``; an
answer that does not parse or has the wrong shots is asked again (``INVALID_ANSWER_ATTEMPTS``), and
if Gemini still gives nothing usable, or the service stays down after the retries (429/5xx,
timeouts), the local writer takes over with the reason recorded in the plan's ``note`` (it ends up
in ``storyboard.json``), so a storyboard is always produced. What a retry cannot fix is never hidden
behind that fallback: a missing configuration raises ``ConfigError``, and Google refusing the call
(401/403 missing role or API, 404 retired or unserved model, 400 bad request) raises
``GoogleRequestRefused`` with the cause, failing the stage.

With ``settings.gemini_send_audio`` and a ``song`` set on the writer, Gemini also hears the song (a
32 kb/s mono MP3 made by ``media``, inline), so prompts can follow its mood and instruments; the
cut times still come from our analysis.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError

from kapsule import media
from kapsule.core.errors import ConfigError, GenerationError, GoogleRequestRefused
from kapsule.core.settings import Settings
from kapsule.infra.genai_client import make_genai_client, temperature_for, with_retries
from kapsule.job.artifacts import Analysis
from kapsule.prompting.base import PromptPlan, ShotBrief
from kapsule.prompting.local import LocalPromptWriter

if TYPE_CHECKING:
    from google import genai

log = logging.getLogger(__name__)

INVALID_ANSWER_ATTEMPTS = 3  # asks per storyboard when the JSON is malformed or lists the wrong shots

SYSTEM = (
    "You are the director of a music video. Write one text-to-video prompt per shot for Google Veo. "
    "Keep one visual world: the same palette, look and recurring characters or objects in every shot, "
    "described the same way each time, so the clips cut together as one video. Follow the music: calm "
    "shots move slowly, loud shots move fast; choruses are the most spectacular. Never put text, "
    "captions or logos in a shot. The cut times are fixed: do not change or mention them. Where a shot "
    "lists the lyrics sung during it, let its picture follow their imagery and story, never by showing "
    "the words. Answer JSON only, with exactly one entry per shot index given."
)


class StyleBible(BaseModel):
    palette: str = Field(description="The colour palette every shot shares")
    look: str = Field(description="Camera, lens, film stock, lighting style")
    recurring: list[str] = Field(description="Characters or objects that reappear, described precisely")


class ShotPrompt(BaseModel):
    index: int
    prompt: str = Field(description="One Veo prompt: subject, action, camera move, light; 1-3 sentences")


class GeminiStoryboard(BaseModel):
    """The structured answer Gemini must give (sent as ``response_schema``)."""

    style_bible: StyleBible
    negative_prompt: str
    shots: list[ShotPrompt]


class GeminiPromptWriter:
    """``PromptWriter`` backed by a Gemini model id (e.g. ``gemini-3.6-flash``); the temperature is
    Google's advice for the model's family (``temperature_for``)."""

    def __init__(self, model: str, settings: Settings, *, song: Path | None = None) -> None:
        self.name = model
        self.settings = settings
        self.prompt_tokens = 0  # summed over this writer's calls, for the job record's cost
        self.song = song  # the job's song; sent only with settings.gemini_send_audio
        self._client: genai.Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> genai.Client:
        with self._lock:
            if self._client is None:
                self._client = make_genai_client(self.settings, "gemini")
            return self._client

    def write(self, briefs: list[ShotBrief], *, prompt: str, style: str, analysis: Analysis) -> PromptPlan:
        client = self.client  # ConfigError propagates: a broken setup is not a fallback case
        request = _request_text(briefs, prompt=prompt, style=style, analysis=analysis)
        audio = self._audio_part()
        problem = ""
        for attempt in range(1, INVALID_ANSWER_ATTEMPTS + 1):
            try:
                answer = self._ask(
                    client,
                    request
                    if not problem
                    else f"{request}\n\nYour previous answer "
                    f"was unusable ({problem}). Answer again, valid JSON only.",
                    audio,
                )
            except (ConfigError, GoogleRequestRefused):
                raise  # a setup or a request a retry cannot fix: fail the stage and say why
            except GenerationError as exc:  # transient errors outlived the retries: say so, fall back
                return _fallback(briefs, prompt, style, analysis, f"{self.name} unavailable: {exc}")
            try:
                plan = _parse(answer, len(briefs))
            except ValueError as exc:
                problem = str(exc)[:300]
                log.warning("%s answer %d unusable: %s", self.name, attempt, problem)
                continue
            bible = plan.style_bible
            return PromptPlan(
                prompts=[s.prompt.strip() for s in sorted(plan.shots, key=lambda s: s.index)],
                negative_prompt=plan.negative_prompt.strip(),
                style_bible=(
                    f"Palette: {bible.palette}. Look: {bible.look}. Recurring: {'; '.join(bible.recurring)}."
                ),
            )
        return _fallback(
            briefs, prompt, style, analysis,
            f"{self.name} gave no usable storyboard in {INVALID_ANSWER_ATTEMPTS} tries ({problem})",
        )  # fmt: skip

    def rephrase(self, prompt: str, reasons: list[str]) -> str:
        """Rewrite a prompt Veo's safety filter refused, keeping its look; used once per refused shot."""
        from google.genai import types

        text = (
            "A video model's safety filter refused this prompt"
            + (f" ({'; '.join(reasons)})" if reasons else "")
            + ". Rewrite it so it keeps the same look, subject and camera move but is clearly safe: no "
            "violence, no real people or brands, nothing sexual. Answer with the new prompt only.\n\n"
            + prompt
        )
        response = with_retries(
            lambda: self.client.models.generate_content(
                model=self.name,
                contents=text,
                config=types.GenerateContentConfig(temperature=temperature_for(self.name, 0.4)),
            ),
            f"{self.name} rephrase",
        )
        new = (response.text or "").strip()
        if not new:
            raise GenerationError(f"{self.name} returned an empty re-phrasing")
        return new

    def _audio_part(self) -> Any:
        """The song as an inline MP3 part, or ``None`` when audio is off or there is no song."""
        if not (self.settings.gemini_send_audio and self.song is not None):
            return None
        from google.genai import types

        with tempfile.TemporaryDirectory(prefix="kapsule-gemini-") as tmp:
            excerpt = Path(tmp) / "song.mp3"
            cmd = media.audio_excerpt_cmd(self.song, excerpt, max_seconds=self.settings.max_song_seconds)
            media.run(cmd, timeout=self.settings.ffmpeg_timeout_s)
            return types.Part.from_bytes(data=excerpt.read_bytes(), mime_type="audio/mpeg")

    def _ask(self, client: genai.Client, text: str, audio: Any = None) -> str:
        from google.genai import types

        config = types.GenerateContentConfig(
            system_instruction=SYSTEM,
            response_mime_type="application/json",
            response_schema=GeminiStoryboard,
            temperature=temperature_for(self.name, 0.8),
        )
        response = with_retries(
            lambda: client.models.generate_content(
                model=self.name, contents=[audio, text] if audio is not None else text, config=config
            ),
            f"{self.name} storyboard",
        )
        usage = response.usage_metadata
        if usage is not None and usage.prompt_token_count:
            self.prompt_tokens += usage.prompt_token_count
        return response.text or ""


def _request_text(briefs: list[ShotBrief], *, prompt: str, style: str, analysis: Analysis) -> str:
    sections = [
        {"label": s.label, "start": round(s.start, 2), "end": round(s.end, 2)} for s in analysis.sections
    ]
    shots = [
        {
            "index": b.index,
            "start": round(b.start, 2),
            "end": round(b.end, 2),
            "section": b.section,
            "energy": round(b.energy, 2),
            **({"lyrics": b.lyrics} if b.lyrics else {}),
        }
        for b in briefs
    ]
    return (
        f"Concept: {prompt.strip() or 'your choice, fitting the music'}\n"
        f"Style: {style.strip() or 'your choice'}\n"
        f"Song: {analysis.duration:.1f} s at {analysis.tempo:.0f} BPM; sections: {json.dumps(sections)}\n"
        f"Shots ({len(briefs)}, energy 0..1):\n{json.dumps(shots, ensure_ascii=False)}"
    )


def _parse(answer: str, count: int) -> GeminiStoryboard:
    """The answer as a storyboard with exactly shots 0..count-1; ``ValueError`` says what is wrong."""
    try:
        plan = GeminiStoryboard.model_validate_json(answer)
    except ValidationError as exc:
        raise ValueError(f"not the requested JSON: {exc.errors()[0].get('msg', exc)}") from exc
    indices = sorted(s.index for s in plan.shots)
    if indices != list(range(count)):
        raise ValueError(f"expected shots 0..{count - 1}, got indices {indices[:10]}")
    if any(not s.prompt.strip() for s in plan.shots):
        raise ValueError("a shot has an empty prompt")
    return plan


def _fallback(
    briefs: list[ShotBrief], prompt: str, style: str, analysis: Analysis, reason: str
) -> PromptPlan:
    log.warning("falling back to the local prompt writer: %s", reason)
    plan = LocalPromptWriter().write(briefs, prompt=prompt, style=style, analysis=analysis)
    note = f"fell back to the local writer: {reason}"[:500]
    return plan.model_copy(update={"note": note})
