"""Two servers of one fleet on loopback, "near" and "far": each lists both, and far's probe is
reached through a :class:`DelayProxy` that adds a round trip."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from daemon import CHILD_ROLES, Daemon, free_ports, start_daemon
from delay_proxy import DelayProxy

# Far enough that a busy machine's hiccups cannot swap the two.  (In one `make test` the page stayed on
# the far server, then 40 ms farther, past a 15 s wait; the cause was not found: under four busy loops
# on this machine the test passed three times in three.)
FAR_EXTRA_MS = 200


@dataclass
class FleetPair:
    near: Daemon
    far: Daemon
    proxy: DelayProxy

    def stop(self) -> None:
        self.near.stop()
        self.far.stop()
        self.proxy.close()


def start_fleet_pair(tmp_path: Path, config_text: str = "") -> FleetPair:
    near_ports, far_ports = free_ports(1 + len(CHILD_ROLES)), free_ports(1 + len(CHILD_ROLES))
    probe = 1 + CHILD_ROLES.index("probe")
    proxy = DelayProxy(("127.0.0.1", far_ports[probe]), FAR_EXTRA_MS)
    servers = tmp_path / "servers.json"
    servers.write_text(json.dumps([
        {"label": "Far", "url": f"http://127.0.0.1:{far_ports[0]}", "ping_url": f"http://127.0.0.1:{proxy.port}/ping"},
        {"label": "Near", "url": f"http://127.0.0.1:{near_ports[0]}",
         "ping_url": f"http://127.0.0.1:{near_ports[probe]}/ping"},
    ]))
    daemons = {}
    try:
        for name, ports in (("near", near_ports), ("far", far_ports)):
            daemons[name] = start_daemon(tmp_path / name, f"server_id={name}\nservers_file={servers}\n{config_text}",
                                         ports=ports)
    except Exception:
        for daemon in daemons.values():
            daemon.stop()
        proxy.close()
        raise
    return FleetPair(daemons["near"], daemons["far"], proxy)
