"""``python -m lqos.probe --port N``: the probe child process."""

import sys

from lqos.childproc import run_child
from lqos.probe.server import probe_site

if __name__ == "__main__":
    run_child("probe", sys.argv[1:], probe_site)
