"""Review before paying, from the command line: fix the beat grid, approve (with prompt edits), and
re-roll one shot of a finished job. ``kapsule.cli.main`` registers these on the ``kapsule`` app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from kapsule.cli.common import (
    EXIT_BAD_INPUT,
    ForceOpt,
    OutOpt,
    check_output,
    deliver,
    err,
    fail,
    follow,
    print_review,
    service_for_settings,
)
from kapsule.control.service import GridChange, JobService
from kapsule.core.access import LOCAL_OWNER
from kapsule.core.errors import InvalidParameter, KapsuleError
from kapsule.job.params import validation_message
from kapsule.job.record import JobRecord


def shot_index(number: int) -> int:
    """The storyboard index of shot ``number``: people count shots from 1 (the review table, the
    contact sheet, the studio), the storyboard and the API's paths from 0."""
    if number < 1:
        raise InvalidParameter(f"shots are numbered from 1, got {number}")
    return number - 1


def _parse_edits(edits: list[str]) -> dict[int, str]:
    """``N="prompt"`` edits (N a shot number, from 1) as storyboard index -> prompt."""
    prompts: dict[int, str] = {}
    for edit in edits:
        number, sep, text = edit.partition("=")
        if not sep or not number.strip().isdigit():
            raise InvalidParameter(
                f'--prompt takes N="new prompt" (a shot number, =, the prompt), got {edit!r}'
            )
        prompts[shot_index(int(number))] = text
    return prompts


def _resume(service: JobService, record: JobRecord, output: Path | None) -> None:
    """Follow a job an approval or a re-roll just launched, then write its deliverables."""
    final = follow(service, record.id, record.execution or "")
    deliver(service, final, output)


def regrid(
    job_id: Annotated[str, typer.Argument(help="The job awaiting approval.")],
    tempo: Annotated[str, typer.Option("--tempo", help="keep, double or half the tempo.")] = "keep",
    shift: Annotated[int, typer.Option("--shift", help="Move every bar line by N beats.")] = 0,
    beats_per_bar: Annotated[int | None, typer.Option("--beats-per-bar", help="Bars of N beats.")] = None,
    bpm: Annotated[float | None, typer.Option("--bpm", help="Analyse again at this tempo.")] = None,
) -> None:
    """Fix the beat grid of a job awaiting approval and re-plan its storyboard (nothing is paid)."""
    try:
        change = GridChange.model_validate(
            {"tempo": tempo, "shift_beats": shift, "beats_per_bar": beats_per_bar, "bpm": bpm}
        )
    except ValidationError as exc:
        raise fail(InvalidParameter(validation_message(exc)), EXIT_BAD_INPUT) from None
    try:
        service = service_for_settings()
        service.regrid(LOCAL_OWNER, job_id, change)
        record = service.get(LOCAL_OWNER, job_id)
    except KapsuleError as exc:
        raise fail(exc, EXIT_BAD_INPUT) from None
    print_review(service, record)


def approve(
    job_id: Annotated[str, typer.Argument(help="The job awaiting approval.")],
    edits: Annotated[
        list[str] | None,
        typer.Option("--prompt", help='Change a shot\'s prompt first: N="new prompt" (repeatable).'),
    ] = None,
    output: OutOpt = None,
    force: ForceOpt = False,
) -> None:
    """Approve a reviewed storyboard (after optional prompt edits): generate the shots and the video."""
    try:
        check_output(output, force)
        service = service_for_settings()
        record = service.approve(LOCAL_OWNER, job_id, _parse_edits(edits or []))
    except KapsuleError as exc:
        raise fail(exc, EXIT_BAD_INPUT) from None
    err.print(f"job {record.id}: approved, generating")
    _resume(service, record, output)


def reroll(
    job_id: Annotated[str, typer.Argument(help="A finished job.")],
    shot: Annotated[
        int,
        typer.Argument(help="The shot number to make again (from 1, as the review and contact sheet show)."),
    ],
    prompt: Annotated[str | None, typer.Option("--prompt", help="A new prompt (default: keep it).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="A new seed (default: a random one).")] = None,
    output: OutOpt = None,
    force: ForceOpt = False,
) -> None:
    """Make one shot of a finished job again, as a new job that pays only for that shot."""
    try:
        check_output(output, force)
        service = service_for_settings()
        record = service.reroll(LOCAL_OWNER, job_id, shot_index(shot), prompt=prompt, seed=seed)
    except KapsuleError as exc:
        raise fail(exc, EXIT_BAD_INPUT) from None
    err.print(f"job {record.id}: re-roll of shot {shot} of {job_id}")
    _resume(service, record, output)


# ----------------------------------------------------------------------------------------- analyze
