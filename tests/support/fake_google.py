"""A local HTTP server speaking the REST shapes google-genai uses, for Gemini API and Vertex AI modes.

The real client library is pointed at it (``KAPSULE_GENAI_BASE_URL``); Vertex credentials come from
a real service-account file whose ``token_uri`` is this server's ``/token``, so google-auth's JWT
grant runs for real, offline. Shapes follow ``/work/shared/notes/google-apis.md``:

- ``POST /v1beta/models/M:generateContent`` and ``POST /v1/projects/P/locations/L/publishers/google/
  models/M:generateContent``
- ``…/models/M:predictLongRunning`` → ``{"name": "…/operations/ID"}``
- Vertex poll ``POST …/models/M:fetchPredictOperation``; API-key poll ``GET /v1beta/models/M/operations/ID``
- ``GET /v1beta/files/ID:download?alt=media`` (API-key videos as file URIs)
- ``POST /token`` (service-account JWT bearer grant)

As strict as Google (``tests/support/fake_veo_rules.py``, written from Google's documentation independently of
the product's table): a Veo request outside a model's limits gets Google's own 400 body, an unknown
model (or a Veo model asked in a location that does not serve it) a 404 ``NOT_FOUND``; ``GET …/models/M``
answers ``models.get``.

Knobs (attributes of ``FakeGoogle``): ``hold_s`` (how long an operation runs), ``fail_next`` (status
codes to answer next, per route kind), ``refuse_words`` (a prompt containing one is safety-filtered),
``block_words`` (a prompt containing one is *blocked*: the operation ends with Google's error code 3),
``gemini_replies`` (texts to answer generateContent with, in order; then a valid plan),
``video_delivery`` ("bytes" or "uri"), ``lose_starts`` (how the next Veo starts lose their answer
*after* the operation was created, as a start that timed out on the client's side but began on
Google's: ``"500"`` answers an error, ``"drop"`` closes the connection unanswered),
``quota_per_minute`` (Veo starts per project, region and model in any minute of ``quota_clock``;
more are answered 429 RESOURCE_EXHAUSTED, as Vertex does). Every request is
appended to ``log``; ``operations()`` lists every operation started (what Google would bill).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kapsule import media
from tests.support.fake_veo_rules import (
    GEMINI_MODELS,
    PROMPT_BLOCK_MESSAGE,
    QuotaWindow,
    error_body,
    gemini_served,
    model_not_found,
    veo_known,
    veo_problem,
)

GENERATE_RE = re.compile(
    r"^/v1(?:beta1?)?/(?:projects/([^/]+)/locations/([^/]+)/publishers/google/)?models/([^/:]+):generateContent$"
)
MODEL_RE = re.compile(
    r"^/v1(?:beta1?)?/(?:projects/([^/]+)/locations/([^/]+)/)?(?:publishers/google/)?models/([^/:]+)$"
)
COUNT_RE = re.compile(
    r"^/v1(?:beta1?)?/(?:projects/([^/]+)/locations/([^/]+)/publishers/google/)?models/([^/:]+):countTokens$"
)
PREDICT_RE = re.compile(
    r"^/v1(?:beta1?)?/(?:projects/([^/]+)/locations/([^/]+)/publishers/google/)?models/([^/:]+):predictLongRunning$"
)
FETCH_RE = re.compile(
    r"^/v1(?:beta1?)?/projects/[^/]+/locations/[^/]+/publishers/google/models/([^/:]+):fetchPredictOperation$"
)
OPERATION_RE = re.compile(r"^/v1beta/models/([^/]+)/operations/([^/?]+)$")
FILE_RE = re.compile(r"^/v1beta/files/([^/:]+):download$")


@dataclass
class Logged:
    method: str
    path: str
    kind: str
    body: dict[str, Any]
    headers: dict[str, str]
    model: str = ""
    vertex: bool = False
    status: int = 0  # what the fake answered (set after the check)
    at: float = field(default_factory=time.monotonic)  # when it arrived, for benchmarks' timelines


@dataclass
class _Operation:
    name: str
    model: str
    prompt: str
    started: float
    vertex: bool


@dataclass
class FakeGoogle:
    """The server's state and knobs; ``url`` is its base URL."""

    video: bytes
    url: str = ""
    hold_s: float = 0.0
    fail_next: dict[str, list[int]] = field(default_factory=dict)
    refuse_words: tuple[str, ...] = ()
    block_words: tuple[str, ...] = ()
    gemini_models: set[str] = field(default_factory=lambda: set(GEMINI_MODELS))
    gemini_replies: list[str] = field(default_factory=list)
    video_delivery: str = "bytes"
    lose_starts: list[str] = field(default_factory=list)
    quota_per_minute: float | None = None  # Veo starts per project, region and model in any minute
    quota_clock: Any = time.monotonic  # the quota's minutes (a benchmark scales time down)
    _quota: QuotaWindow = field(default_factory=QuotaWindow)
    log: list[Logged] = field(default_factory=list)
    _ops: dict[str, _Operation] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _since: float = 0.0

    def requests(self, kind: str) -> list[Logged]:
        """Logged requests of one kind: token, generate, predict, poll, download."""
        with self._lock:
            return [r for r in self.log if r.kind == kind]

    def forbidden_video_requests(self) -> list[Logged]:
        """Veo start requests Google would have refused (400/404): a job must never send one."""
        with self._lock:
            starts = [r for r in self.log if r.kind == "predict"]
        return [
            r for r in starts if not veo_known(r.model, None) or veo_problem(r.model, r.body, vertex=r.vertex)
        ]

    def over_quota(self, model: str, project: str | None, location: str | None) -> bool:
        """Count a start against the project's quota: True (answer 429) when its last minute is full."""
        limit, key = self.quota_per_minute, f"{project}/{location}/{model}"
        return limit is not None and not self._quota.take(key, self.quota_clock(), limit)

    def operations(self) -> list[str]:
        """Names of the operations started since the last reset: each one bills."""
        with self._lock:
            return [name for name, op in self._ops.items() if op.started >= self._since]

    def reset(self) -> None:
        with self._lock:
            self._since = time.monotonic()
            self.lose_starts.clear()
            self.quota_per_minute, self._quota = None, QuotaWindow()
            self.log.clear()
            self.fail_next.clear()
            self.gemini_replies.clear()
            self.refuse_words = ()
            self.block_words = ()
            self.gemini_models = set(GEMINI_MODELS)
            self.hold_s = 0.0
            self.video_delivery = "bytes"

    # ------------------------------------------------------------------ behaviour

    def _take_failure(self, kind: str) -> int | None:
        with self._lock:
            queue = self.fail_next.get(kind) or []
            return queue.pop(0) if queue else None

    def start(self, model: str, body: dict[str, Any], project: str | None, location: str | None) -> dict:
        prompt = (body.get("instances") or [{}])[0].get("prompt", "")
        op_id = f"op{next(self._ids)}"
        vertex = project is not None
        prefix = f"projects/{project}/locations/{location}/publishers/google/" if vertex else ""
        name = f"{prefix}models/{model}/operations/{op_id}"
        with self._lock:
            self._ops[name] = _Operation(name, model, prompt, time.monotonic(), vertex)
        return {"name": name}

    def status(self, name: str) -> tuple[int, dict]:
        with self._lock:
            op = self._ops.get(name)
        if op is None:
            return 404, {
                "error": {"code": 404, "message": f"operation {name} not found", "status": "NOT_FOUND"}
            }
        if time.monotonic() - op.started < self.hold_s:
            return 200, {"name": name, "done": False}
        if any(word in op.prompt for word in self.block_words):
            return 200, {"name": name, "done": True, "error": {"code": 3, "message": PROMPT_BLOCK_MESSAGE}}
        if any(word in op.prompt for word in self.refuse_words):
            result: dict[str, Any] = {
                "raiMediaFilteredCount": 1,
                "raiMediaFilteredReasons": [
                    "The prompt could not be submitted: it may violate our policies."
                ],
            }
        elif op.vertex:
            result = {
                "videos": [
                    {"bytesBase64Encoded": base64.b64encode(self.video).decode(), "mimeType": "video/mp4"}
                ]
            }
        elif self.video_delivery == "uri":
            file_id = op.name.rsplit("/", 1)[-1]
            uri = f"https://generativelanguage.googleapis.com/v1beta/files/{file_id}:download?alt=media"
            result = {"generatedSamples": [{"video": {"uri": uri}}]}
        else:
            encoded = base64.b64encode(self.video).decode()
            result = {"generatedSamples": [{"video": {"encodedVideo": encoded, "encoding": "video/mp4"}}]}
        response = result if op.vertex else {"generateVideoResponse": result}
        return 200, {"name": name, "done": True, "response": response}

    def generate(self, body: dict[str, Any]) -> dict:
        with self._lock:
            text = self.gemini_replies.pop(0) if self.gemini_replies else None
        if text is None:
            text = json.dumps(default_plan(body))
        return {
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 80, "totalTokenCount": 200},
        }


