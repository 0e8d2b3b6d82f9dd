"""Studio sessions: the page trades the API key once for an HttpOnly cookie the server can end.

The page never keeps the key (no localStorage, nothing a script can read). ``POST /v1/session``
checks the key and sets ``kapsule_session``: HttpOnly, SameSite=Strict, Secure over https, holding
``v1.<owner>.<expires>.<session id>.<hmac>``. The HMAC (key derived from the server's secret for the
"session" purpose) covers the owner, the expiry, the session id and a fingerprint of the owner's
current API key, so a session ends when:
- it expires (``session_ttl_s``),
- the user signs out (``DELETE /v1/session``: its id is stored as revoked in the status store, which
  every replica reads, until it expires),
- the owner's key is rotated in ``KAPSULE_API_KEYS`` (the fingerprint no longer matches),
- the server's secret is rotated (every session at once; the way to end sessions on all replicas).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

from kapsule.core import links

COOKIE = "kapsule_session"
PURPOSE = "session"


@dataclass(frozen=True)
class Session:
    owner: str
    expires: int
    session_id: str


def _fingerprint(api_key: str) -> str:
    return hashlib.sha256(f"kapsule-api-key\0{api_key}".encode()).hexdigest()[:32]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def issue(
    secret: bytes, owner: str, api_key: str, ttl_s: int, now: float | None = None
) -> tuple[str, Session]:
    """A new session token for ``owner`` (who just proved ``api_key``)."""
    session = Session(owner, int((time.time() if now is None else now) + ttl_s), secrets.token_hex(16))
    mac = links.sign(secret, PURPOSE, (owner, session.session_id, _fingerprint(api_key)), session.expires)
    return f"v1.{_b64(owner)}.{session.expires}.{session.session_id}.{mac}", session


def verify(
    secret: bytes, token: str, keys: dict[str, str], max_ttl_s: int, now: float | None = None
) -> Session | None:
    """The session ``token`` stands for, or ``None`` if it is forged, expired or rotated (whether it was
    signed out is the status store's to say: ``StatusStore.session_revoked``)."""
    now = time.time() if now is None else now
    parts = token.split(".")
    if len(parts) != 5 or parts[0] != "v1" or not parts[2].isdigit() or len(token) > 400:
        return None
    try:
        owner = _unb64(parts[1])
    except (ValueError, UnicodeDecodeError):
        return None
    expires, session_id, mac = int(parts[2]), parts[3], parts[4]
    api_key = keys.get(owner)
    if api_key is None or not now <= expires <= now + max_ttl_s:
        return None
    expected = links.sign(secret, PURPOSE, (owner, session_id, _fingerprint(api_key)), expires)
    if not links.signature_matches(expected, mac):
        return None
    return Session(owner, expires, session_id)


class KeyThrottle:
    """Wrong API keys counted per client: after ``limit`` within ``window_s`` seconds, that client's
    key attempts are refused (429) until the oldest failure leaves the window, so a key cannot be
    guessed at request speed. Per process: each replica throttles what it sees."""

    def __init__(self, limit: int = 10, window_s: float = 60.0, max_clients: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.get(client, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def retry_after(self, client: str, now: float | None = None) -> int:
        """Seconds until ``client`` may try a key again (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._recent(client, now)
            if len(times) < self.limit:
                return 0
            return max(1, int(times[-self.limit] + self.window_s - now + 0.999))

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if client not in self._failures and len(self._failures) >= self.max_clients:
                self._failures = {c: t for c, t in self._failures.items() if self._recent(c, now)}
            times = self._recent(client, now)
            times.append(now)
            while len(times) > self.limit:
                times.popleft()
            self._failures[client] = times
