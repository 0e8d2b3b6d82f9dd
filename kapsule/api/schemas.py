"""The base of every request body the API reads: unknown fields refused, every string storable.

A lone surrogate (``"\\ud800"``) anywhere in a body is a 422 here, before anything is written
(it used to pass validation and fail while the job was being stored: a 500 and an orphan song).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from kapsule.core.text import has_lone_surrogate


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        if has_lone_surrogate(data):
            raise ValueError("text must be valid Unicode (it contains a lone surrogate such as \\ud800)")
        return data
