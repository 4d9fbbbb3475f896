#!/usr/bin/env bash
# One command that sets up a fresh Debian 12 machine and runs every test parnet has:
#   1. scripts/setup.sh (Debian packages; quick when present)
#   2. Release build (CMake + Ninja, -j2) and the whole ctest suite
#   3. the README's main command (scripts/demo.sh) on the shipped model, accuracy >= 92%
#   4. AddressSanitizer + UBSan build of the bad-input, conformance and serving-core suites
#      (ctest -L asan)
# Each phase prints how long it took. Exit status is non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-2}

phase() {
  local name=$1
  shift
  local start=$SECONDS
  echo "=== phase: $name"
  "$@"
  echo "=== phase: $name took $((SECONDS - start)) s"
}

phase setup bash scripts/setup.sh
phase configure cmake -G Ninja -S . -B build -DCMAKE_BUILD_TYPE=Release
phase build ninja -C build -j"$JOBS"
phase test ctest --test-dir build -j"$JOBS" --output-on-failure

# The README's main command on the shipped model must print an accuracy of at least 92%.
demo_check() {
  bash scripts/demo.sh | tee build/demo.log
  awk '/^top-1 accuracy:/ { sub("%", "", $3); acc = $3 + 0 }
       END { printf "demo accuracy %.2f%% (need >= 92)\n", acc; exit (acc >= 92) ? 0 : 1 }' build/demo.log
}
phase demo demo_check
phase asan-configure cmake -G Ninja -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DPARNET_SANITIZE=ON
phase asan-build ninja -C build-asan -j"$JOBS" parnet graph_test core_test io_test exec_test passes_test parnet_onnx_conformance \
  serve_test
# detect_leaks=0: libgomp keeps its thread pool alive at exit, which LeakSanitizer reports.
phase asan-test env ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1 \
  ctest --test-dir build-asan -L asan -j"$JOBS" --output-on-failure
