"""A local HTTP server speaking the Cloud Run Admin API v2 REST shapes that ``run_v2`` clients use.

The real google-cloud-run client is pointed at it (``KAPSULE_CLOUDRUN_ENDPOINT=http://…``). Shapes
follow ``/work/shared/notes/google-apis.md``:

- ``POST /v2/projects/P/locations/L/jobs/J:run`` → an operation whose ``metadata`` is the Execution
- ``GET /v2/projects/P/locations/L/operations/OP`` (metadata repeated in every answer)
- ``GET …/jobs/J/executions/E`` (bare Execution JSON), ``POST …/executions/E:cancel`` (an operation),
  ``GET …/jobs/J/executions`` (list)
- Unknown job/execution/operation → 404 with Google's error JSON.

Executions are state the test drives (``finish``, ``forget``), or, with ``command`` set, real
processes: each execution runs ``command`` with the override env plus ``CLOUD_RUN_EXECUTION`` and
``CLOUD_RUN_TASK_ATTEMPT``, retried on a non-zero exit up to ``max_retries`` times, as Cloud Run does;
a cancel sends SIGTERM. Every request is appended to ``log``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

JOB_RUN_RE = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/jobs/[^/:]+):run$")
EXECUTION_RE = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/jobs/[^/]+/executions/[^/:]+)$")
CANCEL_RE = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/jobs/[^/]+/executions/[^/:]+):cancel$")
LIST_RE = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/jobs/[^/:]+)/executions$")
OPERATION_RE = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/operations/[^/]+)$")
EXECUTION_TYPE = "type.googleapis.com/google.cloud.run.v2.Execution"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Logged:
    method: str
    path: str
    body: dict[str, Any]


@dataclass
class FakeExecution:
    name: str
    job: str
    env: dict[str, str]
    timeout: str | None
    task_count: int = 1
    running: int = 1
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    retried: int = 0
    message: str = ""
    completion_time: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    thread: threading.Thread | None = None
    exit_codes: list[int] = field(default_factory=list)

    @property
    def short(self) -> str:
        return self.name.rsplit("/", 1)[1]

    def to_json(self) -> dict[str, Any]:
        done = self.completion_time is not None
        state = "CONDITION_RECONCILING"
        if done:
            state = "CONDITION_SUCCEEDED" if self.succeeded and not self.failed else "CONDITION_FAILED"
        data: dict[str, Any] = {
            "name": self.name,
            "job": self.job.rsplit("/", 1)[1],
            "taskCount": self.task_count,
            "runningCount": self.running,
            "succeededCount": self.succeeded,
            "failedCount": self.failed,
            "cancelledCount": self.cancelled,
            "retriedCount": self.retried,
            "reconciling": not done,
            "conditions": [{"type": "Completed", "state": state, "message": self.message}],
        }
        if done:
            data["completionTime"] = self.completion_time
        return data


@dataclass
class FakeCloudRun:
    """The server's state and knobs; ``url`` is its base URL (give it to ``cloudrun_endpoint``)."""

    url: str = ""
    jobs: set[str] = field(default_factory=set)
    executions: dict[str, FakeExecution] = field(default_factory=dict)
    operations: dict[str, str] = field(default_factory=dict)  # operation name → execution name
    fail_next: list[int] = field(default_factory=list)  # HTTP statuses to answer next (any route)
    command: list[str] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    max_retries: int = 2
    log: list[Logged] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # -- what a test drives -------------------------------------------------------------------------
    def finish(self, name: str, *, succeeded: bool, message: str = "") -> None:
        with self.lock:
            ex = self.executions[name]
            ex.running = 0
            ex.succeeded, ex.failed = (1, 0) if succeeded else (0, 1)
            ex.message = message
            ex.completion_time = _now()

    def forget(self, name: str) -> None:
        """The execution is deleted (or expired) on Cloud Run's side."""
        with self.lock:
            self.executions.pop(name, None)

    def wait(self, name: str, timeout: float = 60.0) -> FakeExecution:
        """Block until a process-backed execution has ended (all attempts)."""
        ex = self.executions[name]
        if ex.thread is not None:
            ex.thread.join(timeout)
        return ex

    def requests(self, method: str, suffix: str = "") -> list[Logged]:
        return [r for r in self.log if r.method == method and r.path.endswith(suffix)]

    # -- the server side ----------------------------------------------------------------------------
    def start_execution(self, job: str, overrides: dict[str, Any]) -> FakeExecution:
        env: dict[str, str] = {}
        for container in overrides.get("containerOverrides", []):
            env.update({e["name"]: e.get("value", "") for e in container.get("env", [])})
        name = f"{job}/executions/{job.rsplit('/', 1)[1]}-{next(self._ids):05d}"
        ex = FakeExecution(name, job, env, overrides.get("timeout"), int(overrides.get("taskCount", 1)))
        self.executions[name] = ex
        if self.command is not None:
            ex.thread = threading.Thread(target=self._run_attempts, args=(ex,), daemon=True)
            ex.thread.start()
        return ex

    def _run_attempts(self, ex: FakeExecution) -> None:
        for attempt in range(self.max_retries + 1):
            env = {
                **os.environ,
                **self.extra_env,
                **ex.env,
                "CLOUD_RUN_EXECUTION": ex.short,
                "CLOUD_RUN_TASK_ATTEMPT": str(attempt),
            }
            assert self.command is not None
            with self.lock:
                if ex.cancelled:
                    break
                ex.proc = subprocess.Popen(
                    self.command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
                )
            ex.proc.communicate()
            code = ex.proc.returncode
            with self.lock:
                ex.exit_codes.append(code)
                if code == 0 or ex.cancelled:
                    break
                ex.retried += 1 if attempt < self.max_retries else 0
        with self.lock:
            ex.running = 0
            last = ex.exit_codes[-1] if ex.exit_codes else None
            if ex.cancelled:
                ex.message = "The execution was cancelled."
            elif last == 0:
                ex.succeeded = 1
            else:
                ex.failed = 1
                ex.message = f"Task failed with exit code {last} after {len(ex.exit_codes)} attempts."
            ex.completion_time = _now()

    def cancel_execution(self, ex: FakeExecution) -> None:
        ex.cancelled = 1 if ex.completion_time is None else ex.cancelled
        if ex.proc is not None and ex.proc.poll() is None:
            ex.proc.send_signal(signal.SIGTERM)
        elif self.command is None and ex.completion_time is None:
            ex.running = 0
            ex.message = "The execution was cancelled."
            ex.completion_time = _now()

    def operation(self, op_name: str) -> dict[str, Any]:
        ex = self.executions.get(self.operations[op_name])
        metadata = {"@type": EXECUTION_TYPE, **(ex.to_json() if ex else {"name": self.operations[op_name]})}
        answer: dict[str, Any] = {"name": op_name, "done": False, "metadata": metadata}
        if ex is not None and ex.completion_time is not None:
            answer["done"] = True
            if ex.succeeded:
                answer["response"] = metadata
            else:
                answer["error"] = {"code": 9, "message": ex.message or "execution failed"}
        return answer

    def new_operation(self, execution: str) -> str:
        location = execution.split("/jobs/")[0]
        op_name = f"{location}/operations/op-{next(self._ids)}"
        self.operations[op_name] = execution
        return op_name


