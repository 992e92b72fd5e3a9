"""What a test measured and the grade it earns: pure functions and values, no I/O.

The server grades with these (the only place grading happens), the clients
use their units and limits, and tests check them directly and with
hypothesis.
"""
