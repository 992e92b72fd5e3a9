"""A household result (``lqos.measure.household_grading``) as a summary for a terminal.

Only shows what the server computed: nothing is graded here.
"""

from __future__ import annotations

from lqos.client.report import caveat_notes, ms, provenance_lines, rate

HEADINGS = ("persona", "grade", "p50 incr", "p95 incr", "loss", "delivered / target", "video segments")
RIGHT_ALIGNED = {2, 3, 4}


def headline(result: dict) -> str:
    overall = result["overall"]
    if overall["grade"] is None:
        return f"Household Grade: none ({overall['reason']})"
    return f"Household Grade: {overall['grade']}  (set by {overall['reason']})"


def fairness_line(fairness: dict) -> str:
    index = fairness["jain_index"]
    figure = "-" if index is None else f"{index:.2f}"
    return (f"Network fairness (Jain's index, 1 = every rate-limited persona got its share): "
            f"{figure} over {fairness['personas']} personas")


def delivered(throughput: dict) -> str:
    target = throughput["target_down_mbps"]
    got = throughput["down_median_mbps"]
    target_text = "-" if target is None else rate(target)
    return f"{rate(got)} / {target_text}" if got is not None else f"- / {target_text}"


def segments(figures: dict | None) -> str:
    if figures is None or not figures["count"]:
        return ""
    if figures["late"]:
        return f"{figures['late']} of {figures['count']} late"
    return (f"{figures['count']} of {figures['count']} on time, slowest "
            f"{figures['slowest_on_time_s']:.1f} of {figures['segment_seconds']:g} s")


def loss(latency: dict) -> str:
    value = latency["loss_percent"]
    return "-" if value is None else f"{value:.1f}%"


def persona_row(score: dict) -> list[str]:
    latency = score["latency"]
    if score["interrupted"]:
        grade = "interrupted"
    else:
        grade = score["grade"] or "none"
    # A member judged on its share echoes on its own bulk connection: those
    # figures time its own queue, not the line, and are not shown.
    echoes_on_clean_connections = score["judged_on"] != "share"
    return [
        score["name"], grade,
        ms(latency["increase_p50_ms"], signed=True) if echoes_on_clean_connections else "-",
        ms(latency["increase_p95_ms"], signed=True) if echoes_on_clean_connections else "-",
        loss(latency) if echoes_on_clean_connections else "-",
        delivered(score["throughput"]),
        segments(score["segments"]),
    ]


def table(rows: list[list[str]]) -> list[str]:
    """Columns as wide as their widest cell (persona names come from plugins)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADINGS))]
    return ["  " + "  ".join(cell.rjust(width) if i in RIGHT_ALIGNED else cell.ljust(width)
                             for i, (cell, width) in enumerate(zip(row, widths))).rstrip()
            for row in rows]


def explanation(score: dict) -> str:
    """``  gaming (Alex, competitive gaming): Game updates arrived up to 180 ms later ...``"""
    sentence = score["reason"].removeprefix(score["name"] + ": ")
    return f"  {score['name']} ({score['label']}): {sentence[:1].upper()}{sentence[1:]}."


def render_household(record: dict, base_url: str) -> str:
    """The readable summary of a stored household record (``public_view``)."""
    result = record["result"]
    personas = result["personas"]
    lines = [headline(result), fairness_line(result["fairness"]), ""]
    lines += table([list(HEADINGS)] + [persona_row(score) for score in personas.values()])
    lines.append("")
    lines += [explanation(score) for score in personas.values()]
    lines += caveat_notes(result)
    if result["interrupted"]:
        lines.append(f"Interrupted (not graded): {', '.join(result['interrupted'])}")
    return "\n".join(lines + provenance_lines(record, base_url)) + "\n"
