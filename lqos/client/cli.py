"""``lqos-bufferbloat-test URL [--mode household] [--json] [--short | --schedule NAME] [--cafile PATH]``: the test from a terminal.

``lqos-bufferbloat-test --rpm https://HOST:PORT/.well-known/nq [--json] [--cafile PATH]`` runs the IETF
responsiveness draft's test instead (``lqos/rpm/``), against this project's
networkQuality port or any server of the draft, and prints RPM.

Runs the same single-user test as the browser, or with ``--mode household``
the virtual household (both in docs/PROTOCOL.md), against a server at
URL and prints the result the server computed.  With ``--server auto`` it
tests against the nearest server of the fleet URL lists (or ``--server
LABEL``, a chosen one); ``--list-servers`` lists them with their round trips.
Exit codes:
0 a result was printed; 1 the test failed (server gone, network failure,
bad answer), with one line on stderr and no grade; 2 the server refused
to start a test, now (429) or in the mode and schedule asked for (400), or
the command line was wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from urllib.parse import urlsplit

from twisted.internet import defer, task

from lqos.client.household import run_household, start_household
from lqos.client.household_report import render_household
from lqos.client.http import Http, describe_error
from lqos.client.prober import ChildProber
from lqos.client.report import render
from lqos.client.runner import CEILING_MBPS, Refused, ceilings_mbps, run_test, start_test, submit
from lqos.client.servers import fleet_servers, render_servers, resolve, timed
from lqos.rpm.responsiveness import MAX_TEST_SECONDS
from lqos.rpm.run import measure_rpm, render_rpm

PROG = "lqos-bufferbloat-test"
EXIT_FAILED = 1
EXIT_REFUSED = 2
MODES = ("single_user", "household")
# Beyond the schedule itself: start-up, the last probes, the submission.
OVERALL_SLACK_SECONDS = 60.0


def base_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def https_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme != "https" or not parts.hostname or len(text) > 2048:
        raise argparse.ArgumentTypeError(f"{text!r} is not an https:// URL (the draft's servers speak HTTP/2 over TLS)")
    return text.strip()


def number_between(low: float, high: float):
    """An argparse type: a number from *low* to *high*."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a number from {low:g} to {high:g}")
        return value
    return parse


def schedule_name(text: str) -> str:
    """A name the server may know; which names it runs is its to say (it answers 400 to others)."""
    if not (0 < len(text) <= 32 and text.replace("_", "").isalnum() and text.isascii()):
        raise argparse.ArgumentTypeError("must be a schedule's name, such as standard or short")
    return text


def server_choice(text: str) -> str:
    if not 0 < len(text) <= 64 or not text.isprintable():
        raise argparse.ArgumentTypeError("must be auto or a server's label")
    return text


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description="Measure bufferbloat against an lqos-bufferbloat server.")
    parser.add_argument("url", type=base_url, nargs="?", help="the server, e.g. https://test.isp.example")
    parser.add_argument("--rpm", metavar="CONFIG_URL", type=https_url,
                        help="measure responsiveness (RPM) as the IETF draft and networkQuality do, against the "
                             "configuration at CONFIG_URL, e.g. https://test.isp.example:8443/.well-known/nq")
    parser.add_argument("--rpm-seconds", type=number_between(3, 60), default=MAX_TEST_SECONDS, metavar="N",
                        help=f"end the RPM test after N seconds if it has not become stable (3 to 60, default {MAX_TEST_SECONDS:g})")
    parser.add_argument("--mode", choices=MODES, default="single_user",
                        help="single_user (default): one device loads the line; household: the server's "
                             "personas (streaming, gaming, video call, updates, any plugged in) share it at once")
    parser.add_argument("--json", action="store_true", help="print the server's JSON result as it came")
    schedule = parser.add_mutually_exclusive_group()
    schedule.add_argument("--short", dest="schedule", action="store_const", const="short", default="standard",
                          help="the short schedule (single user 15 s, household 10 s) instead of the standard one")
    schedule.add_argument("--schedule", type=schedule_name, metavar="NAME",
                          help="a schedule by name, as the server lists them at /api/schedules: standard, "
                               "short, or quick (seconds long, for checking an installation; only a server "
                               "with quick_schedule=on runs it)")
    parser.add_argument("--cafile", metavar="PATH", help="trust this PEM certificate (a self-signed server)")
    parser.add_argument("--max-mbps", type=number_between(1, CEILING_MBPS), default=CEILING_MBPS, metavar="N",
                        help=f"move at most N Mbit/s each way (default and most {CEILING_MBPS:g}, "
                             "the highest rate the server accepts); in a household test it caps only "
                             "the bulk persona's (updates) download")
    fleet = parser.add_mutually_exclusive_group()
    fleet.add_argument("--server", type=server_choice, metavar="auto|LABEL",
                       help="test against a server of the fleet URL lists at /api/servers: auto, the one "
                            "with the least round trip, or the one with this label")
    fleet.add_argument("--list-servers", action="store_true",
                       help="list the fleet's servers with their round trips, and test nothing")
    parser.add_argument("--timeline", metavar="PATH",
                        help="also write the test's start time (Unix seconds) and phases to PATH as JSON")
    options = parser.parse_args(argv)
    if (options.url is None) == (options.rpm is None):
        parser.error("give the server's URL, or --rpm CONFIG_URL (not both)")
    return options


