"""Text a job may store: every string must encode as UTF-8.

JSON may spell a lone UTF-16 surrogate (``"\\ud800"``) and Python decodes it into a ``str`` that no
UTF-8 encoder accepts; such a string passes a length check and then fails in the middle of writing a
record or a notebook (a 500 and half a job). ``has_lone_surrogate`` finds one anywhere in a parsed
body so it can be refused up front, by one validator, ``require_storable``: every API request body
runs it on the whole body (``kapsule.api.schemas.ApiModel``), and ``JobParams`` on its free texts
(``StorableText``), so the CLI, the notebooks and the API refuse them alike (``invalid_parameter``).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator

_T = TypeVar("_T")


def has_lone_surrogate(value: Any) -> bool:
    """True if any string in ``value`` (nested dicts, lists, tuples, keys too) cannot be UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_lone_surrogate(v) for v in value)
    return False


def require_storable(value: _T) -> _T:
    """``value`` unchanged, or ``ValueError`` (pydantic's validation error) if it holds a lone surrogate."""
    if has_lone_surrogate(value):
        raise ValueError("text must be valid Unicode (it contains a lone surrogate such as \\ud800)")
    return value


StorableText = Annotated[str, BeforeValidator(require_storable)]
"""A ``str`` field that refuses a lone surrogate before any other check (a length check passes it)."""
