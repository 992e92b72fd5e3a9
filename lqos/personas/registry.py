"""Finding the personas: every ``IPersona`` in the ``lqos.plugins`` package."""

from __future__ import annotations

import re

from twisted.plugin import getPlugins

from lqos.personas.model import IPersona

_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")


class PersonaError(ValueError):
    """Two personas clash, or one is malformed; the message names them."""


def discover_personas() -> dict[str, IPersona]:
    """Every installed persona by name, ordered by port; clashes are an error."""
    import lqos.plugins

    personas: dict[str, IPersona] = {}
    ports: dict[int, str] = {}
    for persona in sorted(getPlugins(IPersona, lqos.plugins), key=lambda p: (p.port, p.name)):
        if not _NAME.match(persona.name):
            raise PersonaError(f"persona name {persona.name!r} must be lowercase letters, digits, _")
        if persona.name in personas:
            raise PersonaError(f"two personas are named {persona.name!r}")
        if persona.port in ports:
            raise PersonaError(f"personas {ports[persona.port]!r} and {persona.name!r} both use port {persona.port}")
        personas[persona.name] = persona
        ports[persona.port] = persona.name
    return personas
