#!/bin/sh
# Get a Let's Encrypt certificate for lqos-bufferbloat with Debian's certbot and
# keep it renewed.
#
# Usage: setup_ssl_certificates.sh DOMAIN [--webroot DIR] [--email ADDRESS] [--staging]
#                                  [--config FILE] [--tls-dir DIR] [--group GROUP]
#                                  [--letsencrypt-dir DIR]
#
#   (default)        certbot's own web server answers the challenge on port 80
#                    (standalone): nothing else may listen on :80 while it runs.
#   --webroot DIR    a web server already on :80 serves DIR/.well-known/acme-challenge/.
#   --email ADDRESS  for Let's Encrypt's expiry notices (default: none).
#   --staging        Let's Encrypt's staging CA (untrusted certificates, for trying this out).
#   --config FILE    the daemon's config to point at the certificate [/etc/lqos_test.conf].
#   --tls-dir DIR    where the daemon reads the certificate and key [/etc/lqos-bufferbloat/tls].
#   --group GROUP    the daemon's group, allowed to read the key [lqos-bufferbloat].
#   --letsencrypt-dir DIR  certbot's --config-dir [/etc/letsencrypt].
#
# What it does:
#   1. installs certbot from Debian if it is missing;
#   2. runs certbot certonly for DOMAIN;
#   3. writes a deploy hook, LETSENCRYPT_DIR/renewal-hooks/deploy/lqos-bufferbloat, that
#      certbot runs after every renewal (certbot.timer, twice a day): it copies
#      fullchain.pem and privkey.pem to TLS_DIR (root:GROUP, key 0640; the daemon runs
#      as GROUP and cannot read /etc/letsencrypt/archive), checks that key and
#      certificate match, and restarts lqos-bufferbloat.service so it serves the new one;
#   4. runs that hook once now;
#   5. sets tls_cert and tls_key in the config file (other lines untouched).
# It prints each step. Run as root. Running it again is harmless.
set -eu

usage() {
    sed -n '4,7p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

domain=""
webroot=""
email=""
staging=""
config=/etc/lqos_test.conf
tls_dir=/etc/lqos-bufferbloat/tls
group=lqos-bufferbloat
le_dir=/etc/letsencrypt

while [ $# -gt 0 ]; do
    case "$1" in
        --webroot) webroot=${2:?--webroot needs a directory}; shift 2 ;;
        --email) email=${2:?--email needs an address}; shift 2 ;;
        --staging) staging=--staging; shift ;;
        --config) config=${2:?--config needs a file}; shift 2 ;;
        --tls-dir) tls_dir=${2:?--tls-dir needs a directory}; shift 2 ;;
        --group) group=${2:?--group needs a group}; shift 2 ;;
        --letsencrypt-dir) le_dir=${2:?--letsencrypt-dir needs a directory}; shift 2 ;;
        -h|--help) usage ;;
        -*) echo "unknown option $1" >&2; usage ;;
        *) [ -z "$domain" ] || usage; domain=$1; shift ;;
    esac
done
[ -n "$domain" ] || usage
case "$domain" in
    *[!A-Za-z0-9.-]*|.*|*..*) echo "error: $domain is not a domain name" >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ]; then
    echo "error: run as root (certbot and the key need it)" >&2
    exit 1
fi
if ! getent group "$group" >/dev/null; then
    echo "error: no group $group: install lqos-bufferbloat first (the .deb or etc/install_service.sh)" >&2
    exit 1
fi
if [ -n "$webroot" ] && [ ! -d "$webroot" ]; then
    echo "error: webroot $webroot is not a directory" >&2
    exit 1
fi

step() { echo "==> $*"; }

if ! command -v certbot >/dev/null; then
    step "installing certbot from Debian"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends certbot
fi

hook_dir=$le_dir/renewal-hooks/deploy
hook=$hook_dir/lqos-bufferbloat
step "writing the deploy hook $hook"
mkdir -p "$hook_dir"
cat > "$hook.new" <<EOF
#!/bin/sh
# Written by lqos-bufferbloat's setup_ssl_certificates.sh for $domain.
# certbot runs it after each renewal: copy the certificate where the daemon reads it,
# then restart the daemon so it serves the new one.
set -eu
domain='$domain'
tls_dir='$tls_dir'
group='$group'
case " \${RENEWED_DOMAINS:-} " in
    *" \$domain "*) ;;
    *) exit 0 ;;
