#!/usr/bin/env bash
# The whole test suite, as the README's second command and .ci/run run it:
# installs what is missing, checks the format, builds with -Werror under gcc,
# then builds with clang under ASan+UBSan (with the fuzz targets) and runs
# every test: unit, conformance against the CloudEvents JS SDK, fuzz.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
jobs=$(nproc)

bash scripts/setup.sh
# etcd and kube-apiserver built offline from Debian's source, for the tests
# only (tests/k8s, tests/charts; about 15 minutes the first time, then
# cached in /var/cache/outpost/kube); skips itself when not root or with
# OUTPOST_SKIP_KUBE=1. Not in setup.sh: `outpost run` does not need it.
bash scripts/setup_kube.sh
bash scripts/format.sh --check

echo "== gcc build, warnings are errors"
cmake -S . -B build-gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOUTPOST_WERROR=ON >/dev/null
cmake --build build-gcc -j"$jobs" >/dev/null

echo "== clang build with ASan+UBSan and the fuzzers"
CC=clang cmake -S . -B build-san -DCMAKE_BUILD_TYPE=Debug -DOUTPOST_WERROR=ON \
  -DOUTPOST_ASAN=ON -DOUTPOST_UBSAN=ON -DOUTPOST_FUZZ=ON >/dev/null
cmake --build build-san -j"$jobs" >/dev/null

echo "== tests"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir build-san --output-on-failure -j"$jobs" "$@"
