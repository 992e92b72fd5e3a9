"""A TCP forwarder that adds a round trip: a server made "far away" on loopback.

Every chunk is held ``delay_ms / 2`` on its way in each direction, so a
request and its answer take ``delay_ms`` longer, as on a longer path.  The
fleet tests put one server's probe behind it, to see the page and the CLI
choose the other.  (The testbed's namespaces and delay line are the faithful
way to lengthen a path; for timing a handful of pings this is enough, and
it runs beside the rest of the suite.)
"""

from __future__ import annotations

import socket
import threading
import time


class DelayProxy:
    """Listens on 127.0.0.1 (``port``) and forwards to *target*; ``close()`` stops it."""

    def __init__(self, target: tuple[str, int], delay_ms: float):
        self._target = target
        self._hold = delay_ms / 2000
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                time.sleep(self._hold)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
