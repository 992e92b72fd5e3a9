"""Result submissions: what is accepted and what is refused, with the reason."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lqos.measure.submission import MAX_SUBMISSION_BYTES, SubmissionError, parse_submission

DURATION = 15.0


def body(**overrides) -> bytes:
    document = {
        "token": "t" * 43,
        "probes": [[0, "baseline", 0, 10.5], [1, "download", 2100.0, None]],
        "throughput": [["download", 2000, "down", 125000]],
        "streams": {"download": 4, "upload": 2},
    }
    document.update(overrides)
    return json.dumps(document).encode()


def test_well_formed_submission():
    submission = parse_submission(body(), DURATION)
    assert submission.token == "t" * 43
    assert [p.rtt_ms for p in submission.probes] == [10.5, None]
    assert submission.windows[0].bytes == 125000
    assert submission.streams == {"download": 4, "upload": 2}


def test_a_probe_row_may_carry_the_servers_timing_and_older_rows_still_read():
    probes = [[0, "baseline", 0, 10.5, 1.25], [1, "baseline", 100, 11.0, None], [2, "download", 2100.0, 30.0]]
    submission = parse_submission(body(probes=probes), DURATION)
    assert [(p.rtt_ms, p.server_rtt_ms) for p in submission.probes] == [(10.5, 1.25), (11.0, None), (30.0, None)]
    assert [p.graded_rtt_ms for p in submission.probes] == [1.25, 11.0, 30.0]


def test_a_probe_row_may_carry_the_kernels_acknowledgement_timing():
    probes = [[0, "baseline", 0, 10.5, 1.25, 0.5], [1, "baseline", 100, 11.0, 1.5, None]]
    submission = parse_submission(body(probes=probes), DURATION)
    assert [p.ack_rtt_ms for p in submission.probes] == [0.5, None]


def test_an_echo_the_client_read_too_late_counts_at_the_servers_timing():
    """The server's Pong came back, so the echo had reached the device: not lost, graded at 4 ms."""
    probes = [[0, "baseline", 0, None, 4.0], [1, "baseline", 100, None, None]]
    submission = parse_submission(body(probes=probes), DURATION)
    assert [(p.graded_rtt_ms, p.lost) for p in submission.probes] == [(4.0, False), (None, True)]


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"not json", "not JSON"),
        (b"[]", "JSON object"),
        (body(token=""), "token missing"),
        (body(probes="x"), "probes must be a list"),
        (body(probes=[[0, "baseline", 0]]), "must be [seq, phase, sent_ms, rtt_ms, server_rtt_ms, ack_rtt_ms]"),
        (body(probes=[[0, "nap", 0, 1]]), "unknown phase"),
        (body(probes=[[0, "baseline", 0, 1], [0, "baseline", 1, 1]]), "appears twice"),
        (body(probes=[[0, "baseline", 0, 2500]]), "rtt_ms 2500 is outside"),
        (body(probes=[[0, "baseline", 0, -1]]), "rtt_ms -1 is outside"),
        (body(probes=[[0, "baseline", 0, 10, 2500]]), "server_rtt_ms 2500 is outside"),
        (body(probes=[[0, "baseline", 0, 10, 4.0, -1]]), "ack_rtt_ms -1 is outside"),
        (body(probes=[[0, "baseline", 0, 10, 4.0, 1, 1]]), "must be [seq, phase, sent_ms, rtt_ms, server_rtt_ms, ack_rtt_ms]"),
        (body(probes=[[0, "baseline", 1e9, 1]]), "sent_ms"),
        (body(probes=[[True, "baseline", 0, 1]]), "seq must be a whole number"),
        (body(probes=[[i, "baseline", 0, 1] for i in range(400)]), "at most"),
        (body(throughput=[["download", 0, "sideways", 1]]), "direction"),
        (body(throughput=[["download", 0, "down", 10**12]]), "bytes must be"),
        (body(streams={"download": 99}), "streams.download"),
        (b"x" * (MAX_SUBMISSION_BYTES + 1), "larger than"),
    ],
)
def test_bad_submissions_are_refused_with_a_reason(raw, reason):
    with pytest.raises(SubmissionError, match=None) as raised:
        parse_submission(raw, DURATION)
    assert reason in str(raised.value)


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_escape_as_another_error(raw):
    try:
        parse_submission(raw, DURATION)
    except SubmissionError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


@given(probes=json_values, throughput=json_values, streams=json_values)
def test_arbitrary_json_never_escapes_as_another_error(probes, throughput, streams):
    try:
        parse_submission(body(probes=probes, throughput=throughput, streams=streams), DURATION)
    except SubmissionError:
        pass


def test_a_household_ping_row_may_carry_the_servers_timing_and_a_row_of_four_still_reads():
    from lqos.measure.submission import parse_household_submission

    member = {"pings": [[0, "baseline", 0, 10.5, 9.75], [1, "load", 2100, 30.0], [2, "load", 2200, None, None],
                        [3, "load", 2300, None, 4.0]]}  # read too late by the client, timed by the server
    parsed = parse_household_submission(json.dumps({"token": "t", "personas": {"gaming": member}}).encode(),
                                        10, ("gaming",))
    assert parsed.personas["gaming"].pings == ((0, "baseline", 0, 10.5, 9.75), (1, "load", 2100, 30.0, None),
                                               (2, "load", 2200, None, None), (3, "load", 2300, None, 4.0))
