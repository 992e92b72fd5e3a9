"""Fuzz a live daemon with malformed HTTP, WebSocket and result input; does it survive, does it leak?

    .venv/bin/python bench/fuzz.py [--seconds 120] [--warmup 15] [--workers 4] [--threads 6] [--seed N]

Starts its own daemon on free loopback ports (tests/daemon.py's launcher, as
bench/probe_rtt.py does) with the default limits except tests per address,
then runs --workers client processes of --threads threads each.  Each
thread, until time is up, picks one of:

* a malformed HTTP request (random bytes, a valid request mutated by bit
  flips, truncation, inserted CR/LF/NUL, huge or countless headers, bad
  lengths, bad chunking, random method/path/version) to the main port, the
  load workers' port, the probe port or a persona port;
* a WebSocket upgrade (valid, with a token where the port needs one, or
  broken) followed by random frames: wrong opcodes, reserved bits, unmasked,
  lengths that lie, invalid UTF-8, oversized, fragments, random bytes, and
  an RST in the middle of a frame now and then;
* a result submission: a fresh test, then a random JSON document or a
  plausible one mutated at random, with the token or without.

Connections come from 50 loopback source addresses (127.0.0.2-51), so the
per-address connection limit does not turn the whole run into 503s.  Half
the malformed connections half-close after sending (the server sees the end
at once); the others wait up to 3 s for an answer and then reset, which
exercises the head deadlines.

The first --warmup seconds are fuzzed too, but only so that every code path
has allocated what it keeps; the RSS of the main process and each child is
read after the warm-up and again at the end, after the clients have stopped.
Prints what was sent, how the server answered (a histogram), whether the
daemon and every child survived with the same pids, the daemon log's
tracebacks, and the RSS growth.  The figure to reach: no crash, RSS growth
under 10%.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import multiprocessing
import random
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from daemon import start_daemon  # noqa: E402  (the test suite's launcher, reused)
from wire import frame_bytes, plausible_samples, send_upgrade  # noqa: E402

SOURCE_ADDRESSES = [f"127.0.0.{i}" for i in range(2, 52)]
ANSWER_WAIT = 3.0
CONFIG = "max_concurrent_tests_per_ip=1000\nmax_tests_per_hour_per_ip=100000\nmax_concurrent_tests=100000\n"
PERSONAS = ("streaming", "gaming", "video", "updates")


# --- what to send ---

VALID_REQUESTS = [
    b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /api/tests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 24\r\n\r\n"
    b'{"mode":"single_user"}\r\n',
    b"GET /download?test=x&token=y HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /upload?test=x&token=y HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /ws/probe HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"GET /ws/virtual-household/abc?test=x&expires=1&token=y HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"GET /api/telemetry/recent?limit=5 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n\r\n",
    b"GET /r/abcdef HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
]
METHODS = [b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"HEAD", b"PATCH", b"CONNECT", b"TRACE", b"G\x00T", b""]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/0.9", b"HTTP/2.0", b"HTTP/1.1x", b"", b"HTTP/9.9"]


def random_bytes(rng: random.Random, most: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, most)))


def malformed_http(rng: random.Random) -> bytes:
    kind = rng.randrange(10)
    base = rng.choice(VALID_REQUESTS)
    if kind == 0:
        return random_bytes(rng, 2000)
    if kind == 1:  # bit flips
        data = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == 2:  # truncated
        return base[: rng.randrange(len(base))]
    if kind == 3:  # control bytes inserted
        at = rng.randrange(len(base))
        inserted = rng.choice([b"\r", b"\n", b"\x00", b"\r\n\r\n", b" ", b"\t", b":"]) * rng.randint(1, 5)
        return base[:at] + inserted + base[at:]
    if kind == 4:  # huge header
        return b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * rng.choice([17_000, 70_000, 1 << 20]) + b"\r\n\r\n"
    if kind == 5:  # countless headers
        count = rng.choice([501, 2000, 10_000])
        return b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(count)) + b"\r\n"
    if kind == 6:  # lengths that lie
        length = rng.choice([b"-1", b"99999999999999999999", b"abc", b"10, 20", b"0x10", b" 5", b"5\x00"])
        return (b"POST /api/tests HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n"
                + random_bytes(rng, 100))
    if kind == 7:  # bad chunking
        body = rng.choice([b"zz\r\n", b"5\r\nhel", b"ffffffffffffffffff\r\n", b"5;x=" + b"a" * 5000 + b"\r\n",
                           b"-1\r\n", b"5\r\nhelloXX0\r\n\r\n"])
        return (b"POST " + rng.choice([b"/api/tests", b"/upload?test=a&token=b", b"/ping", b"/"]) +
                b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    if kind == 8:  # random request line
        path = rng.choice([b"/", b"/" + random_bytes(rng, 50), b"*", b"http://evil.example/", b"/%00",
                           b"/../../etc/passwd", b"/" + b"a" * 20_000, b"/r/" + b"%ff" * 10,
                           b"/api/tests/" + b"9" * 200])
        return rng.choice(METHODS) + b" " + path + b" " + rng.choice(VERSIONS) + b"\r\nHost: x\r\n\r\n"
    # duplicated or conflicting framing headers
    return (b"POST /api/tests HTTP/1.1\r\nHost: x\r\nHost: y\r\nContent-Length: 3\r\nContent-Length: 30\r\n"
            b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n{}\r\n")


def hostile_frames(rng: random.Random) -> list[bytes]:
    frames = []
    for _ in range(rng.randint(1, 6)):
        kind = rng.randrange(11)
        if kind == 0:
            frames.append(frame_bytes(1, json.dumps({"seq": rng.randrange(1000), "t": rng.random()}).encode()))
        elif kind == 1:
            frames.append(frame_bytes(1, b'{"type":"ping","seq":1,"t":2}', masked=False))
        elif kind == 2:
            frames.append(frame_bytes(rng.choice([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), random_bytes(rng, 50)))
        elif kind == 3:
            frames.append(frame_bytes(1, b'{"seq": 1, "t": "\xc3\x28\xff\xfe"}'))
        elif kind == 4:
            frames.append(frame_bytes(2, random_bytes(rng, 500), declared_length=rng.choice([1 << 20, 1 << 30, 1 << 62])))
        elif kind == 5:
            frames.append(frame_bytes(1, b"x", rsv=rng.randint(1, 7)))
        elif kind == 6:
            frames.append(frame_bytes(9, b"x" * rng.choice([10, 126, 200]), fin=rng.random() < 0.5))
        elif kind == 7:
            frames.append(frame_bytes(0, random_bytes(rng, 100)))
        elif kind == 8:
            frames.append(random_bytes(rng, 3000))
        elif kind == 9:
            frames.append(frame_bytes(8, struct.pack("!H", rng.choice([0, 999, 1004, 1005, 1006, 1015, 5000, 65535]))
                                + random_bytes(rng, 20)))
        else:
            frames.append(frame_bytes(1, json.dumps({"type": rng.choice(["ping", "start", "nope", None]),
                                                    "seconds": rng.choice([1, -1, 1e9, "x", True]),
                                                    "seq": rng.choice([1, -1, "a", None]), "t": 1}).encode()))
    return frames


def random_json(rng: random.Random, depth: int = 0):
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2**63, -2**70, rng.randint(-10**6, 10**6)])
    if kind == 3:
        return rng.choice([0.5, -1e308, 1e308, float("nan"), float("inf"), rng.random() * 1e4])
    if kind == 4:
        return rng.choice(["", "download", "upload", "baseline", "bidirectional", "down", "up", "x" * 1000,
                           "\u0000", "\ud7ff", "é"])
    if kind in (5, 6):
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 6))]
    return {rng.choice(["token", "probes", "throughput", "streams", "download", "upload", "x"]):
            random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}





def mutate(rng: random.Random, value, depth: int = 0):
    """A plausible document with a few random parts replaced."""
    if isinstance(value, dict):
        return {key: (mutate(rng, item, depth + 1) if rng.random() < 0.3 else item) for key, item in value.items()}
    if isinstance(value, list):
        items = [mutate(rng, item, depth + 1) if rng.random() < 0.1 else item for item in value]
        if rng.random() < 0.1:
            items = items * rng.randint(2, 40)  # more samples than a test can have
        return items
    return random_json(rng, depth) if rng.random() < 0.5 else value


# --- one client thread ---


class Tally:
    def __init__(self):
        self.sent = collections.Counter()
        self.answers = collections.Counter()
        self.lock = threading.Lock()

    def add(self, kind: str, answer: str) -> None:
        with self.lock:
            self.sent[kind] += 1
            self.answers[f"{kind:<10} {answer}"] += 1


def connect(port: int, rng: random.Random, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(rng.choice(SOURCE_ADDRESSES), 0))


def reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def read_answer(sock: socket.socket, wait: float) -> str:
    """"HTTP 400", "closed" (EOF, no status), "reset", or "no answer in 3 s"."""
    sock.settimeout(wait)
    received = b""
    try:
        while b"\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    except ConnectionResetError:
        return "HTTP " + received.split(b" ", 2)[1].decode() if received.startswith(b"HTTP/1.1 ") else "reset"
    except socket.timeout:
        if not received:
            return f"no answer in {wait:g} s"
    except OSError as error:
        return type(error).__name__
    if received.startswith(b"HTTP/1.") and len(received.split(b" ", 2)) > 1:
        return "HTTP " + received.split(b" ", 2)[1].decode("ascii", "replace")
    return "closed" if not received else "non-HTTP answer"


def fuzz_http(ports: dict, rng: random.Random, tally: Tally) -> None:
    target = rng.choice(["main", "main", "load" if "load" in ports else "main", "probe", rng.choice(PERSONAS)])
    data = malformed_http(rng)
    try:
        sock = connect(ports[target], rng)
    except OSError as error:
        tally.add("http", f"connect failed: {type(error).__name__}")
        return
    try:
        sock.sendall(data)
        half_close = rng.random() < 0.5
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        tally.add("http", read_answer(sock, ANSWER_WAIT))
    except OSError:
        tally.add("http", "reset while sending")
    finally:
        reset(sock)


def session(main_port: int, rng: random.Random, mode: str) -> dict | None:
    connection = http.client.HTTPConnection("127.0.0.1", main_port, timeout=10,
                                            source_address=(rng.choice(SOURCE_ADDRESSES), 0))
    try:
        connection.request("POST", "/api/tests", json.dumps({"mode": mode, "schedule": "short"}),
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        body = response.read()
        return json.loads(body) if response.status == 201 else None
    except (OSError, ValueError):
        return None
    finally:
        connection.close()


def websocket_target(ports: dict, rng: random.Random, sessions: dict) -> tuple[int, bytes]:
    target = rng.choice(["probe", "probe", "main", "persona"])
    if target == "probe":
        return ports["probe"], b"/ws/probe"
    if target == "main":  # the bulk-download WebSocket, on whichever port the session names
        if "single" not in sessions or rng.random() < 0.05:
            sessions["single"] = session(ports["main"], rng, "single_user")
        started = sessions.get("single")
        if not started:
            return ports.get("load", ports["main"]), b"/ws/bulk-download"
        url = urlsplit(started["bulk_ws_url"])
        return url.port, f"{url.path}?{url.query}".encode()
    if "household" not in sessions or rng.random() < 0.05:
        sessions["household"] = session(ports["main"], rng, "virtual_household")
    household = sessions.get("household")
    name = rng.choice(PERSONAS)
    if not household:
        return ports[name], b"/ws/virtual-household/x"
    url = urlsplit(next(p["url"] for p in household["personas"] if p["name"] == name))
    return url.port, f"{url.path}?{url.query}".encode()


def fuzz_websocket(ports: dict, rng: random.Random, tally: Tally, sessions: dict) -> None:
    port, path = websocket_target(ports, rng, sessions)
    if rng.random() < 0.1:
        path = path.replace(b"token=", b"token=forged")
    version = rng.choice([b"13"] * 8 + [b"8", b"abc"])
    try:
        sock = connect(port, rng)
    except OSError as error:
        tally.add("websocket", f"connect failed: {type(error).__name__}")
        return
    try:
        head, leftover = send_upgrade(sock, path, version)
        status = head.split(b" ", 2)[1].decode("ascii", "replace") if head.startswith(b"HTTP/1.1 ") else "?"
        if status != "101":
            tally.add("websocket", f"upgrade {status}")
            return
        frames = hostile_frames(rng)
        if rng.random() < 0.2:  # an RST in the middle of a frame
            sock.sendall(b"".join(frames)[: rng.randint(1, max(1, sum(map(len, frames)) - 1))])
            tally.add("websocket", "client reset mid-frame")
            return
        for piece in frames:
            sock.sendall(piece)
        tally.add("websocket", close_code(sock, leftover))
    except ConnectionResetError:
        tally.add("websocket", "reset")
    except socket.timeout:
        tally.add("websocket", "no answer in 5 s")
    except OSError as error:
        tally.add("websocket", type(error).__name__)
    finally:
        reset(sock)


def close_code(sock: socket.socket, buffer: bytes) -> str:
    """The server's close code, skipping its data frames; "open after 3 s" if it has not closed."""
    sock.settimeout(ANSWER_WAIT)
    deadline = time.monotonic() + ANSWER_WAIT
    try:
        while time.monotonic() < deadline:
            while len(buffer) >= 2:
                opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
                offset = 2
                if length == 126:
                    if len(buffer) < 4:
                        break
                    length, offset = struct.unpack("!H", buffer[2:4])[0], 4
                elif length == 127:
                    if len(buffer) < 10:
                        break
                    length, offset = struct.unpack("!Q", buffer[2:10])[0], 10
                if len(buffer) < offset + length:
                    break
                payload, buffer = buffer[offset:offset + length], buffer[offset + length:]
                if opcode == 8:
                    return f"close {struct.unpack('!H', payload[:2])[0]}" if len(payload) >= 2 else "close (no code)"
            chunk = sock.recv(65536)
            if not chunk:
                return "closed without close frame"
            buffer += chunk
    except socket.timeout:
        pass
    return f"still open after {ANSWER_WAIT:g} s (valid input)"


