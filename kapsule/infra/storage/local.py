"""``file://`` storage: a folder on this machine, the embedded default.

Writes go to a temporary file in the same folder, then ``os.replace`` it into place, so a killed job
never leaves half a file under a real key. Keys are checked so that none escapes the root folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from kapsule.core.errors import BadStorageKey, ConfigError, InvalidParameter, ObjectNotFound, StorageError
from kapsule.infra.storage.keys import validate_key


def _root_from_url(url: str) -> Path:
    parsed = urlparse(url)
    if parsed.scheme != "file":
        raise ConfigError(f"not a file:// URL: {url}")
    # file://./relative/path and file:///absolute/path are both accepted.
    raw = (parsed.netloc + parsed.path) if parsed.netloc else parsed.path
    return Path(raw).expanduser().resolve()


class LocalStorage:
    """Storage in a local folder."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.root = _root_from_url(url)

    def __repr__(self) -> str:
        return f"LocalStorage({self.root})"

    def _path(self, key: str) -> Path:
        path = self.root / validate_key(key)
        if not path.resolve().is_relative_to(self.root):
            raise BadStorageKey(f"storage key escapes its folder: {key!r}")
        return path

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"no such file in storage: {key}") from exc
        except OSError as exc:
            raise StorageError(f"could not read {key}: {exc.strerror}") from exc

    def _atomic_write(self, key: str, writer: Callable[[BinaryIO], object]) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    writer(handle)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(f"could not write {key}: {exc.strerror}") from exc

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self._atomic_write(key, lambda handle: handle.write(data))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix if prefix else self.root
        folder = base if prefix.endswith("/") or not prefix else base.parent
        if not folder.is_dir():
            return []
        keys = []
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.startswith(".tmp-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def copy(self, src: str, dst: str) -> None:
        source = self._path(src)
        if not source.is_file():
            raise ObjectNotFound(f"no such file in storage: {src}")
        self._atomic_write(dst, lambda handle: shutil.copyfileobj(source.open("rb"), handle))

    def download_to(self, key: str, dest: Path) -> Path:
        source = self._path(key)
        if not source.is_file():
            raise ObjectNotFound(f"no such file in storage: {key}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.resolve() != source.resolve():
            tmp = dest.with_name(f".tmp-{dest.name}")
            shutil.copyfile(source, tmp)
            os.replace(tmp, dest)
        return dest

    def upload_from(self, src: Path, key: str, content_type: str | None = None) -> None:
        if Path(src).resolve() == self._path(key).resolve():
            return
        with Path(src).open("rb") as source:
            self._atomic_write(key, lambda handle: shutil.copyfileobj(source, handle, 1 << 20))

    def open_read(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(f"no such file in storage: {key}")
        with path.open("rb") as handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def read_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise InvalidParameter(f"bad range {start}+{length} for {key}")
        try:
            with self._path(key).open("rb") as handle:
                handle.seek(start)
                return handle.read(length)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"no such file in storage: {key}") from exc
        except OSError as exc:
            raise StorageError(f"could not read {key}: {exc.strerror}") from exc

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"no such file in storage: {key}") from exc

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    @property
    def direct_access(self) -> None:
        """A browser cannot reach a folder on this machine: the API takes uploads and serves files."""
        return None
