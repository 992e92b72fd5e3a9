"""The latency probe: a child process that does nothing but answer probes.

It is isolated on purpose: latency must never be measured through an event
loop that is busy pushing bulk data.
"""
