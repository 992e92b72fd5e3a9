"""The units the code counts in, written once.

Durations are float seconds, Twisted's clock's unit; ``SECONDS`` makes a
literal say so (``30 * SECONDS``).  Rates are Mbit/s, as the page and the
grades show them (10^6 bits, the unit ISPs sell); sizes are bytes.
"""

from __future__ import annotations

SECONDS = 1.0
MINUTES = 60 * SECONDS
HOURS = 60 * MINUTES
BITS_PER_BYTE = 8
BITS_PER_MEGABIT = 1e6


def mbps(byte_count: float, seconds: float) -> float:
    """The rate, in Mbit/s, of *byte_count* bytes carried in *seconds*."""
    return byte_count * BITS_PER_BYTE / seconds / BITS_PER_MEGABIT


def bytes_per_second(rate_mbps: float) -> float:
    """The bytes carried each second at *rate_mbps* Mbit/s."""
    return rate_mbps * BITS_PER_MEGABIT / BITS_PER_BYTE
