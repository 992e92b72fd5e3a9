"""The command-line client: the browser's tests, from a terminal.

- ``cli``: ``lqos-bufferbloat-test``, its arguments and its exit codes;
- ``schedule``: the phases the server handed out, on the test clock;
- ``windows``: 250 ms throughput windows and the warm-up rule (pure logic);
- ``probe``: the latency probe (WebSocket echo), its log of every probe;
- ``prober``: the probe in a child process (``python -m lqos.client.prober``),
  so latency is never measured through the event loop that moves bulk data;
- ``load``: download and upload streams, the server's upload counter;
- ``http``: JSON requests with bounded timeouts, plain or TLS;
- ``runner``: one whole test, phase by phase, and the submission;
- ``report``: the server's result as a readable summary;
- ``household``, ``household_report``: the virtual household, its members' connections and its summary.
"""
