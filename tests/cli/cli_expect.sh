# Shared by the CLI tests: `expect NAME WANT_RC REGEX -- command...` runs the command and checks
# its exit code (0, or a clean non-zero that is not a signal), that its output matches REGEX, and
# that no sanitizer report appears. Counts into $passed and $failed.
passed=0
failed=0

expect() {
  local name=$1 want_rc=$2 regex=$3
  shift 4
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if { [ "$want_rc" = 0 ] && [ $rc -ne 0 ]; } || { [ "$want_rc" != 0 ] && { [ $rc -eq 0 ] || [ $rc -gt 128 ]; }; } \
     || ! grep -Eq -- "$regex" <<<"$out" || grep -q "Sanitizer" <<<"$out"; then
    echo "FAIL $name (exit $rc): $out" | head -c 2000; echo
    failed=$((failed + 1))
  else
    echo "PASS $name"
    passed=$((passed + 1))
  fi
}

