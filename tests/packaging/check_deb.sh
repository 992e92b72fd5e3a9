#!/bin/sh
# Build (or take) the .deb, install it on this machine, run the daemon exactly as
# the systemd unit would, and purge it again. Run by hand as root; it is not part
# of `make test` because the build alone takes about two minutes.
#
# Usage: tests/packaging/check_deb.sh [PATH/TO/lqos-bufferbloat_VERSION_ARCH.deb]
#   Without a .deb it runs `make deb` first. The package must not be installed,
#   and ports 443 and 8000-8005 must be free. It leaves nothing behind but the
#   system user lqos-bufferbloat (Debian packages keep their system users).
#
# Without a running systemd (containers, this CI machine) the unit cannot be
# started; instead its ExecStart runs in its WorkingDirectory as its User, with
# what setpriv can reproduce of the unit: NoNewPrivileges, and
# CAP_NET_BIND_SERVICE as the only (ambient and bounding) capability.
set -eu

PACKAGE=lqos-bufferbloat
UNIT=/lib/systemd/system/$PACKAGE.service
VENV=/opt/venvs/$PACKAGE
CONF=/etc/lqos_test.conf
TLS_DIR=/etc/$PACKAGE/tls
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/check_deb.XXXXXX)
DAEMON_PID=""

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok   $*"; }
step() { echo; echo "==> $*"; }