def fuzz_submission(ports: dict, rng: random.Random, tally: Tally) -> None:
    started = session(ports["main"], rng, "single_user")
    if started is None:
        tally.add("submit", "no session")
        return
    roll = rng.random()
    if roll < 0.4:
        document = random_json(rng)
    elif roll < 0.9:
        document = mutate(rng, plausible_samples(started["token"]))
    else:
        document = plausible_samples("forged" + started["token"][6:])
    body = json.dumps(document).encode() if rng.random() < 0.95 else random_bytes(rng, 3000)
    path = "/" + started["result_url"].split("/", 3)[3]
    connection = http.client.HTTPConnection("127.0.0.1", ports["main"], timeout=10,
                                            source_address=(rng.choice(SOURCE_ADDRESSES), 0))
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        tally.add("submit", f"HTTP {response.status}")
    except (OSError, http.client.HTTPException) as error:
        tally.add("submit", type(error).__name__)
    finally:
        connection.close()


def client_thread(ports: dict, seed: int, until: float, tally: Tally) -> None:
    rng = random.Random(seed)
    sessions: dict = {}
    while time.time() < until:
        roll = rng.random()
        if roll < 0.5:
            fuzz_http(ports, rng, tally)
        elif roll < 0.85:
            fuzz_websocket(ports, rng, tally, sessions)
        else:
            fuzz_submission(ports, rng, tally)


