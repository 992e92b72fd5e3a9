"""HTTP for the client: JSON requests with bounded timeouts, agents for bulk load.

One place builds the TLS policy, so ``--cafile`` applies to every request
the client makes (the prober builds the same for its WebSocket).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import treq
from treq.client import HTTPClient
from twisted.internet import defer, error, ssl
from twisted.web.client import (Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool, ResponseFailed,
                                ResponseNeverReceived)
from twisted.web.http_headers import Headers

from lqos.measure.units import SECONDS

CONNECT_TIMEOUT = 5 * SECONDS
CONTROL_TIMEOUT = 10 * SECONDS
MAX_CONTROL_BODY = 1024 * 1024
USER_AGENT = b"lqos-bufferbloat-test"
_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class ClientError(Exception):
    """Something that ends the test; the message is one line for the user."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Headers
    body: bytes

    def json(self) -> object:
        try:
            return json.loads(self.body)
        except ValueError:
            raise ClientError(f"the server answered {self.status} with something that is not JSON") from None

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None

    def error_text(self) -> str:
        """The ``{"error": ...}`` message of a JSON error answer, else the status."""
        try:
            message = json.loads(self.body).get("error")
        except (ValueError, AttributeError):
            message = None
        return f"{self.status} {message}" if message else f"HTTP {self.status}"


def trust_root(cafile: str | None):
    """The certificates in *cafile* (PEM), or the platform's trust store when None."""
    if not cafile:
        return ssl.platformTrust()
    try:
        with open(cafile, "rb") as handle:
            blocks = _PEM_CERTIFICATE.findall(handle.read())
    except OSError as problem:
        raise ClientError(f"cannot read --cafile {cafile}: {problem.strerror}") from None
    if not blocks:
        raise ClientError(f"--cafile {cafile} holds no PEM certificate")
    return ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(block) for block in blocks])


def tls_policy(cafile: str | None) -> BrowserLikePolicyForHTTPS:
    return BrowserLikePolicyForHTTPS(trustRoot=trust_root(cafile))


class Http:
    """A persistent pool for control requests; a non-persistent agent for load streams."""

    def __init__(self, reactor, cafile: str | None = None):
        self.reactor = reactor
        policy = tls_policy(cafile)
        self._control_pool = HTTPConnectionPool(reactor, persistent=True)
        self._control = HTTPClient(Agent(reactor, policy, CONNECT_TIMEOUT, pool=self._control_pool))
        self.load_agent = Agent(reactor, policy, CONNECT_TIMEOUT,
                                pool=HTTPConnectionPool(reactor, persistent=False))

    def request_json(self, method: str, url: str, body: object | None = None,
                     timeout: float = CONTROL_TIMEOUT) -> defer.Deferred:
        """Fire with a :class:`Reply` (any status); fail with TimeoutError after *timeout*."""
        d = defer.ensureDeferred(self._request(method, url, body))
        return d.addTimeout(timeout, self.reactor)

    async def _request(self, method: str, url: str, body: object | None) -> Reply:
        headers = {b"user-agent": [USER_AGENT], b"accept": [b"application/json"]}
        kwargs = {"headers": headers}
        if body is not None:
            kwargs["data"] = json.dumps(body, separators=(",", ":")).encode()
            headers[b"content-type"] = [b"application/json"]
        response = await self._control.request(method, url, **kwargs)
        content = await treq.content(response)
        if len(content) > MAX_CONTROL_BODY:
            raise ClientError(f"the server's answer to {method} {url} is too large")
        return Reply(response.code, response.headers, content)

    def close(self) -> defer.Deferred:
        return self._control_pool.closeCachedConnections()


def _openssl_reason(problem: BaseException) -> str:
    """'certificate verify failed' out of pyOpenSSL's list of (library, function, reason)."""
    details = problem.args[0] if problem.args and isinstance(problem.args[0], list) else []
    reasons = [entry[-1] for entry in details if isinstance(entry, tuple) and entry and entry[-1]]
    return "; ".join(reasons) or str(problem) or type(problem).__name__


def describe_error(problem: BaseException) -> str:
    """A short phrase for a network failure (no traceback)."""
    if isinstance(problem, ClientError):
        return str(problem)
    if isinstance(problem, (defer.TimeoutError, defer.CancelledError, error.TimeoutError)):
        return "no answer in time (timed out)"
    if isinstance(problem, error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(problem, error.DNSLookupError):
        return "host name not found"
    reasons = getattr(problem, "reasons", None)
    if isinstance(problem, (ResponseFailed, ResponseNeverReceived)) or isinstance(reasons, list):
        described = [describe_error(reason.value) for reason in reasons or ()]
        return described[0] if described else "connection lost"
    if isinstance(problem, error.ConnectionDone):
        return "the server closed the connection"
    if isinstance(problem, (error.ConnectionLost, error.ConnectError)):
        return "connection lost" if isinstance(problem, error.ConnectionLost) else f"cannot connect ({problem})"
    if type(problem).__module__.startswith("OpenSSL"):
        return f"TLS failed ({_openssl_reason(problem)}); for a self-signed server, pass its certificate with --cafile"
    text = str(problem).strip().splitlines()
    return text[0] if text else type(problem).__name__
