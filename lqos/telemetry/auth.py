"""Who may read telemetry and /metrics.

- A key in the URL (``?key=``, ``?api_key=``, ``?token=`` ...) is refused with
  400 whether or not it is right: URLs end up in proxy logs, browser history
  and Referer headers, so a key there must be treated as leaked.
- With ``telemetry_api_key`` set, ``Authorization: Bearer KEY`` is required
  from everyone, loopback included, and compared in constant time.
- With no key, only a request that really comes from this machine gets an
  answer: the socket's peer must be loopback.  ``X-Forwarded-For`` can never
  make a request local; when the peer is a trusted proxy and says the
  client is elsewhere, the request is remote (a reverse proxy on the same
  host would otherwise open the API to the world).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Sequence

from lqos.net.clientip import address_of, client_ip

KEY_QUERY_PARAMETERS = frozenset({
    b"key", b"api_key", b"apikey", b"token", b"access_token", b"telemetry_api_key",
})
REALM = "lqos-telemetry"


@dataclass(frozen=True)
class Refusal:
    """Why a request gets no telemetry: its status, message and optional challenge."""

    status: int
    message: str
    challenge: str | None = None


KEY_IN_URL = Refusal(400, "never put the API key in the URL; send it as 'Authorization: Bearer <key>'")
NO_KEY = Refusal(401, "this endpoint needs 'Authorization: Bearer <telemetry_api_key>'",
                 f'Bearer realm="{REALM}"')
WRONG_KEY = Refusal(401, "wrong API key", f'Bearer realm="{REALM}", error="invalid_token"')
NOT_LOCAL = Refusal(403, "no telemetry_api_key is set, so telemetry answers only requests "
                         "from this machine; set telemetry_api_key to use it remotely")


def _is_loopback(text: str) -> bool:
    address = address_of(text)
    return address is not None and address.is_loopback


def _peer_host(request) -> str:
    return getattr(request.getClientAddress(), "host", "")


def is_local(request, trusted_proxies: Sequence = ()) -> bool:
    """True when the socket peer is loopback and no trusted proxy says the client is elsewhere."""
    return _is_loopback(_peer_host(request)) and _is_loopback(client_ip(request, trusted_proxies))


def _presented_key(request) -> str | None:
    header = request.getHeader("authorization")
    if header is None:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def refusal(request, api_key: str, trusted_proxies: Sequence = ()) -> Refusal | None:
    """None when *request* may read telemetry; otherwise why not."""
    if KEY_QUERY_PARAMETERS & {name.lower() for name in (request.args or {})}:
        return KEY_IN_URL
    if not api_key:
        return None if is_local(request, trusted_proxies) else NOT_LOCAL
    presented = _presented_key(request)
    if presented is None:
        return NO_KEY
    if not hmac.compare_digest(presented.encode("utf-8"), api_key.encode("utf-8")):
        return WRONG_KEY
    return None
