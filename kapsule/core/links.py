"""Short-lived HMAC signatures for things the server hands out: notebook links and studio sessions.

Each use has its own ``purpose``, and the key that signs it is derived from the server's secret and
that purpose, so a signature made for one thing (an upload URL, a notebook link) can never be replayed
as another (a session). Rotating the secret ends every link and session at once.

Signatures are compared as bytes after a format check: a signature that is not the hex a server makes
(``%C3%A9``, a 10 kB string) is refused as tampered, never passed to ``compare_digest`` as text
it cannot handle.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

from kapsule.core.errors import LinkExpired, LinkSignatureInvalid

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def purpose_key(secret: bytes, purpose: str) -> bytes:
    """The key for one purpose, derived from the server's secret (domain separation)."""
    return hmac.new(secret, f"kapsule-key\0{purpose}".encode(), hashlib.sha256).digest()


def sign(secret: bytes, purpose: str, fields: tuple[str, ...], expires: int) -> str:
    message = "\n".join((purpose, *fields, str(expires))).encode()
    return hmac.new(purpose_key(secret, purpose), message, hashlib.sha256).hexdigest()


def signature_matches(expected: str, given: str) -> bool:
    """Constant-time comparison that refuses anything not shaped like our signatures first."""
    if not _HEX64.match(given):
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def verify(
    secret: bytes,
    purpose: str,
    fields: tuple[str, ...],
    expires: int,
    signature: str,
    now: float | None = None,
) -> None:
    """Raise unless ``signature`` is ours for these fields and ``expires`` has not passed.

    The signature is checked first, so a link whose expiry was edited is "tampered", not "expired".
    """
    if not signature_matches(sign(secret, purpose, fields, expires), signature):
        raise LinkSignatureInvalid("this link's signature does not match; open it again from the studio")
    if (time.time() if now is None else now) > expires:
        raise LinkExpired("this link has expired; open it again from the studio")
