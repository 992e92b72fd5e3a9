"""``twistd lqos-bufferbloat``: command-line options and the service they make."""

from __future__ import annotations

import os

from twisted.logger import Logger
from twisted.python import usage

from lqos.daemon.config import ConfigError, load_config
from lqos.daemon.endpoints import TLSFilesError, check_tls_files
from lqos.daemon.service import make_service

DEFAULT_CONFIG_PATH = "/etc/lqos_test.conf"

log = Logger()


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Serve the lqos-bufferbloat test page, its API and its child processes "
        "(latency probe and household personas). Settings come from the config file; "
        "options given here override it."
    )
    optParameters = [
        ["config", "c", None, f"Config file of key=value lines [default: {DEFAULT_CONFIG_PATH} when it exists]"],
        ["port", "p", None, "Main endpoint (Twisted endpoint string or port number) [default: tcp:8000]"],
        ["tls-cert", None, None, "PEM certificate (with chain); with --tls-key every port speaks TLS"],
        ["tls-key", None, None, "PEM private key of --tls-cert"],
        ["data-dir", "d", None, "Directory for the database and server secret [default: ./var]"],
        ["listen-address", None, None, "Address the child ports bind to [default: all]"],
        ["probe-port", None, None, "Latency probe port [default: 8005]"],
        ["streaming-port", None, None, "HD streaming persona port [default: 8001]"],
        ["gaming-port", None, None, "Gaming persona port [default: 8002]"],
        ["video-port", None, None, "Video call persona port [default: 8003]"],
        ["updates-port", None, None, "System updates persona port [default: 8004]"],
        ["load-port", None, None, "Port of the bulk load workers [default: 8006]"],
        ["upload-port", None, None, "Second port of the bulk load workers, for uploads [default: 8007]"],
        ["nq-port", None, None, "networkQuality port, HTTP/2 over TLS; 0: off [default: 8443]"],
    ]

    def postOptions(self) -> None:
        path = self["config"]
        if path is None and os.path.exists(DEFAULT_CONFIG_PATH):
            path = DEFAULT_CONFIG_PATH
        overrides = {
            name.replace("-", "_"): value
            for name, value in self.items()
            if value is not None and name != "config"
        }
        try:
            self.config, self.warnings = load_config(path, overrides)
            check_tls_files(self.config.tls_cert, self.config.tls_key)
            os.makedirs(self.config.data_dir, exist_ok=True)
        except (ConfigError, TLSFilesError) as error:
            raise usage.UsageError(str(error)) from None
        except OSError as error:
            raise usage.UsageError(
                f"cannot create data directory {self.config.data_dir}: {error.strerror}"
            ) from None
        self.config_path = path


def makeService(options: Options):
    from twisted.internet import reactor

    log.info("configuration from {path}", path=options.config_path or "defaults")
    for warning in options.warnings:
        log.warn("{warning}", warning=warning)
    return make_service(options.config, reactor)
