"""Print debian/requirements.txt: the runtime dependencies of lqos-bufferbloat, pinned.

Run it with the Python of a venv where the project is installed and the tests
pass (``.venv/bin/python debian/pins.py > debian/requirements.txt``): it walks
the installed ``Requires-Dist`` of lqos-bufferbloat (extras included, test
extras excluded) and prints each distribution with the version installed.
"""

from __future__ import annotations

import re
from importlib.metadata import distribution

from packaging.requirements import Requirement

HEADER = """\
# The Python dependencies shipped in the package's virtualenv, pinned so that a
# rebuild ships what was tested. dh_virtualenv installs these first, then the
# project itself (`pip install .`), which fetches anything setup.cfg asks for
# that is not listed here. etc/install_service.sh uses the same pins.
#
# To refresh, in a checkout after `make test` passes:
#   .venv/bin/python debian/pins.py > debian/requirements.txt"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(name: str, extras: tuple[str, ...] = ()) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    pending = [(name, extras)]
    walked: set[tuple[str, tuple[str, ...]]] = set()
    while pending:
        current, current_extras = pending.pop()
        key = (canonical(current), tuple(sorted(current_extras)))
        if key in walked:
            continue
        walked.add(key)
        dist = distribution(current)
        found[canonical(current)] = (dist.metadata["Name"], dist.version)
        for line in dist.requires or []:
            requirement = Requirement(line)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in ("", *current_extras))
            if wanted:
                pending.append((requirement.name, tuple(requirement.extras)))
    return found


def main() -> None:
    pins = closure("lqos-bufferbloat")
    del pins["lqos-bufferbloat"]
    print(HEADER)
    for key in sorted(pins):
        name, version = pins[key]
        print(f"{name}=={version}")


if __name__ == "__main__":
    main()
