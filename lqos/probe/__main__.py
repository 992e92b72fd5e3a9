"""``python -m lqos.probe --port N``: the probe child process."""

import sys

from lqos.daemon.childproc import child_argument_parser, run_child
from lqos.probe.server import probe_site

if __name__ == "__main__":
    options = child_argument_parser("lqos-bufferbloat latency probe").parse_args(sys.argv[1:])
    run_child("probe", options, probe_site)
