#!/usr/bin/env bash
# Makes throw-away certificates for the TLS tests in the folder $1: a CA; a server certificate
# from it for 127.0.0.1, ::1 and localhost; a client certificate from it; and an untrusted CA
# with a server and a client certificate of its own. Keys are P-256; everything lasts 2 days.
set -euo pipefail
mkdir -p "$1"
cd "$1"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }

ca() {  # name, common name
  key "$1"
  openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 2 -out "$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}

leaf() {  # name, issuing CA, common name, extensions
  key "$1"
  openssl req -new -key "$1.key" -subj "/CN=$3" -out "$1.csr"
  printf '%b\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}

server_names='subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth'
ca ca "msgframe test CA"
ca rogue-ca "untrusted test CA"
leaf server ca localhost "$server_names"
leaf client ca "msgframe test client" 'extendedKeyUsage=clientAuth'
leaf rogue-server rogue-ca localhost "$server_names"
leaf rogue-client rogue-ca "rogue test client" 'extendedKeyUsage=clientAuth'
echo "make_test_certs: certificates in $PWD"
