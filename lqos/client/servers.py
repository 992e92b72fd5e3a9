"""The nearest of a fleet's servers: ``--server auto``, ``--server LABEL`` and ``--list-servers``.

A server lists its fleet at ``GET /api/servers`` (docs/PROTOCOL.md).  Each
server is timed by a few ``GET`` requests to its probe's ``/ping`` on one
connection: the first pays for the connection (and TLS), so the least of the
others is the round trip.  The page does the same (web_client/servers.js).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Sequence

from lqos.client.http import ClientError, Http

PING_ROUNDS = 4
PING_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class TimedServer:
    """A server of the fleet as ``/api/servers`` lists it, with its round trip once timed."""

    label: str
    url: str
    ping_url: str
    rtt_ms: float | None = None  # None: not timed, or it did not answer


async def fleet_servers(http: Http, base_url: str) -> tuple[str, list[TimedServer]]:
    """This server's name and the fleet it lists (empty when it names none)."""
    reply = await http.request_json("GET", f"{base_url}/api/servers")
    if reply.status != 200:
        raise ClientError(f"the server would not list its fleet: {reply.error_text()}")
    answer = reply.json()
    try:
        servers = [TimedServer(str(s["label"]), str(s["url"]).rstrip("/"), str(s["ping_url"]))
                   for s in answer["servers"]]
        return str(answer["server_id"]), servers
    except (KeyError, TypeError):
        raise ClientError("the server's list of servers is not in the documented form") from None


async def round_trip_ms(http: Http, ping_url: str, rounds: int = PING_ROUNDS) -> float | None:
    """The least round trip of GET *ping_url* after the first (which opens the connection); None if it fails."""
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        try:
            reply = await http.request_json("GET", ping_url, timeout=PING_TIMEOUT_SECONDS)
        except Exception:
            return None
        if reply.status != 200:
            return None
        times.append((time.perf_counter() - began) * 1000)
    return min(times[1:] or times)


async def timed(http: Http, servers: Sequence[TimedServer]) -> list[TimedServer]:
    """Every server with its round trip, timed one after the other (so that they do not share the line)."""
    return [dataclasses.replace(server, rtt_ms=await round_trip_ms(http, server.ping_url)) for server in servers]


def nearest(servers: Sequence[TimedServer]) -> TimedServer | None:
    """The server with the least round trip; None when none answered."""
    answered = [server for server in servers if server.rtt_ms is not None]
    return min(answered, key=lambda server: server.rtt_ms) if answered else None


def choose(servers: Sequence[TimedServer], wanted: str) -> TimedServer:
    """*wanted* is ``auto`` (the nearest) or a label; ClientError when there is no such server."""
    if wanted == "auto":
        chosen = nearest(servers)
        if chosen is None:
            raise ClientError("none of the fleet's servers answered its ping")
        return chosen
    for server in servers:
        if server.label == wanted:
            return server
    labels = ", ".join(server.label for server in servers) or "none"
    raise ClientError(f"the server lists no server labelled {wanted!r} (it lists: {labels})")


def render_servers(servers: Sequence[TimedServer]) -> str:
    """The fleet as a table, the nearest marked."""
    best = nearest(servers)
    width = max([len(server.label) for server in servers] + [5])
    lines = [f"  {'label':<{width}}  {'round trip':>10}  url"]
    for server in servers:
        rtt = "no answer" if server.rtt_ms is None else f"{server.rtt_ms:.1f} ms"
        mark = "*" if server is best else " "
        lines.append(f"{mark} {server.label:<{width}}  {rtt:>10}  {server.url}")
    lines.append("* nearest: the one --server auto tests against")
    return "\n".join(lines) + "\n"


async def resolve(http: Http, base_url: str, wanted: str) -> tuple[str, TimedServer | None]:
    """The base URL to test against for ``--server WANTED``, and the server chosen (None: the fleet is
    empty and *base_url* itself is tested)."""
    _, servers = await fleet_servers(http, base_url)
    if not servers:
        if wanted == "auto":
            return base_url, None
        raise ClientError(f"the server lists no fleet, so there is no server labelled {wanted!r}")
    chosen = choose(await timed(http, servers) if wanted == "auto" else servers, wanted)
    return chosen.url, chosen

