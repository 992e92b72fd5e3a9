"""An RPM client of the IETF responsiveness draft: ``lqos-bufferbloat-test --rpm URL``."""
