"""A throwaway PostgreSQL cluster for the fleet's tests: Debian's server binaries, a temp dir, a free port.

``initdb`` and ``pg_ctl`` refuse to run as root, and `make test` runs as
root, so there they run as the ``postgres`` system user that Debian's
package creates; as any other user they run as that user.  The cluster
listens on 127.0.0.1 only, trusts its one superuser (``lqos``), and is
removed afterwards.  ``fsync=off``: a test never outlives a power cut, and
that is the slowest part of a commit.  (``bench/store_rate.py`` keeps fsync on.)
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

SUPERUSER = "lqos"


def server_binaries() -> Path:
    """The newest installed major version's bin directory (Debian keeps them side by side)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(path.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL's server is not installed: apt-get install postgresql (make test does)")
    return Path(found[-1]).parent


class Cluster:
    """One PostgreSQL server of its own; ``start``, ``stop`` (and start again), ``remove``."""

    def __init__(self, port: int, fsync: bool = False):
        self.port = port
        self._bin = server_binaries()
        self._user = "postgres" if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="lqos-postgres-"))
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.data = self.root / "data"
        self._settings = ["-c", f"port={port}", "-c", "listen_addresses=127.0.0.1",
                          "-c", f"unix_socket_directories={self.root}", "-c", f"fsync={'on' if fsync else 'off'}"]
        self._run("initdb", "--pgdata", str(self.data), "--username", SUPERUSER, "--auth", "trust",
                  "--encoding", "UTF8", "--no-instructions", *([] if fsync else ["--no-sync"]))

    def _run(self, tool: str, *argv: str) -> None:
        subprocess.run([str(self._bin / tool), *argv], check=True, user=self._user, cwd=self.root,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> None:
        self._run("pg_ctl", "start", "--wait", "--pgdata", str(self.data), "--log", str(self.root / "server.log"),
                  "-o", " ".join(self._settings))

    def stop(self) -> None:
        """A fast shutdown: sessions are ended at once, as a database restart would end them."""
        self._run("pg_ctl", "stop", "--wait", "--mode", "fast", "--pgdata", str(self.data))

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        credentials = user if password is None else f"{user}:{password}"
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{database}"

    def execute(self, statement: str, database: str = "postgres", parameters: tuple = ()) -> list[tuple]:
        """Run one statement as the superuser; its rows (empty for a statement that returns none)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as connection:
            cursor = connection.execute(statement, parameters)
            return cursor.fetchall() if cursor.description else []

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        self.execute(f"CREATE DATABASE {name}")
        return self.url(name)
