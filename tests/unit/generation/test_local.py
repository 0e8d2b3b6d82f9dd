"""The local renderer and the shot runner, on real encodes (short shots keep this quick).

What a user would check: the clips are Veo-shaped H.264 of exactly the shot's length, different
shots look different, the picture follows the music, a re-run never renders a clip twice, and a
cancel stops between shots.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from kapsule import media
from kapsule.core.errors import GenerationError, InvalidParameter, JobCancelled, UnknownModel
from kapsule.core.settings import Settings
from kapsule.generation import make_video_generator
from kapsule.generation.base import VideoGenerator
from kapsule.generation.local import (
    MOTIF_WORDS,
    MOTIFS,
    PALETTE_WORDS,
    PALETTES,
    LocalRenderer,
    choose_look,
    music_track,
    render_frames,
)
from kapsule.generation.runner import generate_shots
from kapsule.infra.storage import open_storage
from kapsule.infra.storage.local import LocalStorage
from kapsule.job.artifacts import (
    Analysis,
    EnergyCurve,
    Section,
    Shot,
    ShotManifest,
    ShotRequest,
    ShotResult,
    Storyboard,
)
from kapsule.job.layout import JobLayout
from kapsule.job.record import new_job_id
from tests.support.contexts import job_context

FPS = 24


def analysis(*, energy: float = 0.7, beat_every: float | None = 0.5, duration: float = 20.0) -> Analysis:
    """A 120 bpm song (beats every 0.5 s, a downbeat every 2 s) of constant energy."""
    beats = list(np.arange(0.0, duration, beat_every)) if beat_every else []
    return Analysis(
        duration=duration,
        tempo=60.0 / beat_every if beat_every else 0.0,
        beats=[float(b) for b in beats],
        downbeats=[float(b) for b in beats[::4]],
        sections=[
            Section(start=0.0, end=10.0, label="verse"),
            Section(start=10.0, end=duration, label="chorus"),
        ],
        energy=EnergyCurve(
            times=[i * 0.1 for i in range(int(duration * 10))], values=[energy] * int(duration * 10)
        ),
    )


def shot(
    index: int = 0,
    *,
    start_frame: int = 0,
    frames: int = FPS,
    prompt: str = "neon city at night",
    section: str = "verse",
    seed: int = 7,
) -> Shot:
    return Shot(
        index=index,
        start=start_frame / FPS,
        end=(start_frame + frames) / FPS,
        start_frame=start_frame,
        end_frame=start_frame + frames,
        request_seconds=4,
        section=section,
        energy=0.5,
        prompt=prompt,
        seed=seed,
    )


def board(shots: list[Shot], aspect_ratio: str = "16:9") -> Storyboard:
    end = max(s.end_frame for s in shots)
    return Storyboard(aspect_ratio=aspect_ratio, duration=end / FPS, total_frames=end, shots=shots)  # type: ignore[arg-type]


def render(
    tmp_path: Path, the_shot: Shot, song: Analysis, aspect_ratio: str = "16:9"
) -> tuple[Path, ShotResult]:
    renderer = LocalRenderer(Settings())
    request = renderer.request_for(the_shot, board([the_shot], aspect_ratio))
    dest = tmp_path / f"shot-{the_shot.index}-{request.key()}.mp4"
    return dest, renderer.generate(request, the_shot, song, dest)


def decode(clip: Path, pix_fmt: str = "gray", size: tuple[int, int] = (64, 36)) -> np.ndarray:
    """Every frame of ``clip``, shrunk, as (frames, h, w[, 3]) uint8 — decoded by FFmpeg itself."""
    width, height = size
    args = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(clip), "-vf", f"scale={width}:{height}"]
    args += ["-f", "rawvideo", "-pix_fmt", pix_fmt, "pipe:1"]
    data = np.frombuffer(media.run(args, what="decoding a test clip").stdout, dtype=np.uint8)
    channels = 3 if pix_fmt == "rgb24" else 1
    return data.reshape(-1, height, width, channels).squeeze(-1 if channels == 1 else None)


# ------------------------------------------------------------------------------------- the clips


def test_clip_is_veo_shaped_h264_of_exactly_the_shots_frames(tmp_path: Path) -> None:
    odd = shot(start_frame=12, frames=37)  # not a whole number of seconds
    clip, result = render(tmp_path, odd, analysis())

    info = media.probe(clip)
    (video,) = info.real_video
    assert (video.codec, video.width, video.height, video.pix_fmt) == ("h264", 1280, 720, "yuv420p")
    assert video.frame_rate == FPS
    assert video.frames == 37 == len(decode(clip))
    assert not info.has_audio
    assert (result.state, result.frames, result.exact_length, result.cost_usd) == ("done", 37, True, 0.0)
    assert result.seconds == pytest.approx(37 / FPS)
    assert [p.name for p in tmp_path.iterdir()] == [clip.name]  # no temporary file left behind


def test_vertical_clip_is_720_by_1280(tmp_path: Path) -> None:
    clip, _ = render(tmp_path, shot(frames=FPS), analysis(), aspect_ratio="9:16")
    (video,) = media.probe(clip).real_video
    assert (video.width, video.height, video.frames) == (720, 1280, FPS)


def test_different_prompts_and_sections_look_different(tmp_path: Path) -> None:
    song = analysis()
    first, _ = render(tmp_path, shot(0, prompt="a tunnel of neon light", section="verse"), song)
    second, _ = render(tmp_path, shot(1, prompt="stars over a frozen lake", section="chorus"), song)
    a, b = decode(first, "rgb24").astype(float), decode(second, "rgb24").astype(float)

    for frames in (a, b):  # neither is a flat colour
        assert frames.std() > 15
    mean_colour_gap = np.abs(a.mean(axis=(0, 1, 2)) - b.mean(axis=(0, 1, 2))).max()
    pixel_gap = np.abs(a - b).mean()
    assert mean_colour_gap > 10 or pixel_gap > 30, (mean_colour_gap, pixel_gap)
    assert pixel_gap > 20


def test_picture_flashes_on_the_beats(tmp_path: Path) -> None:
    song = analysis(energy=0.9, beat_every=0.5)
    clip, _ = render(tmp_path, shot(frames=2 * FPS), song)
    luma = decode(clip).mean(axis=(1, 2))

    on_beat = luma[[0, 12, 24, 36]]  # beats every 0.5 s = 12 frames
    between = luma[[6, 18, 30, 42]]
    assert on_beat.mean() > between.mean() + 10, (on_beat, between)
    assert luma[0] > luma[12]  # a downbeat (t = 0) hits harder than a plain beat (t = 0.5)


def test_with_crossfades_a_clip_carries_its_handles_and_still_flashes_on_the_beats(tmp_path: Path) -> None:
    """Shot 1 of a dissolve board starts 6 frames before its cut: its flashes must move with it."""
    song = analysis(energy=0.9, beat_every=0.5)
    first, second = shot(0, frames=2 * FPS), shot(1, start_frame=2 * FPS, frames=2 * FPS)
    dissolve = board([first, second]).model_copy(update={"transition": "crossfade", "crossfade_seconds": 0.5})
    renderer = LocalRenderer(Settings())
    request = renderer.request_for(second, dissolve)
    assert request.frames == 2 * FPS + 6 and request.start == pytest.approx(2.0 - 6 / FPS)
    assert request.key() != renderer.request_for(second, board([first, second])).key()
    clip = tmp_path / "second.mp4"
    result = renderer.generate(request, second, song, clip)
    assert result.frames == media.probe(clip).real_video[0].frames == 2 * FPS + 6
    luma = decode(clip).mean(axis=(1, 2))
    on_beat = luma[[6, 18, 30, 42]]  # the cut (t = 2 s) is frame 6; beats every 12 frames from there
    between = luma[[12, 24, 36, 48]]
    assert on_beat.mean() > between.mean() + 10, (on_beat, between)


def test_loud_music_is_brighter_than_quiet_music(tmp_path: Path) -> None:
    same = shot(frames=FPS)
    loud, _ = render(tmp_path / "loud", same, analysis(energy=0.95, beat_every=None))
    quiet, _ = render(tmp_path / "quiet", same, analysis(energy=0.05, beat_every=None))
    assert decode(loud).mean() > decode(quiet).mean() * 1.4


def test_rendering_is_deterministic_given_the_seed() -> None:
    song = analysis()

    def frames(seed: int) -> np.ndarray:
        look = choose_look("waves of colour", "chorus", seed)
        return np.stack(list(render_frames(look, music_track(song, 1.0, 6, FPS, look.speed), 96, 54)))

    assert np.array_equal(frames(1), frames(1))
    assert not np.array_equal(frames(1), frames(2))


def test_prompt_words_steer_the_look_without_making_every_shot_the_same() -> None:
    assert set(MOTIFS) == set(MOTIF_WORDS) and set(PALETTES) == set(PALETTE_WORDS)
    assert {choose_look("a sunset over the hills", "verse", seed).palette for seed in range(20)} == {"sunset"}
    motifs = Counter(choose_look("racing through a tunnel", "chorus", seed).motif for seed in range(80))
    assert motifs.most_common(1)[0][0] == "tunnel"
    assert len(motifs) >= 5  # other motifs still appear, so a video of one subject still varies
    # whole words only: "nice" and "slice" do not mean "ice"
    assert len({choose_look("a nice slice of life", "verse", seed).palette for seed in range(20)}) > 3


def test_request_key_is_stable_and_changes_with_what_changes_the_pixels() -> None:
    renderer = LocalRenderer(Settings())
    a = shot(seed=1)
    key = renderer.request_for(a, board([a])).key()
    assert key == renderer.request_for(a.model_copy(), board([a])).key()
    assert key.isalnum() and len(key) == 16
    variants = [
        a.model_copy(update={"seed": 2}),
        a.model_copy(update={"prompt": "something else"}),
        shot(start_frame=24, seed=1),  # same length, later in the song
        shot(frames=30, seed=1),  # re-timed
    ]
    for other in variants:
        assert renderer.request_for(other, board([other])).key() != key
    assert renderer.request_for(a, board([a], "9:16")).key() != key
    assert renderer.estimate_cost_usd(renderer.request_for(a, board([a]))) == 0.0


def test_a_shot_without_frames_is_refused(tmp_path: Path) -> None:
    renderer = LocalRenderer(Settings())
    empty = shot(frames=0)
    request = ShotRequest(
        model="local", prompt="x", seed=0, aspect_ratio="16:9", resolution="720p", seconds=4
    )
    with pytest.raises(InvalidParameter) as info:
        renderer.generate(request, empty, analysis(), tmp_path / "x.mp4")
    assert info.value.code == "invalid_parameter"
    assert not (tmp_path / "x.mp4").exists()


def test_factory_builds_the_local_renderer_and_refuses_unknown_models(settings: Settings) -> None:
    generator = make_video_generator(job_context(settings, video_model="local"))
    assert isinstance(generator, LocalRenderer)
    assert isinstance(generator, VideoGenerator)
    assert (generator.name, generator.exact_length) == ("local", True)
    with pytest.raises(UnknownModel) as info:
        make_video_generator(job_context(settings, video_model="sora-2"))
    assert info.value.code == "unknown_model"
    assert "not one Kapsule knows" in info.value.message


# ---------------------------------------------------------------------------------------- runner


class CountingRenderer(LocalRenderer):
    """The real renderer, counting how many clips it actually draws (and optionally failing one)."""

    def __init__(self, fail_index: int | None = None) -> None:
        super().__init__(Settings())
        self.generated: list[int] = []
        self.fail_index = fail_index

    def generate(self, request: ShotRequest, shot: Shot, analysis: Analysis, dest: Path) -> ShotResult:
        self.generated.append(shot.index)
        if shot.index == self.fail_index:
            raise GenerationError(f"shot {shot.index} refused")
        return super().generate(request, shot, analysis, dest)


class RemoteLikeStorage(LocalStorage):
    """Real file storage that, like gs://, offers no local path: clips must go through upload_from."""

    def local_path(self, key: str) -> Path | None:
        return None


