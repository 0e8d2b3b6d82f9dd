"""A small analysis and storyboard for video-generation tests (three-second shots, one Veo model)."""

from __future__ import annotations

from kapsule.job.artifacts import Analysis, EnergyCurve, Section, Shot, Storyboard

MODEL = "veo-3.0-generate-001"


def veo_analysis(duration: float = 9.0) -> Analysis:
    beats = [i * 0.5 for i in range(int(duration * 2))]
    times = [i * 0.25 for i in range(int(duration * 4))]
    return Analysis(
        duration=duration,
        tempo=120.0,
        beats=beats,
        downbeats=beats[::4],
        sections=[Section(start=0.0, end=duration, label="verse")],
        energy=EnergyCurve(times=times, values=[0.5 for _ in times]),
    )


def veo_board(prompts: list[str], seconds: float = 3.0, fps: int = 24) -> Storyboard:
    shots = []
    for i, text in enumerate(prompts):
        start, end = i * seconds, (i + 1) * seconds
        shots.append(
            Shot(
                index=i,
                start=start,
                end=end,
                start_frame=round(start * fps),
                end_frame=round(end * fps),
                request_seconds=4,
                section="verse",
                energy=0.5,
                prompt=text,
                negative_prompt="text, watermark",
                seed=100 + i,
            )
        )
    n = len(prompts)
    return Storyboard(
        video_model=MODEL, duration=n * seconds, total_frames=round(n * seconds * fps), shots=shots
    )
