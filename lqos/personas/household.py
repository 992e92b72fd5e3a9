"""The household as the main process sees it: which personas, on which ports, how busy."""

from __future__ import annotations

from dataclasses import dataclass, field

from lqos.daemon.config import Config, child_ports
from lqos.personas.model import IPersona


@dataclass
class Household:
    """The installed personas with their configured ports, and their processes' latest stats."""

    personas: dict[str, IPersona]
    ports: dict[str, int]
    _stats: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config, personas: dict[str, IPersona]) -> "Household":
        configured = child_ports(config)
        ports = {name: configured.get(name, persona.port) for name, persona in personas.items()}
        return cls(personas, ports)

    def record_stats(self, role: str, message: dict) -> None:
        """Called with each persona process's once-a-second report."""
        if role in self.personas and message.get("event") == "stats":
            self._stats[role] = {key: message.get(key, 0) for key in ("sessions", "down_bytes", "up_bytes")}

    def profiles(self) -> list[dict]:
        return [dict(persona.profile(), port=self.ports[name]) for name, persona in self.personas.items()]

    def stats(self) -> dict:
        return {name: self._stats.get(name, {"sessions": 0, "down_bytes": 0, "up_bytes": 0})
                for name in self.personas}