def default_plan(body: dict[str, Any]) -> dict[str, Any]:
    """A valid storyboard answer with one prompt per shot listed in the request's JSON shot list."""
    text = " ".join(p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", []))
    count = len(re.findall(r'"index"\s*:', text))
    return {
        "style_bible": {
            "palette": "teal and amber",
            "look": "35 mm film, soft halation",
            "recurring": ["a violinist in a yellow raincoat"],
        },
        "negative_prompt": "text, watermark",
        "shots": [
            {"index": i, "prompt": f"Gemini shot {i}: the violinist under streetlights"} for i in range(count)
        ],
    }


def check_video_instance(model: str, body: dict[str, Any], *, vertex: bool = True) -> str:
    """Refuse what Veo refuses: the model's limits (``fake_veo_rules``), then malformed images."""
    problem = veo_problem(model, body, vertex=vertex)
    if problem:
        return problem
    instance = (body.get("instances") or [{}])[0]
    images = [instance["image"]] if "image" in instance else []
    refs = instance.get("referenceImages") or []
    if len(refs) > 3:
        return "at most 3 reference images"
    for ref in refs:
        if str(ref.get("referenceType")).lower() not in ("asset", "style") or "image" not in ref:
            return "each reference image needs an image and a referenceType"
        images.append(ref["image"])
    for image in images:
        if image.get("mimeType") not in ("image/png", "image/jpeg", "image/webp"):
            return f"unsupported image mimeType {image.get('mimeType')!r}"
        try:
            _b64(image["bytesBase64Encoded"])
        except (KeyError, ValueError):
            return "image.bytesBase64Encoded is missing or not base64"
    return ""


def check_inline_data(body: dict[str, Any]) -> str:
    """Refuse inline parts Gemini would: no MIME type, bad base64, or over the 20 MB request limit."""
    for content in body.get("contents", []):
        for part in content.get("parts", []):
            inline = part.get("inlineData")
            if inline is None:
                continue
            mime = _mime(inline)
            if not mime.startswith(("audio/", "image/", "video/")):
                return f"unsupported inlineData mimeType {mime!r}"
            try:
                data = _b64(inline["data"])
            except (KeyError, ValueError):
                return "inlineData.data is missing or not base64"
            if len(data) > 20 * 1024 * 1024:
                return "request payload size exceeds the limit: 20 MB"
    return ""


def _b64(text: str) -> bytes:
    """Protobuf JSON bytes: standard or URL-safe base64 (google-genai sends the URL-safe kind)."""
    return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)


