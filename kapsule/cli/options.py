"""The ``kapsule make`` options, derived from ``JobParams`` so the CLI can never drift from the API.

Each non-file field of ``JobParams`` becomes one option: its flag is ``--field-name`` (or the short
name in ``FLAGS``), its help is the field's description, its default the field's default, and a field
with a fixed set of values lists them in ``--help`` (JobParams, not click, checks every value, so a
bad one gets the same error code as over the API). The file fields are the SONG argument and
``--reference-image``. ``with_job_options`` appends these options to a command's signature (typer
reads ``__signature__``), and the command receives them as keyword arguments.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import typer

from kapsule.job.params import FILE_FIELDS, JobParams

FLAGS = {"aspect_ratio": "--aspect", "budget_usd": "--budget"}
"""Short flags kept from before the options were derived (the README's commands use them)."""

FILE_OPTIONS = {"song": "SONG", "reference_images": "--reference-image", "lyrics": "--lyrics"}
"""How the CLI fills the file fields: the song argument, a repeatable image option, a lyrics file."""

_F = TypeVar("_F", bound=Callable[..., Any])


def flag_for(name: str) -> str:
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def _choices(annotation: Any) -> tuple[str, ...] | None:
    """The allowed values of a ``Literal`` field (also through ``Annotated``), else None."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is Literal:
        return tuple(str(v) for v in typing.get_args(annotation))
    return None


def _python_type(annotation: Any) -> type:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    optional = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (types.UnionType, typing.Union) and len(optional) == 1:
        annotation = optional[0]  # an optional number is still a number on the command line
    if annotation in (bool, int, float):
        return annotation  # type: ignore[no-any-return]
    return str


def job_option_parameters() -> list[inspect.Parameter]:
    """One keyword-only parameter per non-file ``JobParams`` field, as typer options."""
    parameters = []
    for name, field in JobParams.model_fields.items():
        if name in FILE_FIELDS:
            continue
        choices = _choices(field.annotation)
        # Values are checked by JobParams, not by click: a bad one is then the same one-line error with
        # the same code as over the API. The choices still show in --help.
        metavar = "|".join(choices) if choices else None
        option = typer.Option(field.default, flag_for(name), help=field.description, metavar=metavar)
        kind = _python_type(field.annotation)
        parameters.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
        )
    return parameters


def with_job_options(command: _F) -> _F:
    """Give ``command`` (which takes ``**options``) every job option, for typer to see."""
    signature = inspect.signature(command, eval_str=True)  # typer reads these as real types
    own = [p for p in signature.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    command.__signature__ = signature.replace(parameters=[*own, *job_option_parameters()])  # type: ignore[attr-defined]
    return command


def job_values(options: dict[str, Any]) -> dict[str, Any]:
    """The ``JobParams`` values among a command's keyword arguments."""
    return {k: v for k, v in options.items() if k in JobParams.model_fields and k not in FILE_FIELDS}


__all__ = ["FILE_OPTIONS", "FLAGS", "flag_for", "job_option_parameters", "job_values", "with_job_options"]
