"""Who may load the server: the test a load request's query names, and its stream slots."""

from __future__ import annotations

from typing import Mapping, Sequence

from lqos.load.limits import LoadLimits
from lqos.load.tickets import LoadSession, LoadTickets, TicketRefused
from lqos.net.refusal import Refused

QueryArgs = Mapping[bytes, Sequence[bytes]]

MAX_ID_BYTES = 200


class LoadRefused(Refused):
    """A load request the server will not serve."""


def query_text(args: QueryArgs, name: bytes) -> str:
    """The first value of query parameter *name*, or "" when it is absent or not text."""
    values = args.get(name) or [b""]
    try:
        return values[0][:MAX_ID_BYTES].decode("ascii")
    except UnicodeDecodeError:
        return ""


def query_number(args: QueryArgs, name: bytes, default: float, low: float, high: float) -> float:
    """A numeric query parameter within [low, high]; 400 when present but out of range."""
    text = query_text(args, name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # also false for NaN
        raise LoadRefused(400, f"{name.decode()} must be a number from {low:g} to {high:g}")
    return value


def authorize(tickets: LoadTickets, args: QueryArgs) -> LoadSession:
    """The test that ``?test=ID&until=T&token=K`` opens; 403 or 410 when it opens none."""
    try:
        return tickets.admit(query_text(args, b"test"), query_text(args, b"until"), query_text(args, b"token"))
    except TicketRefused as refused:
        raise LoadRefused(refused.status, refused.reason) from None


def open_stream(session: LoadSession, limits: LoadLimits, now: float) -> StreamSlot:
    """A stream slot, if the test's schedule is still running and it has one free."""
    if now > session.until:
        raise LoadRefused(410, "this test's schedule is over: start a new test")
    return StreamSlot(session, limits.streams_per_test)


class StreamSlot:
    """One of the session's concurrent streams; releasing twice is harmless.

    Counting streams in the session bounds how many connections one token can
    hold open at once, whatever the transport.
    """

    def __init__(self, session: LoadSession, limit: int):
        if session.active_streams >= limit:
            raise LoadRefused(429, f"this test already has {limit} streams open")
        session.active_streams += 1
        self._session = session

    def release(self, ignored: object = None) -> object:
        if self._session is not None:
            self._session.active_streams -= 1
            self._session = None
        return ignored
