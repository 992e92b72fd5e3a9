"""The load the test measures under: ``GET /download``, ``POST /upload``, ``WS /ws/bulk-download``.

They are served by load worker processes (``python -m lqos.load``), all on
``load_port`` and ``upload_port`` (clients send uploads to the second, so a
browser's six connections per port go to each direction) and niced, so bulk data scales with cores and never delays the
probe, the personas or the API.  Every stream belongs to a test
(``?test=ID&until=T&token=K``, signed by the main process), counts its bytes
for that test, and is bounded in time and bytes.  The server only writes
when the transport has room (Twisted producers plus ``TCP_NOTSENT_LOWAT``),
so its own buffers add no latency and a client that stops reading costs no
memory; upload bodies are counted and dropped as they arrive, never spooled.
"""
