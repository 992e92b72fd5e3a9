"""The main process's Klein application: the page, test sessions, results, operations."""

from __future__ import annotations

import json
import secrets
import sys
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from klein import Klein
from twisted.logger import Logger
from twisted.web.static import File

from lqos import __version__
from lqos.daemon.config import Config
from lqos.load.admission import query_text
from lqos.load.limits import LoadLimits
from lqos.measure.grading import compute_result
from lqos.measure.household_grading import score_household
from lqos.results import IResultStore, public_view
from lqos.sessions import LimitExceeded, SessionRefused, SessionRegistry, TestSession, load_token
from lqos.telemetry.api import TelemetryApi
from lqos.telemetry.metrics import DaemonMetrics
from lqos.measure.submission import (
    MAX_STREAMS,
    MAX_SUBMISSION_BYTES,
    MIN_STREAMS,
    PROBE_INTERVAL_MS,
    PROBE_TIMEOUT_MS,
    SubmissionError,
    parse_household_submission,
    parse_submission,
)
from lqos.net.clientip import client_ip
from lqos.web.household import HouseholdEndpoints
from lqos.web.responses import json_body, json_error, set_security_headers

MAX_START_BODY_BYTES = 4096

log = Logger()


def default_web_root() -> Path:
    """``web_client/`` of a checkout, else where ``pip install`` put it."""
    checkout = Path(__file__).resolve().parents[2] / "web_client"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "lqos-bufferbloat" / "web_client"


def probe_ping_url(base_url: str, probe_port: int) -> str:
    """The probe's ``/ping`` on the host of *base_url*, on *probe_port*."""
    parts = urlsplit(base_url)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    return f"{parts.scheme}://{host}:{probe_port}/ping"


