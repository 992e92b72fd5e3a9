"""The access log line: Twisted's combined format, without query strings.

The load URLs carry a test's token in their query (a browser cannot set
headers on a WebSocket), and an access log is read by more people than the
tokens are meant for.
"""

from __future__ import annotations

from twisted.web.http import combinedLogFormatter


class _PathOnly:
    """The request as the formatter sees it, with ``uri`` cut at the ``?``."""

    def __init__(self, request):
        self._request = request

    def __getattr__(self, name):
        return getattr(self._request, name)

    @property
    def uri(self) -> bytes:
        return self._request.uri.split(b"?", 1)[0]


def access_log_line(timestamp: str, request) -> str:
    return combinedLogFormatter(timestamp, _PathOnly(request))