def worker(ports: dict, seed: int, threads: int, until: float, results) -> None:
    tally = Tally()
    running = [threading.Thread(target=client_thread, args=(ports, seed * 1000 + i, until, tally), daemon=True)
               for i in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join(timeout=max(0.0, until - time.time()) + 30)
    results.put((dict(tally.sent), dict(tally.answers)))


def run_phase(ports: dict, seconds: float, options, seed: int) -> tuple[collections.Counter, collections.Counter]:
    until = time.time() + seconds
    results = multiprocessing.Queue()
    processes = [multiprocessing.Process(target=worker, args=(ports, seed + w, options.threads, until, results))
                 for w in range(options.workers)]
    for process in processes:
        process.start()
    sent, answers = collections.Counter(), collections.Counter()
    for _ in processes:
        worker_sent, worker_answers = results.get(timeout=seconds + 90)
        sent.update(worker_sent)
        answers.update(worker_answers)
    for process in processes:
        process.join(timeout=10)
    return sent, answers


# --- the daemon's side ---


# RSS is sampled during the run every this many health checks (2 s apart): a
# leak shows as a steady climb, an allocator keeping freed memory as a plateau.
RSS_EVERY_CHECKS = 8


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def processes(daemon) -> dict[str, int]:
    return {"main": daemon.process.pid, **daemon.child_pids()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        daemon = start_daemon(Path(scratch), config_text=CONFIG, as_deployed=True)
        try:
            ports = {"main": daemon.port, **daemon.child_ports}
            pids_at_start = processes(daemon)
            print(f"fuzz: {options.seconds:g} s after a {options.warmup:g} s warm-up, {options.workers} client "
                  f"processes x {options.threads} threads, seed {options.seed}")
            run_phase(ports, options.warmup, options, options.seed)
            time.sleep(3.0)  # let the warm-up's connections close
            rss_start = {role: rss_kib(pid) for role, pid in pids_at_start.items()}
            health_during: list[int] = []
            stop = threading.Event()

            rss_during: dict[str, list[int]] = {role: [] for role in pids_at_start}

            def watch_health():
                checks = 0
                while not stop.wait(2.0):
                    answer = daemon.health()
                    health_during.append(answer[0] if answer else 0)
                    checks += 1
                    if checks % RSS_EVERY_CHECKS == 0:
                        for role, pid in pids_at_start.items():
                            rss_during[role].append(rss_kib(pid))
            watcher = threading.Thread(target=watch_health, daemon=True)
            watcher.start()
            started = time.monotonic()
            sent, answers = run_phase(ports, options.seconds, options, options.seed + 100)
            elapsed = time.monotonic() - started
            stop.set()
            watcher.join()
            time.sleep(5.0)  # the server's own deadlines close what the clients left behind
            report(daemon, pids_at_start, rss_start, rss_during, sent, answers, elapsed, health_during)
        finally:
            daemon.stop()


def traceback_excerpts(log: str, most: int = 6) -> list[str]:
    """Each distinct traceback in the daemon's log: where (role), its innermost frame, its error."""
    excerpts: list[str] = []
    lines = log.splitlines()
    for index, line in enumerate(lines):
        if "Traceback (most recent call last)" not in line:
            continue
        prefix = line[:line.index("Traceback")]
        if prefix.startswith("\t"):  # the main process: continuation lines start with a tab
            where, marker = "main", "\t"
        else:  # a child's stderr, relayed by the supervisor line by line with its role
            marker = prefix[prefix.index(" ["):] if " [" in prefix else prefix
            where = marker.strip().rsplit(" ", 1)[-1]
        frames, error = [], "?"
        for following in lines[index + 1:index + 200]:
            if marker not in following:
                break
            text = following.split(marker, 1)[1]
            if text.startswith("  File "):
                frames.append(text.strip())
            elif text and not text.startswith(" "):
                error = text.strip()
                break
        summary = f"{where}: {frames[-1] if frames else '?'} -> {error}"
        if summary not in excerpts:
            excerpts.append(summary)
    return excerpts[:most]


def report(daemon, pids_at_start, rss_start, rss_during, sent, answers, elapsed, health_during) -> None:
    total = sum(sent.values())
    print(f"sent: {total} connections in {elapsed:.0f} s ({total / elapsed:.0f}/s): "
          + ", ".join(f"{kind} {count}" for kind, count in sorted(sent.items())))
    print("answers:")
    for answer, count in sorted(answers.items()):
        print(f"  {answer:<52} {count:>7}")
    alive = daemon.process.poll() is None
    health = daemon.health() if alive else None
    pids_now = processes(daemon) if health else {}
    same = pids_now == pids_at_start
    unhealthy = sum(1 for status in health_during if status != 200)
    print(f"daemon: {'alive' if alive else 'DEAD'}; /api/health {health[0] if health else 'no answer'} at the end, "
          f"non-200 in {unhealthy} of {len(health_during)} checks during the run; "
          f"children {'same pids, no restart' if same else f'CHANGED: {pids_at_start} -> {pids_now}'}")
    log = daemon.log()
    print(f"daemon log: {log.count('Traceback')} tracebacks, {log.count('Unhandled')} unhandled errors, "
          f"{len(log.splitlines())} lines")
    for excerpt in traceback_excerpts(log):
        print("  " + excerpt)
    print(f"{'RSS (MiB)':<12}{'start':>9}{'end':>9}{'growth':>9}   during the run, every {2 * RSS_EVERY_CHECKS} s")
    worst = 0.0
    for role, pid in pids_at_start.items():
        start = rss_start[role] / 1024
        end = rss_kib(pid) / 1024 if alive and same else float("nan")
        growth = 100 * (end - start) / start
        worst = max(worst, growth)
        during = " ".join(f"{kib / 1024:.0f}" for kib in rss_during[role])
        print(f"{role:<12}{start:>9.1f}{end:>9.1f}{growth:>8.1f}%   {during}")
    survived = alive and same and not unhealthy and worst < 10
    print(f"verdict: {'PASS' if survived else 'FAIL'}: no crash, no restart, healthy throughout, RSS growth under "
          f"10% (worst {worst:.1f}%); {log.count('Traceback')} tracebacks in the log")


if __name__ == "__main__":
    main()
