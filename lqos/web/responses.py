"""Small helpers every route uses, so responses look the same everywhere."""

from __future__ import annotations

import json

# The page talks to the probe and persona ports, which are other origins.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self' http: https: ws: wss:; "
    "img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def set_security_headers(request) -> None:
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"no-referrer")
    request.setHeader(b"content-security-policy", CONTENT_SECURITY_POLICY.encode())


def json_body(request, body: object, status: int = 200) -> bytes:
    """Serialise *body* as the response, with the headers an API response needs."""
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    set_security_headers(request)
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def json_error(request, status: int, message: str) -> bytes:
    return json_body(request, {"error": message}, status)
