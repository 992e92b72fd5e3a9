"""The four default personas, with the LibreQoS test's figures (DESIGN section 5)."""

from lqos.grading import GradeThresholds
from lqos.personas.model import Persona, PersonaScoring, TrafficPlan

streaming = Persona(
    name="streaming",
    label="Jake, HD streaming",
    icon="🎬",
    description="Fills a video buffer: 25 Mbit/s for 1 s every 5 s (5 Mbit/s on average).",
    port=8001,
    traffic=TrafficPlan(down_mbps=25.0, up_mbps=0.1, tick_hz=50, burst_seconds=1.0, period_seconds=5.0),
    deadline_ms=2000,
    scoring=PersonaScoring(
        latency_thresholds=GradeThresholds(20, 60, 120, 300, 600),
        max_loss_percent=5.0,
        burst_thresholds_s=(1.5, 2.0, 3.0, 4.0, 5.0),
    ),
)

gaming = Persona(
    name="gaming",
    label="Alex, competitive gaming",
    icon="🎮",
    description="A game's 60 Hz tick: 1.5 Mbit/s down, 0.75 Mbit/s up in small messages.",
    port=8002,
    traffic=TrafficPlan(down_mbps=1.5, up_mbps=0.75, tick_hz=60),
    deadline_ms=250,
    scoring=PersonaScoring(latency_thresholds=GradeThresholds(5, 15, 30, 60, 100), max_loss_percent=1.0),
    # A game runs on UDP, where a dropped packet is lost, not a delay for the
    # packets after it: each echo goes as three copies a tick apart, on
    # connections of their own, and the first back counts (Persona's docstring).
    echo_copies=3,
)

video_call = Persona(
    name="video",
    label="Sarah, video conference",
    icon="📹",
    description="A video call at 30 frames/s: 2.5 Mbit/s each way.",
    port=8003,
    traffic=TrafficPlan(down_mbps=2.5, up_mbps=2.5, tick_hz=30),
    deadline_ms=500,
    scoring=PersonaScoring(latency_thresholds=GradeThresholds(10, 30, 60, 150, 300), max_loss_percent=2.0),
)

updates = Persona(
    name="updates",
    label="Computer, system updates",
    icon="💾",
    description="Downloads updates as fast as the line allows, 2 Mbit/s up.",
    port=8004,
    traffic=TrafficPlan(down_mbps=None, up_mbps=2.0, tick_hz=20),
    deadline_ms=2000,
    scoring=PersonaScoring(latency_thresholds=None, latency_sensitive=False, rate_limited=False,
                           throughput_target_mbps=50.0),
)
