#!/usr/bin/env bash
# Creates .venv-serve with Triton's clients (tritonclient, perf_analyzer) for the serving tests
# and benchmarks. Idempotent: quick when the venv is already complete.
# Usage: scripts/setup_serve_venv.sh        (then .venv-serve/bin/python, .venv-serve/bin/perf_analyzer)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-serve}
REQ=scripts/requirements-serve.txt

if [ -f "$VENV/.complete" ] && cmp -s "$REQ" "$VENV/.complete"; then
  echo "setup_serve_venv: $VENV is complete"
  exit 0
fi
if ! ldconfig -p | grep 'libb64.so.0d' >/dev/null; then
  echo "setup_serve_venv: libb64-0d is missing (perf_analyzer needs it); run scripts/setup.sh" >&2
  exit 1
fi
/usr/bin/python3 -m venv --system-site-packages "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ"

# perf_analyzer finds libcudart.so.12 in the venv through this wrapper.
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -f "$VENV/bin/perf_analyzer.bin" ]; then
  mv "$VENV/bin/perf_analyzer" "$VENV/bin/perf_analyzer.bin"
fi
cat > "$VENV/bin/perf_analyzer" <<WRAP
#!/bin/sh
export LD_LIBRARY_PATH="$site/nvidia/cuda_runtime/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "\$(dirname "\$0")/perf_analyzer.bin" "\$@"
WRAP
chmod +x "$VENV/bin/perf_analyzer"
"$VENV/bin/perf_analyzer" --version >/dev/null 2>&1 || {
  echo "setup_serve_venv: perf_analyzer does not start:" >&2
  "$VENV/bin/perf_analyzer" --version >&2 || true
  exit 1
}
"$VENV/bin/python" -c 'import tritonclient.grpc, tritonclient.http, numpy; assert numpy.__version__ < "2"'
cp "$REQ" "$VENV/.complete"
echo "setup_serve_venv: $VENV ready"
