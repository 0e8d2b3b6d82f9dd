"""What ``kapsule.api.middleware.Guard`` adds per request, in-process (machine load distorts it little).

A trivial ASGI app is called directly, with and without the guard in front (open mode, so the Host
check runs too), 20,000 times per round for 7 rounds; prints the median µs per request of each.

    .venv/bin/python benchmarks/guard_overhead.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kapsule.api.middleware import Guard

ROUNDS, CALLS = 7, 20_000
SCOPE: Scope = {
    "type": "http",
    "method": "GET",
    "path": "/v1/jobs/j0123456789abcdef0123",
    "headers": [(b"host", b"127.0.0.1:8080"), (b"accept", b"*/*"), (b"user-agent", b"python-httpx/0.28")],
}


async def plain(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": b"{}"})


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    return None


async def _us_per_call(app: ASGIApp) -> float:
    started = time.perf_counter()
    for _ in range(CALLS):
        await app(SCOPE, _receive, _send)
    return (time.perf_counter() - started) / CALLS * 1e6


async def main() -> None:
    guarded = Guard(plain, open_mode=True, max_body=1 << 20)
    rows: dict[str, list[float]] = {"without guard": [], "with guard": []}
    for _ in range(ROUNDS):
        rows["without guard"].append(await _us_per_call(plain))
        rows["with guard"].append(await _us_per_call(guarded))
    for name, values in rows.items():
        print(f"{name:<14} median {statistics.median(values):6.2f} µs/request  (min {min(values):.2f})")


if __name__ == "__main__":
    asyncio.run(main())
