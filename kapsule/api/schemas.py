"""The base of every request body the API reads: unknown fields refused, every string storable.

A lone surrogate (``"\\ud800"``) anywhere in a body is a 422 here, before anything is written
(it used to pass validation and fail while the job was being stored: a 500 and an orphan song).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from kapsule.core.text import require_storable


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        return require_storable(data)
