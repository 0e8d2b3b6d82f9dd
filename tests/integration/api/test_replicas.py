"""Two ``kapsule serve`` processes sharing a secret and a status store, as two Cloud Run replicas do:
a studio session signed out on one is refused by the other (issue 22, probe 6)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import expect_error
from tests.support.servers import kapsule_serve, server_env

KEY = "alice-key-0123456789abcdef"


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[str, str]]:
    env = server_env(
        tmp_path / "kapsule",
        KAPSULE_API_KEYS=f"alice={KEY}",
        KAPSULE_UPLOAD_SECRET="shared-secret-0123456789abcdef",
    )
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(kapsule_serve(env, tmp_path / "first.log"))
        second = stack.enter_context(kapsule_serve(env, tmp_path / "second.log"))
        yield first, second


def test_a_sign_out_on_one_replica_ends_the_session_on_the_other(replicas: tuple[str, str]) -> None:
    first, second = replicas
    with httpx.Client(base_url=first, headers={"Origin": first}) as one:
        assert one.post("/v1/session", json={"key": KEY}).status_code == 200
        cookie = one.cookies["kapsule_session"]
        with httpx.Client(base_url=second, headers={"Origin": second}) as other:
            other.cookies.set("kapsule_session", cookie)
            assert other.get("/v1/session").json()["owner"] == "alice"  # one secret: both honour it
            assert one.delete("/v1/session").status_code == 204
            other.cookies.set("kapsule_session", cookie)  # a copy kept by someone
            expect_error(other.get("/v1/jobs"), 401, "session_invalid")
            upload = {"filename": "s.wav", "content_type": "audio/wav", "size": 1000}
            expect_error(other.post("/v1/uploads", json=upload), 401, "session_invalid")