def _mime(blob: dict[str, Any]) -> str:
    """Protobuf JSON takes both spellings, and google-genai 2.34 sends ``mime_type`` in inline data."""
    return str(blob.get("mimeType") or blob.get("mime_type") or "")


def sent_audio(request: Logged) -> list[tuple[str, bytes]]:
    """(MIME type, bytes) of every inline part a logged generateContent request carried."""
    return [
        (_mime(part["inlineData"]), _b64(part["inlineData"]["data"]))
        for content in request.body.get("contents", [])
        for part in content.get("parts", [])
        if "inlineData" in part
    ]


def sent_images(request: Logged) -> tuple[bytes | None, list[bytes]]:
    """The seed image and reference images a logged Veo start request carried, decoded."""
    instance = (request.body.get("instances") or [{}])[0]
    image = instance.get("image")
    seed = _b64(image["bytesBase64Encoded"]) if image else None
    refs = [_b64(r["image"]["bytesBase64Encoded"]) for r in instance.get("referenceImages") or []]
    return seed, refs


def _handler(state: FakeGoogle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, payload: dict | bytes, content_type: str = "application/json") -> None:
            if self._logged is not None:
                self._logged.status = status
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        _logged: Logged | None = None

        def _error(self, status: int) -> None:
            self._send(status, error_body(status, "fake failure"))

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not raw:
                return {}
            try:
                return json.loads(raw)
            except ValueError:
                return {"_form": raw.decode("utf-8", "replace")}

        def _record(self, kind: str, body: dict[str, Any], model: str = "", vertex: bool = False) -> None:
            self._logged = Logged(self.command, self.path, kind, body, dict(self.headers), model, vertex)
            with state._lock:
                state.log.append(self._logged)

        def do_POST(self) -> None:
            self._logged = None
            path = self.path.split("?", 1)[0]
            body = self._body()
            if path == "/token":
                self._record("token", body)
                self._send(
                    200, {"access_token": "fake-access-token", "expires_in": 3600, "token_type": "Bearer"}
                )
                return
            kinds = (
                ("generate", GENERATE_RE),
                ("count", COUNT_RE),
                ("predict", PREDICT_RE),
                ("poll", FETCH_RE),
            )
            for kind, pattern in kinds:
                match = pattern.match(path)
                if match is None:
                    continue
                groups = match.groups()
                project, location = (groups[0], groups[1]) if len(groups) == 3 else (None, None)
                model = groups[-1]
                vertex = project is not None or kind == "poll"
                self._record(kind, body, model, vertex)
                failure = state._take_failure(kind)
                if failure is not None:
                    self._error(failure)
                elif kind in ("generate", "count"):
                    problem = check_inline_data(body)
                    if not gemini_served(model, location, state.gemini_models):
                        self._send(404, model_not_found(model, project, location))
                    elif kind == "count":
                        self._send(200, {"totalTokens": 3})
                    elif problem:
                        self._send(400, error_body(400, problem))
                    else:
                        self._send(200, state.generate(body))
                elif kind == "predict":
                    if not veo_known(model, location):
                        self._send(404, model_not_found(model, project, location))
                    elif problem := check_video_instance(model, body, vertex=vertex):
                        self._send(400, error_body(400, problem))
                    elif state.over_quota(model, project, location):
                        self._send(429, error_body(429, "Quota exceeded for aiplatform.googleapis.com"))
                    else:
                        answer = state.start(model, body, project, location)
                        with state._lock:
                            lost = state.lose_starts.pop(0) if state.lose_starts else None
                        if lost == "drop":
                            self.close_connection = True  # started, and no answer at all
                        elif lost is not None:
                            self._error(int(lost))
                        else:
                            self._send(200, answer)
                else:
                    self._send(*state.status(body.get("operationName", "")))
                return
            self._send(404, {"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}})

        def do_GET(self) -> None:
            self._logged = None
            path = self.path.split("?", 1)[0]
            if match := OPERATION_RE.match(path):
                self._record("poll", {})
                failure = state._take_failure("poll")
                if failure is not None:
                    self._error(failure)
                else:
                    self._send(*state.status(f"models/{match.group(1)}/operations/{match.group(2)}"))
                return
            if FILE_RE.match(path):
                self._record("download", {})
                self._send(200, state.video, "video/mp4")
                return
            if match := MODEL_RE.match(path):
                project, location, model = match.groups()
                self._record("get_model", {}, model, "/publishers/google/" in path)
                failure = state._take_failure("get_model")
                known = model in state.gemini_models or veo_known(model, location)
                if failure is not None:
                    self._error(failure)
                elif not known:
                    self._send(404, model_not_found(model, project, location))
                else:
                    prefix = "publishers/google/" if project is not None else ""
                    self._send(200, {"name": f"{prefix}models/{model}", "displayName": model})
                return
            self._send(404, {"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}})

    return Handler


def make_clip(path: Path, seconds: int = 8) -> Path:
    """A real H.264 MP4 (testsrc, 24 fps, small) standing in for a Veo clip."""
    media.run(
        [
            "ffmpeg", "-y", "-v", "error", "-f", "lavfi",
            "-i", f"testsrc=size=320x180:rate=24:duration={seconds}",
            *media.h264_args(crf=30, preset="ultrafast", fps=24),
            "-movflags", "+faststart", str(path),
        ]
    )  # fmt: skip
    return path


def write_service_account(path: Path, token_uri: str, project: str = "fake-project") -> Path:
    """A service-account key file with a fresh RSA key whose token endpoint is the fake server."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": "fake-key-1",
        "private_key": pem,
        "client_email": f"kapsule-job@{project}.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(info))
    return path


class running_fake_google:  # noqa: N801 - used like a function (context manager)
    """Start the fake server on a free port in a thread; stop it on exit."""

    def __init__(self, video: bytes) -> None:
        self.state = FakeGoogle(video=video)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.server.daemon_threads = True
        self.state.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-google", daemon=True)

    def __enter__(self) -> FakeGoogle:
        self.thread.start()
        return self.state

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def fake_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The MP4 every fake Veo operation returns (encoded once per session)."""
    return make_clip(tmp_path_factory.mktemp("veo") / "clip.mp4").read_bytes()


@pytest.fixture(scope="session")
def _fake_google_server(fake_clip: bytes) -> Iterator[FakeGoogle]:
    with running_fake_google(fake_clip) as state:
        yield state


@pytest.fixture
def fake_google(_fake_google_server: FakeGoogle) -> Iterator[FakeGoogle]:
    """The session's fake Google server, with its knobs and request log reset for this test."""
    _fake_google_server.reset()
    yield _fake_google_server
    _fake_google_server.reset()
