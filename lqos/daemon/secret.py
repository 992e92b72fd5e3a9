"""The server's secret, kept in the data directory so tokens survive a restart."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_FILE = "server_secret"
SECRET_BYTES = 32


def load_or_create_secret(data_dir: str) -> bytes:
    """Read the secret, or write a new random one readable only by this user."""
    path = Path(data_dir) / SECRET_FILE
    try:
        secret = path.read_bytes()
        if len(secret) >= SECRET_BYTES:
            return secret
    except FileNotFoundError:
        pass
    secret = secrets.token_bytes(SECRET_BYTES)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secret)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return secret
