"""``python -m lqos.load --port N --secret-file PATH [...]``: one load worker process.

Every worker listens on the same port (``SO_REUSEPORT``) and serves the bulk
load endpoints (``lqos/load/routes.py``) at a lower CPU priority, so that
when the cores are busy the probe, the personas and the API run first and
bulk data waits.  It reports the bytes it counts per test to the main
process over its pipe, every ``REPORT_SECONDS``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lqos.daemon.childproc import child_argument_parser, run_child
from lqos.daemon.endpoints import listen_shared
from lqos.load.worker import load_worker_factory


def main(argv: list[str]) -> None:
    parser = child_argument_parser("lqos-bufferbloat load worker")
    parser.add_argument("--secret-file", required=True)
    parser.add_argument("--upload-port", type=int, default=0,
                        help="a second port with the same routes, where clients send uploads (0: none)")
    parser.add_argument("--nice", type=int, default=10, choices=range(0, 20), metavar="0..19")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--head-seconds", type=float, default=20.0)
    parser.add_argument("--connections-per-ip", type=int, default=128)
    parser.add_argument("--connections", type=int, default=10000)
    options = parser.parse_args(argv)
    os.nice(options.nice)
    secret = Path(options.secret_file).read_bytes()
    run_child("load", options,
              lambda reactor, send_to_parent: load_worker_factory(reactor, options, secret, send_to_parent),
              listen=lambda reactor, factory: [listen_shared(reactor, port, options.interface, factory)
                                               for port in (options.port, options.upload_port) if port])


if __name__ == "__main__":
    main(sys.argv[1:])
