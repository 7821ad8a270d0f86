#!/usr/bin/env bash
# ctest driver: installs msgframe from BUILD_DIR into a temporary prefix, builds the consumer
# project against that package (a static libmsgframe), runs it; then builds it again with msgframe
# as a subdirectory, as a shared library (-DBUILD_SHARED_LIBS=ON), and runs that.
#   run.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
source_dir=$1
build_dir=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
echo "consumer: installed package files:"
(cd "$work/prefix" && find . -name 'msgframeConfig*.cmake' -o -name '*.proto' -o -name 'libmsgframe*' | sort)

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$source_dir/tests/consumer" -B "$work/installed" -G Ninja "${launcher[@]}" \
  -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/installed" >/dev/null
"$work/installed/consumer"

cmake -S "$source_dir/tests/consumer" -B "$work/subdirectory" -G Ninja "${launcher[@]}" \
  -DMSGFRAME_SOURCE_DIR="$source_dir" -DBUILD_SHARED_LIBS=ON >/dev/null
cmake --build "$work/subdirectory" >/dev/null
if ! ldd "$work/subdirectory/consumer" | grep -q 'libmsgframe\.so'; then
  echo "consumer: FAILED: with BUILD_SHARED_LIBS=ON the consumer does not use libmsgframe.so" >&2
  exit 1
fi
"$work/subdirectory/consumer"
echo "consumer: both ways of depending on msgframe work, static and shared"
