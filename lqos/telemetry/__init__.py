"""Telemetry and support: the result database, its outbox, the support API and metrics.

- ``schema``: the SQLite schema as versioned steps, applied at start;
- ``pgschema``: the same tables in the fleet's PostgreSQL database, as steps of their own;
- ``queries``: the ``tests`` table's statements, written once for both backends;
- ``store``: ``SQLiteResultStore``, the daemon's ``IResultStore`` (one writer);
- ``fleet``: the fleet's PostgreSQL store and the writer that fills it from the outbox;
- ``payloads``: what a webhook and the central service receive, and the signature;
- ``outbox``: the service that delivers outbox rows with retries;
- ``access``: who may read telemetry (bearer key, or loopback when no key is set);
- ``api``: the support API routes and ``/metrics``;
- ``metrics``: the per-daemon Prometheus registry and its collectors;
- ``service``: wires them into one Twisted service.
"""
