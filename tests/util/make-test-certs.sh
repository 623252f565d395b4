#!/usr/bin/env bash
# Makes throwaway TLS material for Tessera's tests in OUTDIR (run at test time;
# nothing here is ever committed):
#   ca.pem/.key              a test CA
#   server.pem/.key          the scheduler: SANs IP:127.0.0.1, DNS:localhost
#   executor-a.pem/.key      client certificates signed by ca (SAN DNS:executor-a, ...b)
#   executor-b.pem/.key
#   ca2.pem, server2.pem/.key   a second CA and a server cert it signed (rotation)
#   rogue-ca.pem, rogue.pem/.key  a client cert from a CA the scheduler does not trust
# Usage: make-test-certs.sh OUTDIR
set -euo pipefail
out="$1"
mkdir -p "$out"
cd "$out"

ca() {  # name
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1.key" -out "$1.pem" -days 2 -subj "/CN=tessera test $1" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

leaf() {  # name ca san usage
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n' "$3" "$4" \
    >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial \
    -days 2 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

ca ca
ca ca2
ca rogue-ca
leaf server ca "IP:127.0.0.1,DNS:localhost" serverAuth
leaf server2 ca2 "IP:127.0.0.1,DNS:localhost" serverAuth
leaf executor-a ca "DNS:executor-a" clientAuth
leaf executor-b ca "DNS:executor-b" clientAuth
leaf rogue rogue-ca "DNS:executor-a" clientAuth
chmod 600 ./*.key
