"""Layering and ownership rules the code must keep, checked on the source itself.

The layer contracts live in ``pyproject.toml`` (``[tool.importlinter]``) and ``make test`` runs
``lint-imports`` on them. import-linter only sees ``import`` statements; a module named in a string
(``python -m kapsule.worker``, ``uvicorn.run("kapsule.api.main:app")``) is an import all the same, so
the tests here apply the same layers to every string that names a module of ours. They also check that every
module sits in a layer, that only the media package runs FFmpeg, and that every error class is
declared in the ``errors`` package (one registry of codes).
"""

from __future__ import annotations

import ast
import importlib
import re
import tomllib
from pathlib import Path

import pytest

from kapsule.core import errors
from tests.support.paths import REPO

ROOT = REPO
PACKAGES = ("kapsule",)
LIBRARY = ROOT / "kapsule"
MEDIA = LIBRARY / "media"
MODULE_STRING = re.compile(r"^kapsule(\.[a-z_]\w*)+(:\w+)?$")


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(config["tool"]["importlinter"]["contracts"])


def _layers() -> list[list[str]]:
    (layers,) = [c["layers"] for c in _contracts() if c["type"] == "layers"]
    return [[name.strip() for name in re.split(r"[:|]", line)] for line in layers]  # type: ignore[attr-defined]


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "__main__.py":  # runs on import; ``python -m`` names its package
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _layer_of(module: str, layers: list[list[str]]) -> int | None:
    for index, names in enumerate(layers):
        if any(module == name or module.startswith(name + ".") for name in names):
            return index
    return None


def _module_strings(path: Path) -> list[str]:
    """String constants that name a module of ours (docstrings, messages and ``jobs.db`` do not)."""
    known = _modules()
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_STRING.match(node.value):
            module = node.value.split(":")[0]
            if module in known:
                names.append(module)
    return names


def test_every_module_sits_in_a_layer() -> None:
    layers = _layers()
    roots = {"kapsule"}  # the package itself only holds __version__
    unplaced = sorted(m for m in _modules() if m not in roots and _layer_of(m, layers) is None)
    assert unplaced == []


def test_no_string_names_a_module_of_a_higher_layer() -> None:
    """What import-linter cannot see: ``-m kapsule.worker`` or ``"kapsule.api.main:app"`` in a library."""
    layers = _layers()
    offenders = []
    for module, path in _modules().items():
        own = _layer_of(module, layers)
        for named in _module_strings(path):
            target = _layer_of(named, layers)
            if own is not None and target is not None and target < own:
                offenders.append(f"{module} names {named}")
    assert offenders == []


def test_no_kernel_module_names_a_forbidden_module_in_a_string() -> None:
    (kernel,) = [c for c in _contracts() if c["type"] == "forbidden"]
    modules = _modules()
    offenders = [
        f"{source} names {named}"
        for source in kernel["source_modules"]  # type: ignore[attr-defined]
        for named in _module_strings(modules[source])
        if any(named.startswith(f) for f in kernel["forbidden_modules"])  # type: ignore[attr-defined]
    ]
    assert offenders == []


def test_the_string_check_sees_what_it_must() -> None:
    """The check above would catch the strings that used to bypass the layers."""
    assert MODULE_STRING.match("kapsule.worker") and MODULE_STRING.match("kapsule.api.main:app")
    assert not MODULE_STRING.match("the local launcher needs the command that starts one job")
    layers = _layers()
    assert _layer_of("kapsule.worker", layers) < _layer_of("kapsule.control.service", layers)  # type: ignore[operator]
    assert _layer_of("kapsule.infra.launch.local", layers) > _layer_of("kapsule.control", layers)  # type: ignore[operator]


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


@pytest.fixture(scope="module")
def every_module_imported() -> None:
    for module in _modules():
        importlib.import_module(module)


@pytest.mark.usefixtures("every_module_imported")
def test_every_error_class_is_declared_in_errors_with_its_own_code() -> None:
    def subclasses(cls: type[errors.KapsuleError]) -> list[type[errors.KapsuleError]]:
        return [s for sub in cls.__subclasses__() for s in (sub, *subclasses(sub))]

    ours = [c for c in subclasses(errors.KapsuleError) if c.__module__.split(".")[0] in PACKAGES]
    assert [c for c in ours if c.__module__.rpartition(".")[0] != errors.__name__] == []  # errors/*.py
    assert sorted(errors.ERRORS) == sorted({c.code for c in [errors.KapsuleError, *ours]})
    assert all(errors.by_name(c.__name__) is c for c in ours)


def test_no_raise_site_invents_a_code() -> None:
    """Codes are fixed per class: ``code=`` at a raise site would be a code the registry cannot list."""
    classes = {cls.__name__ for cls in errors.ERRORS.values()}
    offenders = []
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and any(k.arg == "code" for k in node.keywords):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name in classes:
                    offenders.append(f"{module}:{node.lineno} {name}(code=...)")
    assert offenders == []


def _map_in_architecture_md() -> list[str]:
    """The packages ARCHITECTURE.md's tree lists, in its order (``  name/  what it holds``)."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    tree = text.split("```\nkapsule/\n", 1)[1].split("```", 1)[0]
    return [m.group(1) for m in re.finditer(r"^  (\w+)/ ", tree, flags=re.M)]


def test_architecture_md_maps_every_package_in_layer_order() -> None:
    """The one-screen map names each top-level package once, top layer first, and nothing else."""
    listed = _map_in_architecture_md()
    packages = sorted(p.name for p in LIBRARY.iterdir() if (p / "__init__.py").is_file())
    assert sorted(listed) == packages
    layers = _layers()
    order = [_layer_of(f"kapsule.{name}", layers) for name in listed]
    assert None not in order and order == sorted(order), list(zip(listed, order, strict=True))