esac
lineage=\${RENEWED_LINEAGE:?certbot sets RENEWED_LINEAGE}
if ! getent group "\$group" >/dev/null; then
    echo "lqos-bufferbloat hook: no group \$group (package removed?); nothing done"
    exit 0
fi
install -d -m 0750 -o root -g "\$group" "\$tls_dir"
install -m 0644 -o root -g "\$group" "\$lineage/fullchain.pem" "\$tls_dir/fullchain.pem.new"
install -m 0640 -o root -g "\$group" "\$lineage/privkey.pem" "\$tls_dir/privkey.pem.new"
cert_key=\$(openssl x509 -noout -pubkey -in "\$tls_dir/fullchain.pem.new" | openssl sha256)
key_key=\$(openssl pkey -pubout -in "\$tls_dir/privkey.pem.new" | openssl sha256)
if [ "\$cert_key" != "\$key_key" ]; then
    rm -f "\$tls_dir/fullchain.pem.new" "\$tls_dir/privkey.pem.new"
    echo "lqos-bufferbloat hook: key and certificate in \$lineage do not match; kept the old pair" >&2
    exit 1
fi
mv -f "\$tls_dir/privkey.pem.new" "\$tls_dir/privkey.pem"
mv -f "\$tls_dir/fullchain.pem.new" "\$tls_dir/fullchain.pem"
echo "lqos-bufferbloat hook: copied \$lineage/fullchain.pem and privkey.pem to \$tls_dir"
if [ -d /run/systemd/system ]; then
    systemctl try-restart lqos-bufferbloat.service
    echo "lqos-bufferbloat hook: restarted lqos-bufferbloat.service (if it was running)"
else
    echo "lqos-bufferbloat hook: systemd is not running; restart the daemon yourself to load the new certificate"
fi
EOF
chmod 0755 "$hook.new"
mv -f "$hook.new" "$hook"

if [ -n "$webroot" ]; then
    step "certbot certonly --webroot -w $webroot -d $domain"
    set -- --webroot -w "$webroot"
else
    step "certbot certonly --standalone -d $domain (certbot listens on port 80 for the challenge)"
    set -- --standalone
fi
if [ -n "$email" ]; then
    set -- "$@" --email "$email"
else
    set -- "$@" --register-unsafely-without-email
fi
[ -z "$staging" ] || set -- "$@" --staging
certbot certonly --non-interactive --agree-tos --keep-until-expiring --config-dir "$le_dir" \
    --cert-name "$domain" -d "$domain" "$@"

step "running the deploy hook for $le_dir/live/$domain"
RENEWED_LINEAGE="$le_dir/live/$domain" RENEWED_DOMAINS="$domain" "$hook"

step "pointing $config at $tls_dir"
if [ ! -f "$config" ]; then
    echo "error: $config does not exist; add these lines to the daemon's config:" >&2
    echo "  tls_cert=$tls_dir/fullchain.pem" >&2
    echo "  tls_key=$tls_dir/privkey.pem" >&2
    exit 1
fi
set_key() {
    # Replace an active or commented-out "key=" line, else append one.
    if grep -Eq "^[[:space:]]*#?[[:space:]]*$1=" "$config"; then
        sed -i -E "0,/^[[:space:]]*#?[[:space:]]*$1=.*/s||$1=$2|" "$config"
        sed -i -E "1,/^$1=/!{/^[[:space:]]*$1=/d}" "$config"
    else
        printf '%s=%s\n' "$1" "$2" >> "$config"
    fi
    echo "    $1=$2"
}
set_key tls_cert "$tls_dir/fullchain.pem"
set_key tls_key "$tls_dir/privkey.pem"

cat <<EOF
Done. Every port of the daemon now speaks TLS (https:// and wss://) with the
certificate for $domain; renewals are copied and the daemon restarted by $hook.
EOF
if [ -d /run/systemd/system ]; then
    systemctl try-restart lqos-bufferbloat.service || true
    echo "Restarted lqos-bufferbloat.service (if it was running)."
else
    echo "systemd is not running: restart the daemon yourself to load the certificate."
fi
echo "To serve the page on https://$domain/ set port=tcp:443 in $config and restart."
echo "Test renewal with: certbot renew --dry-run --config-dir $le_dir"