def two_shot_board() -> Storyboard:
    return board([shot(0, frames=FPS, prompt="first"), shot(1, start_frame=FPS, frames=FPS, prompt="second")])


def manifest_of(storage: LocalStorage, layout: JobLayout) -> ShotManifest:
    return ShotManifest.model_validate_json(storage.read_bytes(layout.manifest))


def test_runner_renders_each_shot_once_and_resumes(settings: Settings, tmp_path: Path) -> None:
    storage = open_storage(settings.storage_url)
    assert isinstance(storage, LocalStorage)
    layout, the_board, song = JobLayout(new_job_id()), two_shot_board(), analysis()
    progress: list[tuple[int, int, int]] = []

    first = CountingRenderer()
    manifest = generate_shots(
        board=the_board,
        analysis=song,
        generator=first,
        storage=storage,
        layout=layout,
        workdir=tmp_path / "work",
        on_shot=lambda done, total, result: progress.append((done, total, result.index)),
    )
    assert sorted(first.generated) == [0, 1]
    assert [(done, total) for done, total, _ in progress] == [(1, 2), (2, 2)]
    assert sorted(index for _, _, index in progress) == [0, 1]
    assert [s.state for s in manifest.shots] == ["done", "done"]
    assert manifest_of(storage, layout) == manifest
    for entry in manifest.shots:
        assert entry.file == layout.shot(entry.index, entry.key)
        assert media.probe(storage.local_path(entry.file)).real_video[0].frames == FPS  # type: ignore[arg-type]

    again = CountingRenderer()  # a re-run job: nothing is drawn (or paid for) twice
    assert (
        generate_shots(
            board=the_board,
            analysis=song,
            generator=again,
            storage=storage,
            layout=layout,
            workdir=tmp_path / "work",
        )
        == manifest
    )
    assert again.generated == []

    storage.delete(manifest.shots[1].file)
    storage.delete(layout.manifest)  # even without its manifest, an existing clip is kept
    third = CountingRenderer()
    rebuilt = generate_shots(
        board=the_board,
        analysis=song,
        generator=third,
        storage=storage,
        layout=layout,
        workdir=tmp_path / "work",
    )
    assert third.generated == [1]
    assert [s.state for s in rebuilt.shots] == ["done", "done"]
    assert rebuilt.shots[0].frames == FPS and rebuilt.shots[0].exact_length


