#!/usr/bin/env bash
# Installs the Debian 12 packages msgframe builds and tests with, only those that are missing.
#
#   scripts/install-deps.sh          build, test and fuzz dependencies
#
# Idempotent: a machine that has everything is left untouched and apt is not called.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config ccache
  libboost1.81-dev libboost-test1.81-dev libboost-program-options1.81-dev
  libprotobuf-dev protobuf-compiler
  libssl-dev openssl  # TLS; the TLS tests make their own certificates with the openssl CLI
  libbenchmark-dev
  libgrpc++-dev protobuf-compiler-grpc  # the bench's gRPC comparison system (bench/grpc/)
  gnuplot-nox  # msgframe-bench --plot
  clang libclang-rt-14-dev
  tmux  # the chat client's terminal test drives it as a person would
)

is_installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

missing=()
for package in "${packages[@]}"; do
  is_installed "$package" || missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: installing needs root. Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  echo "or run this script with sudo, then the command again." >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
