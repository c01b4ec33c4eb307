#!/usr/bin/env bash
# Make (when missing or about to expire) a private test CA and a server certificate
# for 127.0.0.1 / localhost, for the brokers' TLS listeners.
#
# Usage: scripts/brokers/tls.sh [ensure|paths]
#   ensure  (default) create what is missing in <state dir>/tls and print its path
#   paths   print the CA, certificate and key paths, one a line (creates them first)
# Environment: STOMPWS_BROKER_DIR (default <repo>/.brokers; files go in its tls/ subdir).
#
# Files: ca.pem (the CA clients trust: pass it to ssl.create_default_context(cafile=...)),
# ca.key, server.pem, server.key. rabbitmq.sh calls this before every start, so a fresh
# clone needs no manual step.
#
# Why it is done this way:
# - The openssl command only: it is on every machine that has a broker, and the CA never
#   leaves the private directory (git ignores .brokers/).
# - EC P-256 keys: fast to make, accepted by Erlang/OTP and by Python's ssl module.
# - The server certificate carries the extensions a strict verifier asks for
#   (Python 3.13's VERIFY_X509_STRICT): CA:FALSE, serverAuth, key identifiers, and the
#   names in subjectAltName (the CN is not checked by modern clients).
# - Certificates are remade when they expire within a day, so a long-lived checkout does
#   not start failing one morning; the CA is remade with them (it is only a test CA).
# - Keys are made under umask 077: readable by the invoking user (the broker runs as that
#   user) and by no one else.
set -euo pipefail

BROKER_NAME=tls
# shellcheck source=SCRIPTDIR/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

TLS_DIR="$BROKERS_STATE_DIR/tls"
CA="$TLS_DIR/ca.pem"
CA_KEY="$TLS_DIR/ca.key"
CERT="$TLS_DIR/server.pem"
KEY="$TLS_DIR/server.key"
DAYS=365

valid() {
    local file
    for file in "$CA" "$CA_KEY" "$CERT" "$KEY"; do
        [ -s "$file" ] || return 1
    done
    openssl x509 -in "$CA" -noout -checkend 86400 >/dev/null 2>&1 \
        && openssl x509 -in "$CERT" -noout -checkend 86400 >/dev/null 2>&1 \
        && openssl verify -CAfile "$CA" "$CERT" >/dev/null 2>&1
}

make_certificates() {
    command -v openssl >/dev/null || die "the openssl command is needed to make the test CA"
    mkdir -p "$TLS_DIR"
    local work
    work="$(mktemp -d "$TLS_DIR/.new.XXXXXX")"
    # shellcheck disable=SC2064  # expand now: the path is fixed
    trap "rm -rf '$work'" EXIT
    (
        umask 077
        cd "$work"
        cat >server.ext <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
        ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
        openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days "$DAYS" \
            -subj "/CN=stompws test CA ($(hostname))" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -addext "subjectKeyIdentifier=hash" 2>/dev/null
        openssl req "${ec[@]}" -keyout server.key -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out server.pem -days "$DAYS" -extfile server.ext 2>/dev/null
        chmod 644 ca.pem server.pem
    ) || die "openssl failed to make the test certificates"
    # Move the complete set in place together: a reader never sees a CA that did not
    # sign the certificate next to it.
    mv -f "$work/ca.key" "$CA_KEY"
    mv -f "$work/server.key" "$KEY"
    mv -f "$work/server.pem" "$CERT"
    mv -f "$work/ca.pem" "$CA"
    rm -rf "$work"
    trap - EXIT
    log "made a test CA and a certificate for 127.0.0.1 and localhost in $TLS_DIR" >&2
}

ensure() {
    valid && return 0
    take_lock "$TLS_DIR"
    valid || make_certificates
}

case "${1:-ensure}" in
    ensure) ensure; echo "$TLS_DIR" ;;
    paths) ensure; printf '%s\n' "$CA" "$CERT" "$KEY" ;;
    *) echo "usage: $0 [ensure|paths]" >&2; exit 2 ;;
esac
