"""What clients send, valid or not: shared by the tests and the benches that hit a live daemon."""

from __future__ import annotations

import base64
import json
import os
import struct
from urllib.parse import urlsplit


def path_of(url: str) -> str:
    """The path and query of *url*, as a request line names them."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def forged_token(token: str) -> str:
    """*token* with its last two characters replaced: the same shape, never the same token."""
    return token[:-2] + ("BB" if token.endswith("AA") else "AA")


def plausible_samples(token: str, streams: tuple[int, int] = (4, 3)) -> dict:
    """A short test's worth of samples in the short schedule's phase order: 10 ms idle, 40 ms under load.

    *streams* is the (download, upload) stream count the client says it ran.
    """
    probes = [[seq, "baseline", seq * 100.0, 10.0] for seq in range(20)]
    for offset, phase in ((40, "upload"), (90, "download"), (120, "bidirectional")):
        probes += [[offset + i, phase, (offset + i) * 100.0, 40.0] for i in range(25)]
    windows = [["upload", 4000 + i * 250.0, "up", 1_250_000] for i in range(12)]
    windows += [["download", 9000 + i * 250.0, "down", 3_125_000] for i in range(12)]
    return {"token": token, "probes": probes, "throughput": windows,
            "streams": {"download": streams[0], "upload": streams[1]}}


def complete_test(daemon, source_ip: str = "127.0.0.1", headers: dict | None = None) -> tuple[int, dict]:
    """Start a short test on *daemon* and submit plausible samples for it, as a client at *source_ip*."""
    status, test = daemon.post_json("/api/tests", {"schedule": "short"}, source_ip=source_ip)
    assert status == 201, test
    body = json.dumps(plausible_samples(test["token"])).encode()
    status, _, answer = daemon.request("POST", path_of(test["result_url"]), body,
                                       {"Content-Type": "application/json", **(headers or {})}, source_ip)
    return status, json.loads(answer)


def frame_bytes(opcode: int, payload: bytes, masked: bool = True, fin: bool = True, rsv: int = 0,
                declared_length: int | None = None) -> bytes:
    """One client WebSocket frame, valid or not: any opcode and reserved bits, masked or not, any declared length."""
    length = len(payload) if declared_length is None else declared_length
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if masked else 0
    if length < 126:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if masked:
        key = os.urandom(4)
        payload = key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return header + payload


def send_upgrade(sock, path: bytes, version: bytes = b"13") -> tuple[bytes, bytes]:
    """Ask for a WebSocket upgrade of *path* on a connected socket; the answer's head and what followed it."""
    key = base64.b64encode(os.urandom(16))
    sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
                 b"Sec-WebSocket-Version: " + version + b"\r\n\r\n")
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    head, _, leftover = received.partition(b"\r\n\r\n")
    return head, leftover