class MainApp:
    """Routes of the main process; one instance per daemon, no module state."""

    app = Klein()

    def __init__(self, config: Config, supervisor, clock, registry: SessionRegistry,
                 store: IResultStore, web_root: Path | None = None, telemetry: TelemetryApi | None = None,
                 household: HouseholdEndpoints | None = None, telemetry_health=lambda: {"database": "sqlite"}):
        self._config = config
        self._supervisor = supervisor
        self._clock = clock
        self._registry = registry
        self._store = store
        self._started_at = clock.seconds()
        self._web_root_path = web_root or default_web_root()
        self._web_root = File(str(self._web_root_path))
        self._load_limits = LoadLimits()
        self._household = household or HouseholdEndpoints.empty(registry.secret)
        self._telemetry = telemetry or TelemetryApi(config, store, DaemonMetrics())
        self._metrics = self._telemetry.metrics
        self._telemetry_health = telemetry_health

    def client_ip(self, request) -> str:
        return client_ip(request, self._config.trusted_proxies)

    def resource(self):
        return self.app.resource()

    @app.route("/api/sponsor", methods=["GET"])
    def sponsor(self, request) -> bytes:
        return json_body(request, self._config.sponsor())

    @app.route("/api/servers", methods=["GET"])
    def servers(self, request) -> bytes:
        """The fleet's servers a customer may be sent to, and this one's name (docs/PROTOCOL.md)."""
        return json_body(request, {
            "server_id": self._config.server_id,
            "servers": [{"label": server.label, "url": server.url,
                         "ping_url": server.ping_url or probe_ping_url(server.url, self._config.probe_port)}
                        for server in self._config.servers],
        })

    @app.route("/api/schedules", methods=["GET"])
    def schedules(self, request) -> bytes:
        """Every mode's schedules, as a page shows them before a test starts ("in about 40 seconds")."""
        return json_body(request, {
            mode: {name: {"seconds": sum(phase.seconds for phase in phases),
                          "phases": [phase.describe() for phase in phases]}
                   for name, phases in schedules.items()}
            for mode, schedules in self._registry.schedules.items()
        })

    @app.route("/api/health", methods=["GET"])
    def health(self, request) -> bytes:
        """200 when every child is up, 503 otherwise: what a load balancer checks."""
        healthy = self._supervisor.all_running()
        body = {
            "status": "ok" if healthy else "degraded",
            "version": __version__,
            "uptime_seconds": round(self._clock.seconds() - self._started_at, 3),
            "children": self._supervisor.snapshot(),
            "server_id": self._config.server_id,
            "telemetry": self._telemetry_health(),
        }
        return json_body(request, body, 200 if healthy else 503)

    # --- a single-user test: start, submit, share ---

    @app.route("/api/tests", methods=["POST"])
    def start_test(self, request) -> bytes:
        """Open a session: its id, token, schedule, and where to send load and probes."""
        body = request.content.read(MAX_START_BODY_BYTES + 1)
        try:
            options = json.loads(body or b"{}")
        except ValueError:
            return json_error(request, 400, "body is not JSON")
        if len(body) > MAX_START_BODY_BYTES or not isinstance(options, dict):
            return json_error(request, 400, "body must be a small JSON object")
        mode = options.get("mode", "single_user")
        schedule = options.get("schedule", "standard")
        if not isinstance(mode, str) or not isinstance(schedule, str):
            return json_error(request, 400, "mode and schedule must be strings")
        offered = self._registry.schedules
        if mode not in offered:
            return json_error(request, 400, f"mode must be one of {list(offered)}")
        if schedule not in offered[mode]:
            return json_error(request, 400, f"schedule must be one of {sorted(offered[mode])}")
        try:
            session = self._registry.start(self.client_ip(request), mode, schedule)
        except LimitExceeded as limit:
            self._metrics.test_failed(429)
            request.setHeader(b"retry-after", str(limit.retry_after).encode())
            return json_error(request, 429, limit.reason)
        self._metrics.test_started()
        return json_body(request, self._session_description(request, session), 201)

    def _session_description(self, request, session: TestSession) -> dict:
        secure = request.isSecure()
        host = request.getRequestHostname().decode("ascii", "replace")
        host = f"[{host}]" if ":" in host else host
        main = request.getHost().port
        http, ws = ("https", "wss") if secure else ("http", "ws")
        load = f"{host}:{self._config.load_port}"
        signed = f"?test={session.test_id}&until={session.load_until}&token={load_token(self._registry.secret, session)}"
        common = {
            "test_id": session.test_id,
            "token": session.token,
            "mode": session.mode,
            "expires_in_seconds": round(session.expires_at - self._clock.seconds()),
            "phases": [phase.describe() for phase in session.phases],
            "result_url": f"{http}://{host}:{main}/api/tests/{session.test_id}/result",
        }
        if session.mode == "virtual_household":
            return common | {"personas": self._household.session_personas(session, host, ws)}
        return common | {
            "probe_url": f"{ws}://{host}:{self._config.probe_port}/ws/probe",
            "ping_url": f"{http}://{host}:{self._config.probe_port}/ping",
            "download_url": f"{http}://{load}/download{signed}",
            "upload_url": f"{http}://{host}:{self._config.upload_port}/upload{signed}",
            "bulk_ws_url": f"{ws}://{load}/ws/bulk-download{signed}",
            "progress_url": f"{http}://{host}:{main}/api/tests/{session.test_id}/progress?token={session.token}",
            "limits": {
                "probe_interval_ms": PROBE_INTERVAL_MS,
                "probe_timeout_ms": PROBE_TIMEOUT_MS,
                "max_streams": MAX_STREAMS,
                "min_streams": MIN_STREAMS,
                "max_submission_bytes": MAX_SUBMISSION_BYTES,
                "upload_bytes_per_test": self._load_limits.upload_bytes_per_test,
            },
        }

    @app.route("/api/tests/<string:test_id>/result", methods=["POST"])
    async def submit_result(self, request, test_id: str) -> bytes:
        """Validate the raw samples, grade them, store the result, answer it."""
        body = request.content.read(MAX_SUBMISSION_BYTES + 1)
        try:
            session = self._registry.find(test_id)
            if session.mode == "virtual_household":
                submission = parse_household_submission(body, session.duration, self._household.names())
            else:
                submission = parse_submission(body, session.duration)
            self._registry.authorize(test_id, submission.token, self.client_ip(request))
        except SubmissionError as error:
            self._metrics.test_failed(400)
            return json_error(request, 400, str(error))
        except SessionRefused as refused:
            self._metrics.test_failed(refused.status)
            return json_error(request, refused.status, refused.reason)
        session.submitted = True
        record = self._record(request, session, submission)
        answer = public_view(record)
        try:
            await self._store.save(record)
        except Exception:
            # A full disk or a read-only database must not cost the customer the
            # result they just waited for: they get it, marked unstored (its
            # share link will answer 404).
            log.failure("storing the result of test {test_id} failed; answered it unstored",
                        test_id=session.test_id)
            answer["stored"] = False
        self._metrics.test_completed(record)
        return json_body(request, answer)

    def _record(self, request, session: TestSession, submission) -> dict:
        if session.mode == "virtual_household":
            load_seconds = sum(phase.seconds for phase in session.phases if phase.name == "load")
            result = score_household(self._household.personas, submission.personas, load_seconds)
            streams = {}
        else:
            result = compute_result(submission.probes, submission.windows, self._config.grade_thresholds_ms,
                                    lags=submission.lags)
            streams = submission.streams
        return {
            "test_id": session.test_id,
            "server_id": self._config.server_id,
            "share_id": secrets.token_urlsafe(16),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "client_ip": session.client_ip,
            "user_agent": (request.getHeader("user-agent") or "")[:512],
            "mode": session.mode,
            "schedule": session.schedule_name,
            "duration_seconds": session.duration,
            "streams": streams,
            "server_counters": {
                "download_bytes": session.download_bytes,
                "upload_bytes": session.upload_bytes,
            },
            "result": result,
        }

    # --- load: the load workers serve the streams (lqos/load/routes.py) and report the bytes here ---

    @app.route("/api/tests/<string:test_id>/progress", methods=["GET"])
    def progress(self, request, test_id: str) -> bytes:
        """What the server has counted, so the client can time upload by acknowledged bytes.

        ``{"upload_bytes": N, "download_bytes": N}``: the bytes the load
        workers have received and written for the test, at most
        ``lqos.load.worker.REPORT_SECONDS`` old.
        """
        try:
            session = self._registry.authorize(test_id, query_text(request.args, b"token"), self.client_ip(request))
        except SessionRefused as refused:
            return json_error(request, refused.status, refused.reason)
        return json_body(request, {"upload_bytes": session.upload_bytes, "download_bytes": session.download_bytes})

    # --- virtual household: lqos/web/household.py ---

    @app.route("/virtual-household/profiles", methods=["GET"])
    def household_profiles(self, request) -> bytes:
        return json_body(request, self._household.profiles())

    @app.route("/virtual-household/stats", methods=["GET"])
    def household_stats(self, request) -> bytes:
        return json_body(request, self._household.stats())

    @app.route("/virtual-household/health", methods=["GET"])
    def household_health(self, request) -> bytes:
        body, healthy = self._household.health(self._supervisor.snapshot())
        return json_body(request, body, 200 if healthy else 503)

    # --- support and operations: lqos/telemetry/api.py (bearer key, or loopback with no key) ---

    @app.route("/api/telemetry/", branch=True, methods=["GET"])
    def telemetry(self, request):
        return self._telemetry.resource()

    @app.route("/metrics", methods=["GET"])
    def metrics(self, request) -> bytes:
        return self._telemetry.metrics_page(request)

    @app.route("/r/<string:share_id>", methods=["GET"])
    async def shared_result(self, request, share_id: str):
        """The shared result: JSON for API clients, the page for browsers."""
        record = await self._store.by_share_id(share_id[:64])
        wants_json = b"application/json" in (request.getHeader(b"accept") or b"")
        if record is None:
            return json_error(request, 404, "no such result") if wants_json else self._page(request, 404)
        if wants_json:
            return json_body(request, public_view(record))
        return self._page(request, 200)

    def _page(self, request, status: int) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        set_security_headers(request)
        return (self._web_root_path / "index.html").read_bytes()

    @app.route("/", branch=True, methods=["GET", "HEAD"])
    def static(self, request):
        set_security_headers(request)
        return self._web_root
