#!/bin/sh
# Make a self-signed certificate and key for development and tests.
# Usage: create_test_certificates.sh [DIR] [HOSTNAME]
# Writes DIR/cert.pem and DIR/key.pem (default DIR: ./var/tls, HOSTNAME: localhost),
# valid for HOSTNAME, localhost, 127.0.0.1 and ::1. Never use these in production.
set -eu
dir=${1:-var/tls}
host=${2:-localhost}
mkdir -p "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -days 825 -subj "/CN=$host" \
    -addext "subjectAltName=DNS:$host,DNS:localhost,IP:127.0.0.1,IP:::1" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
echo "wrote $dir/cert.pem and $dir/key.pem for $host"
