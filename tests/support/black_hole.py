"""A black-hole endpoint: a loopback port that accepts connections and never answers.

What an unreachable service looks like from a client that has already connected (a firewall that
drops replies, a proxy that stalls, a hung server): the request goes out, no byte comes back, and the
client waits for its own read timeout. Kept in the test process (a thread), not a subprocess: there
is nothing to run, only sockets to hold open.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A listening port on 127.0.0.1 that accepts every connection and never reads or writes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                conn, _ = server.accept()
                held.append(conn)  # kept open, never answered

    thread = threading.Thread(target=hold, name="black hole", daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()
