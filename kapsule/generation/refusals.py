"""Veo's refusals: telling a blocked prompt from any other failed operation, and softening a prompt.

A refusal is not a failure of the job: the prompt is re-phrased once (by Gemini when it is the prompt
model, else by ``soften_prompt`` here), and a second refusal is filled by the local renderer and
reported in the manifest. These rules are pure text and are tested without a server.
"""

from __future__ import annotations

import re
from typing import Any

# A prompt blocked before generation: the operation ends with this error code (google.rpc INVALID_ARGUMENT)
# and a message naming Google's usage/Responsible AI rules (see docs/cloud-settings.md).
PROMPT_BLOCK_CODE = 3
_PROMPT_BLOCK = re.compile(
    r"responsible ai|usage guidelines|sensitive words|violat\w* .*polic", re.IGNORECASE
)
SOFTEN_SUFFIX = "Tasteful, family-friendly, non-violent, no real people, no brands."
_HARSH = re.compile(
    r"\b(blood\w*|gore|gory|violen\w*|weapon\w*|guns?|kill\w*|dead|death|naked|nude|explod\w*|explosion\w*|"
    r"fight\w*|crash\w*|burning|fire)\b",
    re.IGNORECASE,
)


def soften_prompt(prompt: str, reasons: list[str]) -> str:
    """The deterministic re-phrasing used without Gemini: drop harsh words, ask for a safe rendition."""
    del reasons
    softened = _HARSH.sub("", prompt)
    softened = re.sub(r"\s{2,}", " ", softened).strip()
    return f"{softened} {SOFTEN_SUFFIX}".strip()


def is_prompt_block(error: dict[str, Any]) -> bool:
    """True when an operation's ``error`` is Veo refusing the prompt itself (a safety block)."""
    return error.get("code") == PROMPT_BLOCK_CODE and bool(
        _PROMPT_BLOCK.search(str(error.get("message", "")))
    )


__all__ = ["PROMPT_BLOCK_CODE", "SOFTEN_SUFFIX", "is_prompt_block", "soften_prompt"]
