"""Where request bodies go: counted and dropped for ``/upload``, a small bounded buffer elsewhere."""

from __future__ import annotations

from io import BytesIO

from lqos.load.admission import LoadRefused, StreamSlot
from lqos.load.limits import LoadLimits, MiB
from lqos.load.tickets import LoadSession


def _size(byte_count: int) -> str:
    return f"{byte_count / MiB:g} MiB"


class UploadSink:
    """Count each piece of an upload body into the session as it arrives, keep none of it.

    The per-request cap bounds one body; the per-test cap, checked against
    the session's running total, bounds all the test's parallel uploads.
    """

    def __init__(self, session: LoadSession, slot: StreamSlot, limits: LoadLimits):
        self.received = 0
        self._session = session
        self._slot = slot
        self._request_cap = limits.upload_bytes_per_request
        self._test_cap = limits.upload_bytes_per_test

    def check_declared_length(self, length: int | None) -> None:
        """Refuse at once a body whose Content-Length already breaks a cap."""
        if length is None:
            return
        if length > self._request_cap:
            raise LoadRefused(413, f"an upload body may be at most {_size(self._request_cap)}", received=0)
        if self._session.upload_bytes + length > self._test_cap:
            raise LoadRefused(413, f"this test may upload at most {_size(self._test_cap)}", received=0)

    def write(self, data: bytes) -> None:
        size = len(data)
        if self.received + size > self._request_cap:
            raise LoadRefused(413, f"an upload body may be at most {_size(self._request_cap)}",
                              received=self.received)
        if self._session.upload_bytes + size > self._test_cap:
            raise LoadRefused(413, f"this test may upload at most {_size(self._test_cap)}",
                              received=self.received)
        self.received += size
        self._session.upload_bytes += size

    def close(self) -> None:
        self._slot.release()


class BoundedBody:
    """Keep a small body in memory for the route to read; refuse one past *cap* bytes.

    Twisted would otherwise spool any body, of any size, to a temporary file
    before routing; no endpoint but ``/upload`` needs more than a few KiB.
    """

    def __init__(self, content: BytesIO, cap: int):
        self._content = content
        self._cap = cap

    def check_declared_length(self, length: int | None) -> None:
        if length is not None and length > self._cap:
            raise LoadRefused(413, f"a request body may be at most {_size(self._cap)}")

    def write(self, data: bytes) -> None:
        if self._content.tell() + len(data) > self._cap:
            raise LoadRefused(413, f"a request body may be at most {_size(self._cap)}")
        self._content.write(data)

    def close(self) -> None:
        pass
