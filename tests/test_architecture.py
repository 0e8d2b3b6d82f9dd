"""Layering: the library never imports its entry points, and only the media package runs FFmpeg."""

from __future__ import annotations

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parent.parent / "kapsule_pipeline"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_library_does_not_import_entry_points() -> None:
    offenders = {
        str(path.relative_to(LIBRARY)): sorted(
            n for n in _imports(path) if n.split(".")[0] in {"api", "jobs"}
        )
        for path in LIBRARY.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


MEDIA = LIBRARY / "media"


def test_only_media_runs_ffmpeg() -> None:
    """Every FFmpeg/ffprobe command is built in the media package; nobody else spawns them."""
    offenders = []
    for path in LIBRARY.rglob("*.py"):
        if path.is_relative_to(MEDIA):
            continue
        text = path.read_text()
        if ('"ffmpeg"' in text or '"ffprobe"' in text) and "subprocess" in text:
            offenders.append(str(path.relative_to(LIBRARY)))
    assert offenders == []


def test_only_media_process_starts_a_process() -> None:
    """Inside the media package only ``process.py`` spawns: builders stay pure, runners go through it."""
    spawners = sorted(p.name for p in MEDIA.glob("*.py") if "subprocess" in p.read_text())
    assert spawners == ["process.py"]


DOMAIN = {"analysis", "audio", "storyboard", "review", "cost", "assemble", "uploads", "demo_song", "synth"}


def test_local_renderer_imports_no_domain_module() -> None:
    """The local renderer is a backend: it plans clips with media's dissolve rule, not storyboard's."""
    offenders = {
        path.name: sorted(n for n in _imports(path) if n.split(".")[-1] in DOMAIN)
        for path in (LIBRARY / "generation").glob("local*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
