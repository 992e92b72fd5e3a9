# make run   - create .venv, install, serve http://localhost:8000 with data under ./var
# make test  - install what the tests need (Chromium from Debian included) and run the suite
# make deb   - build dist/lqos-bufferbloat_VERSION_ARCH.deb (installs missing build dependencies with apt-get)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install system-packages clean web-vendor accuracy deb

$(STAMP): setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# compat mode puts the checkout on sys.path, which is how twistd finds twisted/plugins/.
	$(BIN)/python -m pip install --quiet --editable '.[test]' --config-settings editable_mode=compat
	touch $@

# The browser test's front-end libraries (uPlot) come from npm and are served from web_client/vendor/.
VENDOR := web_client/vendor
VENDOR_FILES := $(VENDOR)/uPlot.esm.js $(VENDOR)/uPlot.min.css

node_modules/.package-lock.json: package.json package-lock.json
	@command -v npm >/dev/null || { apt-get update && apt-get install -y --no-install-recommends npm; }
	npm ci --no-audit --no-fund
	touch $@

$(VENDOR_FILES) &: node_modules/.package-lock.json
	mkdir -p $(VENDOR)
	cp node_modules/uplot/dist/uPlot.esm.js node_modules/uplot/dist/uPlot.min.css node_modules/uplot/LICENSE $(VENDOR)/

web-vendor: $(VENDOR_FILES)

install: $(STAMP) web-vendor

run: install
	mkdir -p var
	$(BIN)/twistd --nodaemon --pidfile= lqos-bufferbloat --port tcp:8000 --data-dir var

# Debian packages the tests drive: the browsers, Chromium and Firefox ESR (and an emoji font for the persona
# icons in screenshots), PostgreSQL's server (the fleet's tests start throwaway ones, tests/postgres.py),
# ping, iperf3, irtt (UDP round trips at a game's rate) and gcc (the delay line) for the accuracy testbed,
# and nghttp2's h2load and nghttpd, a real HTTP/2 client and a second networkQuality server (tests/integration/test_nq.py).
# A glob in SYSTEM_TOOLS is expanded by the shell: any installed major version of PostgreSQL will do.
SYSTEM_TOOLS := /usr/bin/chromium /usr/bin/firefox-esr /usr/bin/ping /usr/bin/iperf3 /usr/bin/irtt /usr/bin/gcc /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf /usr/lib/postgresql/*/bin/initdb /usr/bin/h2load /usr/sbin/nghttpd
SYSTEM_PACKAGES := chromium firefox-esr iputils-ping iperf3 irtt gcc libc6-dev fonts-noto-color-emoji postgresql nghttp2-client nghttp2-server

system-packages:
	@for tool in $(SYSTEM_TOOLS); do test -e $$tool || missing=1; done; \
	if [ -n "$$missing" ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(SYSTEM_PACKAGES); \
	fi

# The page's own logic in Node (tests/web/), then the suite in three parts, each run whatever the one before
# did; any failing fails the target.
#   1. Most tests wait on daemons, browsers and child processes: they run side by side (pytest-xdist; a
#      module's tests share one worker, where its module-scoped daemon lives; the longest modules go first,
#      tests/conftest.py).
#   2. The testbed's links below 100 Mbit/s (marker `testbed`, which only tests/testbed/ sets: its workers
#      collect nothing else) hold each client to ping and iperf3: four beds at once, a free worker taking the next
#      (tests/testbed/test_accuracy.py says why that holds), none beside part 1, whose loopback loads keep
#      both cores busy.
#   3. Tests marked `alone` (a gigabit link, Firefox graded on loopback, the household graded on Chromium's
#      own timing on an emulated link) need the cores to themselves.
TEST_WORKERS ?= 4
PYTEST := $(BIN)/python -m pytest

test: install system-packages
	status=0; \
	node --test tests/web/ || status=1; \
	$(PYTEST) -m "not testbed and not alone" --numprocesses $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder \
		|| status=1; \
	$(PYTEST) tests/testbed -m "testbed and not alone" --numprocesses 4 --dist worksteal || status=1; \
	$(PYTEST) -m alone || status=1; \
	exit $$status

# dpkg-buildpackage writes next to the checkout; the results are moved to dist/.
deb: web-vendor
	@command -v dpkg-checkbuilddeps >/dev/null && dpkg-checkbuilddeps 2>/dev/null || { \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get build-dep -y --no-install-recommends ./; }
	dpkg-buildpackage -us -uc -b --post-clean
	mkdir -p dist
	version=$$(dpkg-parsechangelog -SVersion); arch=$$(dpkg-architecture -qDEB_HOST_ARCH); \
	mv ../lqos-bufferbloat_$${version}_$${arch}.deb ../lqos-bufferbloat_$${version}_$${arch}.buildinfo \
		../lqos-bufferbloat_$${version}_$${arch}.changes dist/ && ls -l dist/lqos-bufferbloat_$${version}_$${arch}.deb

# The accuracy matrix on emulated links (network namespaces; needs root): prints the table.
accuracy: install system-packages
	$(BIN)/python tests/testbed/accuracy.py --schedule standard

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis twisted/plugins/dropin.cache
	rm -rf node_modules $(VENDOR)