def _make_handler(fake: FakeCloudRun) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str) -> None:
            names = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 500: "INTERNAL"}
            names |= {503: "UNAVAILABLE", 429: "RESOURCE_EXHAUSTED"}
            self._send(
                status,
                {"error": {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}},
            )

        def _handle(self, method: str) -> None:
            path = self.path.split("?", 1)[0]
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            fake.log.append(Logged(method, path, body))
            if fake.fail_next:
                status = fake.fail_next.pop(0)
                return self._error(status, f"injected failure {status}")
            with fake.lock:
                if method == "POST" and (m := JOB_RUN_RE.match(path)):
                    if m.group(1) not in fake.jobs:
                        return self._error(404, f"Resource '{m.group(1)}' was not found")
                    ex = fake.start_execution(m.group(1), body.get("overrides", {}))
                    return self._send(200, fake.operation(fake.new_operation(ex.name)))
                if method == "POST" and (m := CANCEL_RE.match(path)):
                    ex = fake.executions.get(m.group(1))
                    if ex is None:
                        return self._error(404, f"Resource '{m.group(1)}' was not found")
                    fake.cancel_execution(ex)
                    return self._send(200, fake.operation(fake.new_operation(ex.name)))
                if method == "GET" and (m := EXECUTION_RE.match(path)):
                    ex = fake.executions.get(m.group(1))
                    if ex is None:
                        return self._error(404, f"Resource '{m.group(1)}' was not found")
                    return self._send(200, ex.to_json())
                if method == "GET" and (m := LIST_RE.match(path)):
                    found = [e.to_json() for e in fake.executions.values() if e.job == m.group(1)]
                    return self._send(200, {"executions": found[::-1]})
                if method == "GET" and (m := OPERATION_RE.match(path)):
                    if m.group(1) not in fake.operations:
                        return self._error(404, f"Operation '{m.group(1)}' was not found")
                    return self._send(200, fake.operation(m.group(1)))
            return self._error(404, f"no route for {method} {path}")

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    return Handler


@pytest.fixture
def fake_cloudrun() -> Iterator[FakeCloudRun]:
    """A fresh Cloud Run Admin API server with one job, ``projects/p/locations/l/jobs/kapsule``."""
    fake = FakeCloudRun(jobs={"projects/p/locations/l/jobs/kapsule"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    for ex in list(fake.executions.values()):
        if ex.proc is not None and ex.proc.poll() is None:
            ex.proc.kill()
