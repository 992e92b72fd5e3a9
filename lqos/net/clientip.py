"""Who the client is: the socket's peer, or what a trusted proxy says it is."""

from __future__ import annotations

import ipaddress
from typing import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_FORWARDED_HOPS = 20


def address_of(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address *text* spells, an IPv4-mapped IPv6 one as IPv4; None when it spells none.

    The one place that decides when two spellings are the same client: the
    telemetry store, its API and the loopback check all go through it.
    """
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _trusted(address, trusted_proxies: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in trusted_proxies)


def client_ip(request, trusted_proxies: Sequence[Network] = ()) -> str:
    """The client's IP address as text (IPv4-mapped IPv6 shown as IPv4).

    ``X-Forwarded-For`` is read only when the peer is a trusted proxy, and
    from the right: each trusted hop is skipped, and the first address a
    trusted proxy did not add itself is the client.  Anything else a client
    writes in that header is ignored.
    """
    peer = address_of(request.getClientAddress().host)
    if peer is None:
        return request.getClientAddress().host
    if not _trusted(peer, trusted_proxies):
        return str(peer)
    header = request.getHeader("x-forwarded-for") or ""
    hops = [hop for hop in header.split(",")][-MAX_FORWARDED_HOPS:]
    for hop in reversed(hops):
        address = address_of(hop)
        if address is None:
            break
        if not _trusted(address, trusted_proxies):
            return str(address)
    return str(peer)
