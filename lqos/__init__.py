"""lqos-bufferbloat: a bufferbloat test that ISPs host themselves."""

__version__ = "0.1.0"
