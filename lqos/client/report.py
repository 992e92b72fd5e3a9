"""The server's result as a summary a customer reads in a terminal.

Only shows what the server computed (``lqos.measure.grading``): nothing is graded here.
"""

from __future__ import annotations

LOADED_PHASES = ("download", "upload", "bidirectional")
PHASE_DIRECTIONS = {"download": ("download",), "upload": ("upload",), "bidirectional": ("download", "upload")}
DIRECTION_KEYS = {"download": "down", "upload": "up"}
USE_CASE_NAMES = {"streaming": "streaming", "gaming": "gaming", "video_calls": "video calls"}
COLUMNS = ("{:<14}", "{:<11}", "{:>10}", "{:>9}", "{:>9}", "  {:<22}", "{:<22}", "{}")
HEADINGS = ("phase", "grade", "increase", "p50", "p95", "download", "upload", "probes answered")


def ms(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f} ms" if signed else f"{value:.2f} ms"


def rate(mbps: float | None) -> str:
    if mbps is None:
        return "-"
    return f"{mbps / 1000:.2f} Gbit/s" if mbps >= 1000 else f"{mbps:.1f} Mbit/s"


def throughput(phase: dict, direction: str, ceilings: dict[str, float]) -> str:
    figure = phase["throughput_mbps"][direction]
    if not figure["windows"]:
        return "-"
    ceiling = ceilings.get(DIRECTION_KEYS[direction])
    mark = "*" if ceiling and figure["median"] is not None and figure["median"] >= 0.98 * ceiling else ""
    return f"{rate(figure['median'])}{mark} ({figure['windows']} win)"


def phase_row(name: str, phase: dict, ceilings: dict[str, float]) -> list[str]:
    grade = phase["grade"] if phase["reliable"] and phase["grade"] else "unreliable"
    directions = PHASE_DIRECTIONS[name]
    return [
        name, grade, ms(phase["latency_increase_ms"], signed=True), ms(phase["p50_ms"]), ms(phase["p95_ms"]),
        throughput(phase, "download", ceilings) if "download" in directions else "-",
        throughput(phase, "upload", ceilings) if "upload" in directions else "-",
        f"{phase['samples']}/{phase['sent']}, loss {phase['loss_percent'] or 0:.1f}%",
    ]


def table(rows: list[list[str]]) -> list[str]:
    return ["  " + "".join(column.format(cell) for column, cell in zip(COLUMNS, row)).rstrip() for row in rows]


def headline(result: dict) -> str:
    overall = result["overall"]
    if overall["grade"] is None:
        return f"Bufferbloat Grade: none (unreliable: {overall['reason']})"
    return f"Bufferbloat Grade: {overall['grade']}  (set by the {overall['phase']} phase)"


def baseline_line(baseline: dict) -> str:
    line = (f"Idle latency (baseline): {ms(baseline['median_ms'])} median, jitter {ms(baseline['jitter_ms'])}, "
            f"{baseline['samples']} of {baseline['sent']} probes answered")
    return line if baseline["reliable"] else f"{line}  [unreliable: {baseline['reason']}]"


def use_cases_line(use_cases: dict) -> str:
    ratings = use_cases["ratings"]
    words = [f"{label} {ratings[key]['rating'] if ratings.get(key) else 'not rated'}"
             for key, label in USE_CASE_NAMES.items() if key in ratings]
    return "Use cases: " + ", ".join(words)


def unreliable_notes(result: dict) -> list[str]:
    return [f"  {name}: unreliable, {phase['reason']}"
            for name, phase in result["phases"].items() if not phase["reliable"] and phase["reason"]]


def caveat_notes(result: dict) -> list[str]:
    """The server's sentences for where this client could not keep up (phases, household members)."""
    return [f"  ! {text}" for text in result["overall"].get("caveats", [])]


def ceiling_note(rows: list[list[str]], ceilings: dict[str, float]) -> list[str]:
    reached = [(label, key) for column, label, key in ((5, "download", "down"), (6, "upload", "up"))
               if any("*" in row[column] for row in rows)]
    if not reached:
        return []
    limits = ", ".join(f"{label} {rate(ceilings[key])}" for label, key in reached)
    return [f"  * at this client's ceiling ({limits}): the link may well be faster"]


def render(record: dict, base_url: str, ceilings: dict[str, float] | None = None) -> str:
    """The readable summary of a stored result record (``public_view``); *ceilings*
    (Mbit/s by ``down``/``up``) mark throughput the client's pacing held back."""
    result = record["result"]
    phases = result["phases"]
    ceilings = ceilings or {}
    lines = [headline(result), baseline_line(result["baseline"]), ""]
    rows = [phase_row(name, phases[name], ceilings) for name in LOADED_PHASES if name in phases]
    lines += table([list(HEADINGS)] + rows)
    lines += ceiling_note(rows, ceilings) + unreliable_notes(result) + caveat_notes(result)
    lines += ["", use_cases_line(result["use_cases"])]
    streams = record.get("streams") or {}
    lines.append(f"Streams: {streams.get('download', 0)} download, {streams.get('upload', 0)} upload "
                 f"(the warm-ups' count, at least the server's minimum)")
    return "\n".join(lines + provenance_lines(record, base_url)) + "\n"


def provenance_lines(record: dict, base_url: str) -> list[str]:
    """Which server ran the test, and its share link there."""
    lines = []
    if record.get("server_id"):
        lines.append(f"Server: {record['server_id']} ({base_url})")
    if record.get("share_id"):
        lines.append(f"Share: {base_url}/r/{record['share_id']}")
    return lines
