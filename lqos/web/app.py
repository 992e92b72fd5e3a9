"""The main process's Klein application: the page, ``/api/sponsor``, ``/api/health``."""

from __future__ import annotations

import sys
from pathlib import Path

from klein import Klein
from twisted.web.static import File

from lqos import __version__
from lqos.config import Config
from lqos.web.responses import json_body, set_security_headers


def default_web_root() -> Path:
    """``web_client/`` of a checkout, else where ``pip install`` put it."""
    checkout = Path(__file__).resolve().parents[2] / "web_client"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "lqos-bufferbloat" / "web_client"


class MainApp:
    """Routes of the main process; one instance per daemon, no module state."""

    app = Klein()

    def __init__(self, config: Config, supervisor, clock, web_root: Path | None = None):
        self._config = config
        self._supervisor = supervisor
        self._clock = clock
        self._started_at = clock.seconds()
        self._web_root = File(str(web_root or default_web_root()))

    def resource(self):
        return self.app.resource()

    @app.route("/api/sponsor", methods=["GET"])
    def sponsor(self, request) -> bytes:
        return json_body(request, self._config.sponsor())

    @app.route("/api/health", methods=["GET"])
    def health(self, request) -> bytes:
        """200 when every child is up, 503 otherwise: what a load balancer checks."""
        healthy = self._supervisor.all_running()
        body = {
            "status": "ok" if healthy else "degraded",
            "version": __version__,
            "uptime_seconds": round(self._clock.seconds() - self._started_at, 3),
            "children": self._supervisor.snapshot(),
        }
        return json_body(request, body, 200 if healthy else 503)

    @app.route("/", branch=True, methods=["GET", "HEAD"])
    def static(self, request):
        set_security_headers(request)
        return self._web_root
