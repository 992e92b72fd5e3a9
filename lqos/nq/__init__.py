"""The draft's responsiveness endpoints (networkQuality, goresponsiveness) over HTTP/2 on ``nq_port``."""
