"""Notebook 03's stage: every shot of the storyboard that is not in storage yet, within the budget."""

from __future__ import annotations

from kapsule.generation import make_video_generator
from kapsule.generation.references import note_ignored_images
from kapsule.generation.runner import generate_shots
from kapsule.infra.context import JobContext
from kapsule.job.artifacts import ShotManifest, ShotResult
from kapsule.job.update import CostEstimate, JobUpdate
from kapsule.stages.files import load_analysis, load_storyboard, make_contact_sheet_file
from kapsule.storyboard.cost import check_budget, estimate_storyboard


def run_generate(ctx: JobContext) -> ShotManifest:
    """Generate every shot of the storyboard that is not in storage yet; progress per shot.

    Before any request the storyboard is priced (clips already in storage cost nothing) and checked
    against ``budget_usd`` (0 or ``None``: no cap) on top of what the job already spent or holds
    reserved, so a job stops with ``budget_exceeded`` before paying for anything rather than half-way
    through. The spending itself is the ledger's: each request is reserved before it is sent and
    settled when done (``generation.paid``), in the store's transaction, so a killed or retried job
    never loses or double-counts it, and a cancelled one still counts what it started.
    """
    board = load_storyboard(ctx)
    analysis = load_analysis(ctx)
    generator = make_video_generator(ctx, board.video_model)
    budget_usd = ctx.params.budget_usd
    estimate = estimate_storyboard(board, generator)
    new = estimate_storyboard(board, generator, exists=ctx.storage.exists, layout=ctx.layout)
    ctx.update(
        JobUpdate(
            set_estimate=CostEstimate(
                estimated_usd=estimate.total_usd, video_seconds=round(estimate.video_seconds, 3)
            )
        )
    )
    committed = ctx.record().cost.committed_usd
    check_budget(new, float(budget_usd) if budget_usd else None, spent_usd=committed)
    ctx.report(
        "generate",
        0.0,
        f"generating {new.to_generate} of {len(board.shots)} shots with {generator.name} "
        f"(estimated ${new.new_usd:.2f})",
    )

    def on_shot(done: int, total: int, result: ShotResult) -> None:
        ctx.report("generate", 0.95 * done / max(1, total), f"shot {done}/{total} {result.state}")

    manifest = generate_shots(
        board=board,
        analysis=analysis,
        generator=generator,
        storage=ctx.storage,
        layout=ctx.layout,
        workdir=ctx.workdir,
        on_shot=on_shot,
        should_stop=ctx.cancelled,
    )
    if (noted := note_ignored_images(manifest, generator.name, ctx.params)) is not None:
        manifest = noted  # the local renderer draws no images: say so in the manifest
        ctx.write_model(ctx.layout.manifest, manifest)
    ctx.report("generate", 0.97, "contact sheet")
    make_contact_sheet_file(ctx, board, manifest)
    ctx.report("generate", 1.0, f"{len(manifest.shots)} shots ready")
    return manifest
