"""Generate every shot of a storyboard once, resumably, and keep ``manifest.json`` current.

A shot's storage key holds the hash of its request, so a clip that already exists is never
generated (or paid for) again: a re-run job picks up where the killed one stopped. The manifest is
rewritten after every shot, so a killed job loses at most the shots that were in flight. Shots run
on a small thread pool because the work happens outside the GIL (numpy, the FFmpeg encoder process,
or a remote model), and cancellation is checked before each new shot starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from kapsule.core.errors import InvalidParameter, JobCancelled, ObjectNotFound
from kapsule.generation.base import VideoGenerator
from kapsule.infra.storage.base import Storage
from kapsule.job.artifacts import (
    FINISHED_SHOT_STATES,
    Analysis,
    Shot,
    ShotManifest,
    ShotRequest,
    ShotResult,
    Storyboard,
)
from kapsule.job.layout import JobLayout

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, ShotResult], None]


@dataclass(frozen=True)
class _Planned:
    shot: Shot
    request: ShotRequest
    key: str
    storage_key: str


def generate_shots(
    *,
    board: Storyboard,
    analysis: Analysis,
    generator: VideoGenerator,
    storage: Storage,
    layout: JobLayout,
    workdir: Path,
    on_shot: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    workers: int | None = None,
) -> ShotManifest:
    """Make sure every shot of ``board`` has a clip in storage; return the final manifest.

    ``on_shot(done, total, result)`` is called after each shot (reused ones too); ``should_stop``
    is asked before each new shot starts and ``JobCancelled`` is raised once the shots already
    running have been saved. A failing shot is recorded as ``failed`` in the manifest, the other
    running shots are saved, then its error is raised.
    """
    if workers is None:  # the generator knows how many of its shots can be in flight
        workers = generator.max_workers
    if workers < 1:
        raise InvalidParameter(f"workers must be at least 1, got {workers}")
    if should_stop is not None:
        generator.should_stop = should_stop  # a shot waiting for a Veo slot checks again before paying
    plan = [_plan(shot, board, generator, layout) for shot in board.shots]
    total = len(plan)
    previous = _load_manifest(storage, layout)
    results = {p.shot.index: _pending(p, generator) for p in plan}
    done = 0

    def record(result: ShotResult) -> None:
        nonlocal done
        results[result.index] = result
        _write_manifest(storage, layout, results)
        if result.state in FINISHED_SHOT_STATES:
            done += 1
            if on_shot is not None:
                on_shot(done, total, result)

    todo: list[_Planned] = []
    for p in plan:
        if storage.exists(p.storage_key):
            log.info("shot %d: clip %s exists, not generating it again", p.shot.index, p.storage_key)
            record(_reused(p, previous.by_index(p.shot.index), generator))
        else:
            todo.append(p)
    _write_manifest(storage, layout, results)
    if not todo:
        return _manifest(results)

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    error: BaseException | None = None
    cancelled = False
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shot") as pool:
        running: dict[Future[ShotResult], _Planned] = {}
        queue = list(todo)
        while queue or running:
            while queue and len(running) < workers and error is None and not cancelled:
                if should_stop is not None and should_stop():
                    cancelled = True
                    break
                p = queue.pop(0)
                running[pool.submit(_generate_one, p, generator, storage, analysis, workdir)] = p
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                p = running.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # recorded and re-raised below, once running shots are saved
                    log.warning("shot %d failed: %s", p.shot.index, exc)
                    note = str(exc)[:500]
                    results[p.shot.index] = results[p.shot.index].model_copy(
                        update={"state": "failed", "note": note}
                    )
                    _write_manifest(storage, layout, results)
                    error = error or exc
                else:
                    record(result)
    if error is not None:
        raise error
    if cancelled:
        raise JobCancelled(f"cancelled after {done} of {total} shots")
    return _manifest(results)


def _plan(shot: Shot, board: Storyboard, generator: VideoGenerator, layout: JobLayout) -> _Planned:
    request = generator.request_for(shot, board)
    key = request.key()
    return _Planned(shot=shot, request=request, key=key, storage_key=layout.shot(shot.index, key))


def _generate_one(
    p: _Planned, generator: VideoGenerator, storage: Storage, analysis: Analysis, workdir: Path
) -> ShotResult:
    """Render one clip; into storage directly when it is a local folder, else via ``workdir``."""
    direct = storage.local_path(p.storage_key)
    dest = direct if direct is not None else workdir / Path(p.storage_key).name
    result = generator.generate(p.request, p.shot, analysis, dest)
    if direct is None:
        try:
            storage.upload_from(dest, p.storage_key, content_type="video/mp4")
        finally:
            dest.unlink(missing_ok=True)
    log.info("shot %d: generated %s (%d frames)", p.shot.index, p.storage_key, result.frames)
    return result.model_copy(update={"index": p.shot.index, "key": p.key, "file": p.storage_key})


def _pending(p: _Planned, generator: VideoGenerator) -> ShotResult:
    return ShotResult(
        index=p.shot.index, key=p.key, file=p.storage_key, state="pending", generator=generator.name
    )


def _reused(p: _Planned, old: ShotResult | None, generator: VideoGenerator) -> ShotResult:
    """The manifest entry of a clip that already exists: the old one if it matches, else rebuilt."""
    if old is not None and old.key == p.key and old.state in FINISHED_SHOT_STATES:
        return old.model_copy(update={"file": p.storage_key})
    fps = p.request.fps
    frames = (p.request.frames or p.shot.frames) if generator.exact_length else p.request.seconds * fps
    return ShotResult(
        index=p.shot.index,
        key=p.key,
        file=p.storage_key,
        state="done",
        generator=generator.name,
        cost_usd=generator.estimate_cost_usd(p.request),
        seconds=frames / fps,
        frames=frames,
        exact_length=generator.exact_length,
        note="reused an existing clip; its entry was rebuilt (cost is the estimate)",
    )


def _load_manifest(storage: Storage, layout: JobLayout) -> ShotManifest:
    try:
        return ShotManifest.model_validate_json(storage.read_bytes(layout.manifest))
    except ObjectNotFound:
        return ShotManifest()
    except (ValidationError, ValueError) as exc:
        log.warning("ignoring an unreadable %s: %s", layout.manifest, exc)
        return ShotManifest()


def _manifest(results: dict[int, ShotResult]) -> ShotManifest:
    return ShotManifest(shots=[results[i] for i in sorted(results)])


def _write_manifest(storage: Storage, layout: JobLayout, results: dict[int, ShotResult]) -> None:
    data = _manifest(results).model_dump_json(indent=2).encode()
    storage.write_bytes(layout.manifest, data, content_type="application/json")
