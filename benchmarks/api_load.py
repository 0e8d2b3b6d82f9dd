"""Load on the API over loopback: status reads at a fixed rate from concurrent clients, plus job creations.

By default it starts its own ``kapsule serve`` on a free loopback port with a temporary Kapsule home,
seeds one job record, then, for a bounded number of requests:
- ``GET /v1/jobs/{id}`` (what the studio page polls), ``--reads`` of them (default 20,000) at
  ``--rate`` per second (default 200) spread over ``--clients`` concurrent connections;
- alongside, ``--creates`` job creations (default 20): ``POST /v1/uploads``, the signed ``PUT`` of a
  6 s song, then ``POST /v1/jobs``. The song is silent, so every creation goes through the full
  content check (ffprobe + decode) and is refused with 422 ``silent``, as expected, without
  launching a pipeline that would eat this machine's cores and distort the read latencies.
Prints p50/p99/max latency per kind and the count of unexpected answers (target: status p99 <= 20 ms,
zero errors). ``--url`` drives a server you started instead; it must be on loopback.

    .venv/bin/python benchmarks/api_load.py [--reads 20000 --rate 200 --clients 20 --creates 20]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import ipaddress
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kapsule.infra.status import open_status_store  # noqa: E402
from kapsule.job.params import JobParams  # noqa: E402
from kapsule.job.record import JobRecord  # noqa: E402
from tests.support.servers import kapsule_serve, server_env  # noqa: E402


def _loopback_only(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        sys.exit(f"api_load: refusing to load {host!r}: this benchmark only drives a server on loopback")


def _silent_song() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(6 * 22050, dtype=np.float32), 22050, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


async def _reads(
    client: httpx.AsyncClient, job_id: str, total: int, rate: float, clients: int
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    kinds: dict[str, int] = {}  # what the unexpected answers were (status code or exception)
    start = time.perf_counter()
    counter = iter(range(total))

    async def worker() -> None:
        nonlocal errors
        for i in counter:
            due = start + i / rate  # open-loop schedule: request i is sent at i/rate seconds
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = time.perf_counter()
            try:
                response = await client.get(f"/v1/jobs/{job_id}")
                ok = response.status_code == 200
                kind = str(response.status_code)
            except httpx.HTTPError as exc:
                ok, kind = False, type(exc).__name__
            latencies.append(time.perf_counter() - t0)
            errors += not ok
            if not ok:
                kinds[kind] = kinds.get(kind, 0) + 1

    await asyncio.gather(*(worker() for _ in range(clients)))
    if kinds:
        print(f"unexpected read answers: {kinds}")
    return latencies, errors


async def _creates(client: httpx.AsyncClient, total: int, song: bytes) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    for _ in range(total):
        t0 = time.perf_counter()
        try:
            ticket = await client.post(
                "/v1/uploads", json={"filename": "quiet.wav", "content_type": "audio/wav", "size": len(song)}
            )
            info = ticket.json()
            put = await client.put(info["url"], content=song, headers=info["headers"])
            job = await client.post("/v1/jobs", json={"upload_id": info["upload_id"]})
            ok = (
                ticket.status_code == 201
                and put.status_code == 200
                and job.status_code == 422
                and job.json()["error"]["code"] == "silent"
            )
        except (httpx.HTTPError, KeyError, ValueError):
            ok = False
        latencies.append(time.perf_counter() - t0)
        errors += not ok
        await asyncio.sleep(0.2)
    return latencies, errors


def _row(name: str, latencies: list[float], errors: int) -> str:
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
    return (
        f"{name:<26} n={len(ms):>6}  p50 {statistics.median(ms):7.1f} ms  p99 {p99:7.1f} ms  "
        f"max {ms[-1]:7.1f} ms  errors {errors}"
    )


async def _run(url: str, job_id: str, args: argparse.Namespace) -> None:
    limits = httpx.Limits(max_connections=args.clients + 2, max_keepalive_connections=args.clients + 2)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        began = time.perf_counter()
        (reads, read_errors), (creates, create_errors) = await asyncio.gather(
            _reads(client, job_id, args.reads, args.rate, args.clients),
            _creates(client, args.creates, _silent_song()),
        )
        wall = time.perf_counter() - began
    print(
        f"{args.reads} reads at {args.rate:.0f}/s from {args.clients} clients, "
        f"{args.creates} creations, {wall:.1f} s"
    )
    print(_row("GET /v1/jobs/{id}", reads, read_errors))
    if creates:
        print(_row("create (upload+PUT+check)", creates, create_errors))
    print(f"achieved read rate {len(reads) / wall:.0f}/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server on loopback (default: start one)")
    parser.add_argument("--job", help="with --url: the job id to read")
    parser.add_argument("--reads", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--creates", type=int, default=20)
    args = parser.parse_args()
    args.reads = max(1, min(args.reads, 100_000))  # bounded, whatever is asked
    args.rate = max(1.0, min(args.rate, 2000.0))
    args.clients = max(1, min(args.clients, 200))
    args.creates = max(0, min(args.creates, 200))
    if args.url:
        _loopback_only(args.url)
        if not args.job:
            sys.exit("api_load: --url needs --job ID (a job of the caller to read)")
        asyncio.run(_run(args.url.rstrip("/"), args.job, args))
        return
    with tempfile.TemporaryDirectory(prefix="kapsule-load-") as tmp:
        home = Path(tmp)
        env = server_env(home)
        job = open_status_store(env["KAPSULE_STATUS_URL"]).create(
            JobRecord(params=JobParams(song="load.wav"))
        )
        with kapsule_serve(env, home / "server.log") as url:  # the tests' way of starting a server
            asyncio.run(_run(url, job.id, args))


if __name__ == "__main__":
    main()
