# Kept tiny: twistd imports every plugin file on every run.
from twisted.application.service import ServiceMaker

lqos_bufferbloat = ServiceMaker(
    "lqos-bufferbloat",
    "lqos.daemon.tap",
    "A bufferbloat test that ISPs host themselves",
    "lqos-bufferbloat",
)
