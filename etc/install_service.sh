#!/bin/sh
# Install lqos-bufferbloat from this checkout as a system service, laid out the
# way the .deb lays it out:
#   /opt/venvs/lqos-bufferbloat      the daemon and its Python dependencies (a venv of
#                                    Debian's python3, dependencies pinned by debian/requirements.txt)
#   user lqos-bufferbloat            a system user with no login
#   /var/lib/lqos-bufferbloat        its data (0750)
#   /etc/lqos_test.conf              from etc/lqos_test.conf.example (kept if it exists)
#   /etc/systemd/system/lqos-bufferbloat.service
#
# Usage: etc/install_service.sh [--no-start]       install, or upgrade to this checkout
#        etc/install_service.sh --uninstall [--purge]
#   --no-start   do not (re)start the service
#   --purge      with --uninstall: also remove the config, the data and the certificates
# Run as root. Without a running systemd it says how to start the daemon by hand.
set -eu

PACKAGE=lqos-bufferbloat
VENV=/opt/venvs/$PACKAGE
DATA_DIR=/var/lib/$PACKAGE
CONF=/etc/lqos_test.conf
UNIT=/etc/systemd/system/$PACKAGE.service
PYTHON=${PYTHON:-/usr/bin/python3}
SRC=$(cd "$(dirname "$0")/.." && pwd)

start=yes
action=install
purge=no
for arg in "$@"; do
    case "$arg" in
        --no-start) start=no ;;
        --uninstall) action=uninstall ;;
        --purge) purge=yes ;;
        *) sed -n '11,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done

step() { echo "==> $*"; }
have_systemd() { [ -d /run/systemd/system ]; }

if [ "$(id -u)" != 0 ]; then
    echo "error: run as root" >&2
    exit 1
fi
if dpkg-query -W -f '${Status}' "$PACKAGE" 2>/dev/null | grep -q "ok installed"; then
    echo "error: the $PACKAGE .deb is installed; upgrade it with a newer .deb instead" >&2
    exit 1
fi

stop_service() {
    if have_systemd && systemctl is-active --quiet "$PACKAGE.service"; then
        step "stopping $PACKAGE.service"
        systemctl stop "$PACKAGE.service"
    fi
    if getent passwd "$PACKAGE" >/dev/null && pgrep -u "$PACKAGE" >/dev/null; then
        step "stopping processes still running as $PACKAGE"
        pkill -TERM -u "$PACKAGE" || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            pgrep -u "$PACKAGE" >/dev/null || break
            sleep 1
        done
        pkill -KILL -u "$PACKAGE" || true
    fi
}

if [ "$action" = uninstall ]; then
    stop_service
    if have_systemd && [ -f "$UNIT" ]; then
        systemctl disable --quiet "$PACKAGE.service" || true
    fi
    step "removing $UNIT and $VENV"
    rm -f "$UNIT"
    have_systemd && systemctl daemon-reload || true
    rm -rf "$VENV"
    rmdir --ignore-fail-on-non-empty /opt/venvs 2>/dev/null || true
    if [ "$purge" = yes ]; then
        step "removing $CONF, $DATA_DIR and /etc/$PACKAGE"
        rm -rf "$CONF" "$DATA_DIR" "/etc/$PACKAGE"
        rm -f "/etc/letsencrypt/renewal-hooks/deploy/$PACKAGE"
    else
        echo "kept $CONF and $DATA_DIR (--purge removes them)"
    fi
    echo "kept the system user $PACKAGE (deluser --system $PACKAGE removes it)"
    exit 0
fi

# --- install or upgrade ---

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: $PYTHON is not Python 3.11 or newer (set PYTHON=/path/to/python3)" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || ! command -v make >/dev/null; then
    step "installing python3-venv and make from Debian"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv make
fi

step "front-end files (make web-vendor: uPlot from npm)"
make -C "$SRC" --no-print-directory web-vendor

version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c "import sys; sys.exit('%d.%d' % sys.version_info[:2] != '$version')"; then
    step "$VENV was made with another Python: making it again"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    step "creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check --no-input -q "$@"; }
step "installing the pinned dependencies (debian/requirements.txt) and $SRC into $VENV"
pip install --use-pep517 -r "$SRC/debian/requirements.txt" "$SRC"
pip install --use-pep517 --no-deps --force-reinstall "$SRC"
"$VENV/bin/python" -m pip --disable-pip-version-check check
# Twisted plugin caches, made here by root because the service cannot write to $VENV.
"$VENV/bin/python" -c 'import lqos.plugins, twisted.plugins
from twisted.plugin import IPlugin, getPlugins
list(getPlugins(IPlugin)); list(getPlugins(IPlugin, lqos.plugins))'

step "system user $PACKAGE and $DATA_DIR"
adduser --system --group --quiet --home "$DATA_DIR" --no-create-home \
    --shell /usr/sbin/nologin --gecos "lqos-bufferbloat daemon" "$PACKAGE"
install -d -m 0750 -o "$PACKAGE" -g "$PACKAGE" "$DATA_DIR"

if [ -e "$CONF" ]; then
    step "keeping the existing $CONF"
else
    step "writing $CONF from etc/lqos_test.conf.example (data_dir=$DATA_DIR)"
    sed "s|^#data_dir=.*|data_dir=$DATA_DIR|" "$SRC/etc/lqos_test.conf.example" > "$CONF.new"
    chown "root:$PACKAGE" "$CONF.new"
    chmod 0640 "$CONF.new"
    mv "$CONF.new" "$CONF"
fi

step "installing $UNIT"
install -m 0644 "$SRC/etc/lqos-bufferbloat.service" "$UNIT"

installed=$("$VENV/bin/python" -c 'import lqos; print(lqos.__version__)')
if have_systemd; then
    systemctl daemon-reload
    systemctl enable --quiet "$PACKAGE.service"
    if [ "$start" = yes ]; then
        systemctl restart "$PACKAGE.service"
        step "lqos-bufferbloat $installed installed and (re)started: systemctl status $PACKAGE"
    else
        step "lqos-bufferbloat $installed installed and enabled; start it with: systemctl start $PACKAGE"
    fi
else
    step "lqos-bufferbloat $installed installed. systemd is not running; start the daemon by hand:"
    echo "  cd $DATA_DIR && runuser -u $PACKAGE -- $VENV/bin/twistd --nodaemon --pidfile= $PACKAGE"
fi
echo "Settings: $CONF. Health: curl http://127.0.0.1:8000/api/health"