cleanup() {
    [ -z "$DAEMON_PID" ] || stop_daemon
    rm -rf "$WORK"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || fail "run as root (dpkg -i)"
if dpkg-query -W -f '${Status}' "$PACKAGE" 2>/dev/null | grep -q installed; then
    fail "$PACKAGE is installed already: dpkg --purge $PACKAGE first"
fi
for port in 443 8000 8001 8002 8003 8004 8005; do
    ! ss -Hltn "sport = :$port" | grep -q . || fail "port $port is in use"
done

if [ $# -ge 1 ]; then
    DEB=$1
else
    step "make deb"
    start=$(date +%s)
    make -C "$REPO" deb
    echo "build took $(( $(date +%s) - start )) s"
    DEB=$(ls -t "$REPO"/dist/${PACKAGE}_*.deb | head -n1)
fi
step "package $DEB ($(du -h "$DEB" | cut -f1), $(stat -c %s "$DEB") bytes)"
dpkg-deb -f "$DEB" Package Version Architecture Depends Installed-Size
if dpkg-deb -c "$DEB" | grep -E 'dropin\.cache|/var/lib/'; then
    fail "the package ships a plugin cache or state"
fi
ok "no dropin.cache and nothing under /var/lib in the package"

step "dpkg -i"
dpkg -i "$DEB"
getent passwd "$PACKAGE" | grep -q ":/usr/sbin/nologin$" || fail "no system user $PACKAGE"
ok "system user: $(id "$PACKAGE")"
[ "$(stat -c '%U:%G %a' /var/lib/$PACKAGE)" = "$PACKAGE:$PACKAGE 750" ] || fail "/var/lib/$PACKAGE: $(stat -c '%U:%G %a' /var/lib/$PACKAGE)"
ok "/var/lib/$PACKAGE is $PACKAGE:$PACKAGE 0750"
[ "$(stat -c '%U:%G %a' $CONF)" = "root:$PACKAGE 640" ] || fail "$CONF: $(stat -c '%U:%G %a' $CONF)"
grep -qx "data_dir=/var/lib/$PACKAGE" $CONF || fail "$CONF has no data_dir=/var/lib/$PACKAGE"
dpkg-query -W -f '${Conffiles}\n' "$PACKAGE" | grep -q " $CONF " || fail "$CONF is not a conffile"
ok "$CONF: conffile, root:$PACKAGE 0640, data_dir=/var/lib/$PACKAGE"
for cache in twisted/plugins lqos/plugins; do
    [ -s $VENV/lib/python3.11/site-packages/$cache/dropin.cache ] || fail "postinst made no $cache/dropin.cache"
done
ok "postinst made the Twisted plugin caches"
systemd-analyze verify "$UNIT"
ok "systemd-analyze verify $UNIT"
systemd-analyze security --offline=yes "$UNIT" 2>/dev/null | tail -n1

EXEC_START=$(sed -n 's/^ExecStart=//p' "$UNIT")
RUN_USER=$(sed -n 's/^User=//p' "$UNIT")
WORK_DIR=$(sed -n 's/^WorkingDirectory=//p' "$UNIT")
echo "unit: ExecStart=$EXEC_START User=$RUN_USER WorkingDirectory=$WORK_DIR"

start_daemon() {
    log=$WORK/daemon.log
    (cd "$WORK_DIR" && exec setsid setpriv --reuid="$RUN_USER" --regid="$RUN_USER" --init-groups \
        --no-new-privs --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service \
        --bounding-set=-all,+net_bind_service -- $EXEC_START) > "$log" 2>&1 &
    DAEMON_PID=$!
}

stop_daemon() {
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
    for _ in $(seq 50); do pgrep -u "$RUN_USER" >/dev/null || return 0; sleep 0.1; done
    fail "processes of $RUN_USER still running after SIGTERM: $(pgrep -u "$RUN_USER" -a)"
}

wait_health() {  # URL [curl options]
    url=$1; shift
    for _ in $(seq 100); do
        code=$(curl -s -o "$WORK/health.json" -w '%{http_code}' "$@" "$url" || true)
        [ "$code" = 200 ] && return 0
        kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/daemon.log" >&2; fail "the daemon exited"; }
        sleep 0.2
    done
    cat "$WORK/daemon.log" >&2
    fail "$url answered $code"
}

step "ExecStart as $RUN_USER, plain HTTP on 8000"
start_daemon
wait_health http://127.0.0.1:8000/api/health
ok "GET /api/health -> 200: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["status"], [c["role"]+":"+c["state"] for c in d["children"]])' "$WORK/health.json")"
[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/)" = 200 ] || fail "GET / is not 200"
[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/vendor/uPlot.esm.js)" = 200 ] || fail "uPlot is not served"
curl -s http://127.0.0.1:8000/metrics | grep -q '^lqos_tests_started_total' || fail "/metrics"
ok "GET /, /vendor/uPlot.esm.js and /metrics answer"
others=$(ps -o user= --ppid "$(pgrep -u "$RUN_USER" -f 'bin/twistd')" | sort -u | tr '\n' ' ')
[ "$others" = "$RUN_USER " ] || fail "children run as: $others"
ok "main process and its $(pgrep -u "$RUN_USER" -c) processes all run as $RUN_USER"
grep -q "configuration from $CONF" "$WORK/daemon.log" || fail "the daemon did not read $CONF"
! grep -qi "Unable to write to plugin cache" "$WORK/daemon.log" || fail "plugin cache not writable warning"
ok "read $CONF; no plugin-cache warning"

step "dpkg -i again over the running daemon (upgrade path), with a changed conffile"
sed -i 's/^sponsor_name=.*/sponsor_name=Check Deb Fibre/' $CONF
dpkg -i "$DEB" >/dev/null
grep -qx 'sponsor_name=Check Deb Fibre' $CONF || fail "reinstall replaced the edited conffile"
[ "$(stat -c '%U:%G %a' $CONF)" = "root:$PACKAGE 640" ] || fail "$CONF mode after reinstall"
ok "edited $CONF kept, still root:$PACKAGE 0640"
stop_daemon
ok "SIGTERM: main process and children gone"

step "TLS on :443 as $RUN_USER (CAP_NET_BIND_SERVICE only), certificate in $TLS_DIR"
install -d -m 0750 -o root -g "$PACKAGE" "$TLS_DIR"
sh /usr/share/doc/$PACKAGE/examples/create_test_certificates.sh "$WORK/tls" >/dev/null
install -m 0644 -o root -g "$PACKAGE" "$WORK/tls/cert.pem" "$TLS_DIR/fullchain.pem"
install -m 0640 -o root -g "$PACKAGE" "$WORK/tls/key.pem" "$TLS_DIR/privkey.pem"
cp $CONF "$WORK/lqos_test.conf.orig"
sed -i 's/^port=.*/port=tcp:443/' $CONF
printf 'tls_cert=%s\ntls_key=%s\n' "$TLS_DIR/fullchain.pem" "$TLS_DIR/privkey.pem" >> $CONF
start_daemon
wait_health https://127.0.0.1:443/api/health --cacert "$TLS_DIR/fullchain.pem"
ok "GET https://127.0.0.1:443/api/health -> 200"
for port in 8001 8002 8003 8004 8005; do
    echo | openssl s_client -connect 127.0.0.1:$port -CAfile "$TLS_DIR/fullchain.pem" -verify_return_error \
        >/dev/null 2>&1 || fail "port $port does not speak TLS with the certificate"
done
ok "ports 8001-8005 speak TLS with the same certificate"
[ "$(curl -s --cacert "$TLS_DIR/fullchain.pem" https://127.0.0.1:8005/ping -o /dev/null -w '%{http_code}')" = 200 ] \
    || fail "https://127.0.0.1:8005/ping"
ok "GET https://127.0.0.1:8005/ping (probe) -> 200"
stop_daemon

step "refusals: a key $RUN_USER cannot read, a key of another certificate"
chmod 0600 "$TLS_DIR/privkey.pem"; chown root:root "$TLS_DIR/privkey.pem"
if (cd "$WORK_DIR" && setpriv --reuid="$RUN_USER" --regid="$RUN_USER" --init-groups -- $EXEC_START) \
        > "$WORK/refused.log" 2>&1; then
    fail "started with an unreadable key"
fi
grep "cannot read TLS key" "$WORK/refused.log" || { cat "$WORK/refused.log"; fail "no clear message"; }
ok "unreadable key: refused"
sh /usr/share/doc/$PACKAGE/examples/create_test_certificates.sh "$WORK/other" >/dev/null
install -m 0640 -o root -g "$PACKAGE" "$WORK/other/key.pem" "$TLS_DIR/privkey.pem"
if (cd "$WORK_DIR" && setpriv --reuid="$RUN_USER" --regid="$RUN_USER" --init-groups -- $EXEC_START) \
        > "$WORK/refused.log" 2>&1; then
    fail "started with a mismatched key"
fi
grep "does not match" "$WORK/refused.log" || { cat "$WORK/refused.log"; fail "no clear message"; }
ok "mismatched key: refused"
cp "$WORK/lqos_test.conf.orig" $CONF

step "dpkg --purge while the daemon runs"
start_daemon
wait_health http://127.0.0.1:8000/api/health
running=$(pgrep -u "$RUN_USER" -c)
dpkg --purge "$PACKAGE"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=""
! pgrep -u "$RUN_USER" -a || fail "processes left after purge"
ok "purge stopped the $running processes of $RUN_USER; none left"
for path in $VENV /var/lib/$PACKAGE $CONF /etc/$PACKAGE $UNIT \
        /etc/systemd/system/multi-user.target.wants/$PACKAGE.service /usr/bin/lqos-bufferbloat-test; do
    [ ! -e "$path" ] || fail "$path left after purge"
done
! dpkg-statoverride --list $CONF >/dev/null || fail "statoverride left"
! ss -Hltn | grep -E ':(443|800[0-5])\b' || fail "a port is still bound"
ok "venv, data, config, certificates, unit and statoverride gone; no port bound"
echo
echo "check_deb: all checks passed ($DEB)"
