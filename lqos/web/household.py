"""The main process's side of the virtual household: profiles, stats, health, URLs."""

from __future__ import annotations

from lqos.personas.household import Household
from lqos.sessions import TestSession, persona_token


class HouseholdEndpoints:
    """What the household routes answer; the personas themselves run in child processes."""

    def __init__(self, household: Household, secret: bytes):
        self._household = household
        self._secret = secret

    @classmethod
    def empty(cls, secret: bytes) -> "HouseholdEndpoints":
        return cls(Household({}, {}), secret)

    @property
    def personas(self):
        return self._household.personas

    def names(self) -> tuple[str, ...]:
        return tuple(self._household.personas)

    def profiles(self) -> dict:
        return {"personas": self._household.profiles()}

    def stats(self) -> dict:
        return {"personas": self._household.stats()}

    def health(self, children: list[dict]) -> tuple[dict, bool]:
        states = {child["role"]: child for child in children if child["role"] in self._household.personas}
        healthy = all(child["state"] == "running" for child in states.values())
        return {"status": "ok" if healthy else "degraded", "personas": list(states.values())}, healthy

    def session_personas(self, session: TestSession, host: str, ws_scheme: str) -> list[dict]:
        """Each persona's profile and the URL this session's connection opens."""
        expires = int(session.expires_at)
        token = persona_token(self._secret, session.test_id, expires)
        query = f"?test={session.test_id}&expires={expires}&token={token}"
        return [
            dict(profile, url=f"{ws_scheme}://{host}:{profile['port']}/ws/virtual-household/{session.test_id}{query}")
            for profile in self._household.profiles()
        ]
