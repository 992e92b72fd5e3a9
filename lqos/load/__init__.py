"""The load the test measures under: ``GET /download``, ``POST /upload``, ``WS /ws/bulk-download``.

Every stream belongs to a test session (``?test=ID&token=T``), counts its
bytes into that session, and is bounded in time and bytes.  The server only
writes when the transport has room (Twisted producers plus
``TCP_NOTSENT_LOWAT``), so its own buffers add no latency and a client that
stops reading costs no memory; upload bodies are counted and dropped as they
arrive, never spooled.
"""