def test_runner_uploads_through_storage_without_a_local_path(tmp_path: Path) -> None:
    storage = RemoteLikeStorage(f"file://{tmp_path / 'bucket'}")
    layout = JobLayout(new_job_id())
    generator = CountingRenderer()
    manifest = generate_shots(
        board=two_shot_board(),
        analysis=analysis(),
        generator=generator,
        storage=storage,
        layout=layout,
        workdir=tmp_path / "work",
    )
    assert all(storage.exists(entry.file) for entry in manifest.shots)
    assert list((tmp_path / "work").iterdir()) == []  # local copies are removed after upload


def test_should_stop_cancels_between_shots(settings: Settings, tmp_path: Path) -> None:
    storage = open_storage(settings.storage_url)
    layout = JobLayout(new_job_id())
    generator = CountingRenderer()
    asked: list[int] = []

    def stop_after_first() -> bool:
        asked.append(len(generator.generated))
        return len(generator.generated) >= 1

    with pytest.raises(JobCancelled) as info:
        generate_shots(
            board=two_shot_board(),
            analysis=analysis(),
            generator=generator,
            storage=storage,
            layout=layout,
            workdir=tmp_path / "work",
            should_stop=stop_after_first,
            workers=1,
        )
    assert info.value.code == "cancelled"
    assert generator.generated == [0]
    assert [s.state for s in manifest_of(storage, layout).shots] == ["done", "pending"]  # type: ignore[arg-type]

    with pytest.raises(JobCancelled):
        generate_shots(
            board=two_shot_board(),
            analysis=analysis(),
            generator=(never := CountingRenderer()),
            storage=storage,
            layout=layout,
            workdir=tmp_path / "work",
            should_stop=lambda: True,
        )
    assert never.generated == []


def test_a_failing_shot_is_recorded_and_raised(settings: Settings, tmp_path: Path) -> None:
    storage = open_storage(settings.storage_url)
    layout = JobLayout(new_job_id())
    with pytest.raises(GenerationError):
        generate_shots(
            board=two_shot_board(),
            analysis=analysis(),
            generator=CountingRenderer(fail_index=0),
            storage=storage,
            layout=layout,
            workdir=tmp_path / "work",
            workers=2,
        )
    states = {s.index: (s.state, s.note) for s in manifest_of(storage, layout).shots}  # type: ignore[arg-type]
    assert states[0] == ("failed", "shot 0 refused")
    assert states[1][0] == "done"  # the shot already running was kept
