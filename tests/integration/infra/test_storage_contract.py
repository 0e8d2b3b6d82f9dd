"""One contract for every storage backend: the same behaviour locally and in the cloud."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kapsule.core.errors import InvalidParameter, ObjectNotFound
from kapsule.infra.storage import Storage, open_storage


@pytest.fixture(params=["file", "gcs"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "file":
        return open_storage(f"file://{tmp_path / 'store'}")
    if request.param == "gcs":
        return open_storage(f"gs://{request.getfixturevalue('gcs_emulator').new_bucket()}")
    raise AssertionError(request.param)


def test_write_read_exists_delete(storage: Storage) -> None:
    key = "jobs/jabc/work/analysis.json"
    assert not storage.exists(key)
    storage.write_bytes(key, b'{"a": 1}', "application/json")
    assert storage.exists(key)
    assert storage.read_bytes(key) == b'{"a": 1}'
    storage.write_bytes(key, b"{}", "application/json")
    assert storage.read_bytes(key) == b"{}"
    storage.delete(key)
    assert not storage.exists(key)
    storage.delete(key)  # deleting an absent key is fine


def test_missing_key_is_not_found(storage: Storage) -> None:
    with pytest.raises(ObjectNotFound):
        storage.read_bytes("jobs/none/x.json")
    with pytest.raises(ObjectNotFound):
        list(storage.open_read("jobs/none/x.json"))


def test_list_by_prefix_is_sorted_and_scoped(storage: Storage) -> None:
    for key in ["jobs/a/work/shots/002-x.mp4", "jobs/a/work/shots/001-y.mp4", "jobs/ab/input/song.mp3"]:
        storage.write_bytes(key, b"x")
    assert storage.list("jobs/a/") == ["jobs/a/work/shots/001-y.mp4", "jobs/a/work/shots/002-x.mp4"]
    assert storage.list("jobs/a/work/shots/00") == [
        "jobs/a/work/shots/001-y.mp4",
        "jobs/a/work/shots/002-x.mp4",
    ]
    assert storage.list("jobs/zzz/") == []


def test_copy_and_file_round_trip(storage: Storage, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 5000  # 1.28 MB, several chunks
    src = tmp_path / "in.bin"
    src.write_bytes(payload)
    storage.upload_from(src, "jobs/a/input/song.wav", "audio/wav")
    storage.copy("jobs/a/input/song.wav", "jobs/b/input/song.wav")
    out = storage.download_to("jobs/b/input/song.wav", tmp_path / "dl" / "song.wav")
    assert out.read_bytes() == payload
    assert b"".join(storage.open_read("jobs/a/input/song.wav", chunk_size=100_000)) == payload


@pytest.mark.parametrize(
    "key", ["../escape", "jobs/../../etc/passwd", "/abs/path", "jobs//x", "jobs/./x", ""]
)
def test_keys_cannot_escape_the_store(storage: Storage, key: str) -> None:
    with pytest.raises(InvalidParameter):
        storage.write_bytes(key, b"x")


def test_threads_share_one_storage(storage: Storage) -> None:
    """Shot generation writes from several threads through one storage object."""
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(5):
                key = f"jobs/a/work/shots/{n:03d}-{i}.mp4"
                storage.write_bytes(key, f"{n}-{i}".encode() * 1000)
                assert storage.read_bytes(key) == f"{n}-{i}".encode() * 1000
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(storage.list("jobs/a/work/shots/")) == 40


def test_ranged_reads_and_size(storage: Storage) -> None:
    """A head is read without the rest of the object (the API inspects uploads this way)."""
    data = bytes(range(256)) * 40  # 10240 bytes
    storage.write_bytes("uploads/u1/song", data)
    assert storage.size("uploads/u1/song") == len(data)
    assert storage.read_range("uploads/u1/song", 0, 16) == data[:16]
    assert storage.read_range("uploads/u1/song", 5000, 100) == data[5000:5100]
    assert storage.read_range("uploads/u1/song", 10200, 4096) == data[10200:]  # short at the end
    assert storage.read_range("uploads/u1/song", 0, 0) == b""
    with pytest.raises(ObjectNotFound):
        storage.read_range("uploads/none", 0, 10)
    with pytest.raises(ObjectNotFound):
        storage.size("uploads/none")
