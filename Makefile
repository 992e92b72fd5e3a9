# make run   - create .venv, install, serve http://localhost:8000 with data under ./var
# make test  - install what the tests need (Chromium from Debian included) and run the suite

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install chromium clean

$(STAMP): setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# compat mode puts the checkout on sys.path, which is how twistd finds twisted/plugins/.
	$(BIN)/python -m pip install --quiet --editable '.[test]' --config-settings editable_mode=compat
	touch $@

install: $(STAMP)

run: install
	mkdir -p var
	$(BIN)/twistd --nodaemon --pidfile= lqos-bufferbloat --port tcp:8000 --data-dir var

chromium:
	@test -x /usr/bin/chromium || { apt-get update && apt-get install -y --no-install-recommends chromium; }

test: install chromium
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis twisted/plugins/dropin.cache
