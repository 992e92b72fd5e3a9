"""The four default personas, with the LibreQoS test's figures (docs/PROTOCOL.md, "Virtual household")."""

from lqos.measure.grading import GradeThresholds
from lqos.personas.model import Persona, PersonaScoring, TrafficPlan

streaming = Persona(
    name="streaming",
    label="Jake, HD streaming",
    icon="🎬",
    description="Plays HD video: a 5 s segment at 5 Mbit/s every 5 s, fetched at 25 Mbit/s.",
    port=8001,
    traffic=TrafficPlan(down_mbps=25.0, up_mbps=0.1, tick_hz=50, burst_seconds=1.0, period_seconds=5.0),
    deadline_ms=2000,
    # A player keeps a buffer, so no single packet's delay reaches the
    # screen: it pauses only when a segment arrives after the buffer ran dry.
    # Each burst is one segment, judged on its arrival (PersonaScoring).  Its
    # latency figures come from two echo-only connections: its own
    # connection's echoes would wait behind its own 25 Mbit/s bursts.
    scoring=PersonaScoring("segments", "video segments", "the picture would have paused"),
    echo_copies=2,
)

gaming = Persona(
    name="gaming",
    label="Alex, competitive gaming",
    icon="🎮",
    description="A game's 60 Hz tick: 1.5 Mbit/s down, 0.75 Mbit/s up in small messages.",
    port=8002,
    traffic=TrafficPlan(down_mbps=1.5, up_mbps=0.75, tick_hz=60),
    deadline_ms=250,
    scoring=PersonaScoring("latency", "game updates", "the game would stutter",
                           latency_thresholds=GradeThresholds(5, 15, 30, 60, 100), max_loss_percent=1.0),
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
    scoring=PersonaScoring("latency", "call packets", "the picture would freeze or the voice break up",
                           latency_thresholds=GradeThresholds(10, 30, 60, 150, 300), max_loss_percent=2.0),
    # A call's media runs over UDP (RTP) like a game's: its echoes travel as
    # copies on connections of their own, as gaming's do.
    echo_copies=3,
)

updates = Persona(
    name="updates",
    label="Computer, system updates",
    icon="💾",
    description="Downloads updates as fast as the line allows, 2 Mbit/s up.",
    port=8004,
    traffic=TrafficPlan(down_mbps=None, up_mbps=2.0, tick_hz=20),
    deadline_ms=2000,
    # A background download has no deadline: it is shown with its share of
    # the line, and a slow one is not what makes a household call its ISP.
    scoring=PersonaScoring("share", "updates", "they would take longer", sets_household_grade=False,
                           rate_limited=False, throughput_target_mbps=50.0),
)