async def run(reactor, options: argparse.Namespace) -> tuple[bytes, dict[str, float]]:
    """The whole test: the server's result (JSON bytes as received) and the rate ceilings used."""
    http = Http(reactor, options.cafile)
    # The prober's interpreter starts while the server opens the session.
    prober = ChildProber(reactor, options.cafile)
    try:
        answer = await start_test(http, options.url, options.schedule)
        duration = sum(float(phase["seconds"]) for phase in answer["phases"])
        ceilings = ceilings_mbps(answer, options.max_mbps)
        started: list[float] = []
        test = defer.ensureDeferred(run_test(reactor, http, answer, prober, ceilings, on_start=started.append))
        body = await test.addTimeout(duration + OVERALL_SLACK_SECONDS, reactor)
        reply = await submit(http, answer, body)
        if options.timeline:
            write_timeline(options.timeline, started[0], answer["phases"])
        return reply.body, ceilings
    finally:
        prober.abort()
        await http.close()


async def run_household_mode(reactor, options: argparse.Namespace) -> bytes:
    """The whole household test: the server's result (JSON bytes as received)."""
    http = Http(reactor, options.cafile)
    try:
        answer = await start_household(http, options.url, options.schedule)
        duration = sum(float(phase["seconds"]) for phase in answer["phases"])
        bulk_cap = options.max_mbps if options.max_mbps < CEILING_MBPS else None
        started: list[float] = []
        test = defer.ensureDeferred(run_household(reactor, answer, options.cafile, bulk_cap, started.append))
        body = await test.addTimeout(duration + OVERALL_SLACK_SECONDS, reactor)
        reply = await submit(http, answer, body)
        if options.timeline:
            write_timeline(options.timeline, started[0], answer["phases"])
        return reply.body
    finally:
        await http.close()


def write_timeline(path: str, started_unix: float, phases: list) -> None:
    with open(path, "w") as handle:
        json.dump({"started_unix": started_unix, "phases": phases}, handle)


async def list_servers(reactor, options: argparse.Namespace) -> str:
    http = Http(reactor, options.cafile)
    try:
        server_id, servers = await fleet_servers(http, options.url)
        if not servers:
            return f"{options.url} ({server_id}) lists no other servers.\n"
        return render_servers(await timed(http, servers))
    finally:
        await http.close()


async def chosen_url(reactor, options: argparse.Namespace) -> str:
    """The base URL to test against: URL itself, or the fleet's server ``--server`` chose."""
    http = Http(reactor, options.cafile)
    try:
        url, server = await resolve(http, options.url, options.server)
    finally:
        await http.close()
    if server is not None and not options.json:
        rtt = "" if server.rtt_ms is None else f", {server.rtt_ms:.1f} ms away"
        sys.stderr.write(f"Testing against {server.label} ({server.url}{rtt})\n")
    return url


async def main_async(reactor, options: argparse.Namespace) -> None:
    household = options.mode == "household"
    try:
        if options.rpm:
            result = await measure_rpm(reactor, options.rpm, options.cafile, options.rpm_seconds)
            sys.stdout.write(json.dumps(result, indent=2) + "\n" if options.json else render_rpm(result))
            return
        if options.list_servers:
            sys.stdout.write(await list_servers(reactor, options))
            return
        if options.server:
            options.url = await chosen_url(reactor, options)
        if household:
            body, ceilings = await run_household_mode(reactor, options), {}
        else:
            body, ceilings = await run(reactor, options)
    except Refused as refused:
        retry = f"; retry after {refused.retry_after} s" if refused.retry_after else ""
        _error(f"the server refused to start a test: {refused.reason}{retry}")
        raise SystemExit(EXIT_REFUSED)
    except Exception as problem:  # every failure ends as one line, never a traceback or a grade
        _error(describe_error(problem))
        raise SystemExit(EXIT_FAILED)
    if options.json:
        text = body.decode()
    elif household:
        text = render_household(json.loads(body), options.url)
    else:
        text = render(json.loads(body), options.url, ceilings)
    sys.stdout.write(text)
    sys.stdout.flush()


def _error(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> None:
    options = parse_arguments(argv)
    task.react(lambda reactor: defer.ensureDeferred(main_async(reactor, options)))


if __name__ == "__main__":
    main()
