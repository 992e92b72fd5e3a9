"""What every port of the server shares, whichever process serves it.

Socket options (``sockets``), connection bounds (``connections``), the
refusal and its JSON answer (``refusal``), WebSocket bounds
(``websocket``), token-bucket rate limits (``ratelimit``) and who the
client is behind a trusted proxy (``clientip``).
"""
