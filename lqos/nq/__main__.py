"""``python -m lqos.nq --port N --tls-cert C --tls-key K [...]``: one networkQuality worker process.

Like the load workers, every nq worker listens on the same port
(``SO_REUSEPORT``) at a lower CPU priority, so that when the cores are busy
the probe, the personas and the API run first and bulk data waits.  The
port speaks HTTP/2 over TLS only: ALPN offers ``h2`` and ``http/1.1``, and
a client that chooses HTTP/1.1 is told so in one response
(``lqos/nq/server.py``).
"""

from __future__ import annotations

import os
import sys

from lqos.daemon.childproc import child_argument_parser, run_child
from lqos.daemon.endpoints import listen_shared, tls_server_factory
from lqos.net.connections import ConnectionLimits
from lqos.nq.limits import NQLimits
from lqos.nq.server import NQFactory, NQShared


def nq_factory(reactor, options, limits: NQLimits = NQLimits()):
    """Connection limits around TLS (ALPN h2) around the HTTP/2 protocol.

    The limits' request-head deadline is the idle bound here: from the
    connection's opening, and from the end of its last stream, the client
    has *head_seconds* to open a stream (goresponsiveness leaves every probe
    connection open when it is done with it).
    """
    tls = tls_server_factory(NQFactory(NQShared(limits, reactor)), options.tls_cert, options.tls_key,
                             (b"h2", b"http/1.1"))
    return ConnectionLimits(tls, reactor, per_ip=options.connections_per_ip, total=options.connections,
                            head_seconds=options.head_seconds)


def main(argv: list[str]) -> None:
    parser = child_argument_parser("lqos-bufferbloat networkQuality worker")
    parser.add_argument("--nice", type=int, default=10, choices=range(0, 20), metavar="0..19")
    parser.add_argument("--head-seconds", type=float, default=20.0)
    parser.add_argument("--connections-per-ip", type=int, default=512)
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--bulk-seconds", type=float, default=NQLimits.bulk_seconds)
    options = parser.parse_args(argv)
    if not (options.tls_cert and options.tls_key):
        parser.error("the networkQuality port needs --tls-cert and --tls-key: its clients speak HTTP/2 over TLS")
    os.nice(options.nice)
    limits = NQLimits(bulk_seconds=options.bulk_seconds)
    run_child("nq", options, lambda reactor, send_to_parent: nq_factory(reactor, options, limits),
              listen=lambda reactor, factory: [listen_shared(reactor, options.port, options.interface, factory)])


if __name__ == "__main__":
    main(sys.argv[1:])
