#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with a Rust toolchain: installs what the
# tests need when it is missing, then runs formatting, lints, unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

# Suites that need the team library beside the clone (tests/shared-suites.sh says which).
skip_args=$(bash tests/shared-suites.sh)
# shellcheck disable=SC2206
skip=($skip_args)

step "test clients (PyPI: OpenTelemetry SDK and exporters, py_zipkin, moto S3 server)"
if ! python3 - <<'PY' 2>/dev/null
import importlib, os, sys
# py_zipkin 0.x (the Zipkin v1 client; 1.x dropped Thrift) loads with pure-Python protobuf.
os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
for module in ["opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
               "opentelemetry.exporter.otlp.proto.http.trace_exporter", "moto.server",
               "opentelemetry.exporter.zipkin.json", "thrift", "deprecated", "py_zipkin.thrift"]:
    importlib.import_module(module)
PY
then
  # Debian's own python3 refuses system-wide installs (PEP 668); the tests only need the modules.
  python3 -m pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages -r tests/clients/requirements.txt
fi

# These two pin protobuf~=3.12 / an old SDK in their metadata but work with today's (see
# tests/clients/legacy_send.py), so they are installed without their dependencies.
if ! python3 -c "import opentelemetry.exporter.zipkin.proto.http, opentelemetry.exporter.jaeger.thrift.gen" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --no-deps \
    opentelemetry-exporter-zipkin-proto-http==1.45.1 opentelemetry-exporter-jaeger-thrift==1.21.0 ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages --no-deps \
      opentelemetry-exporter-zipkin-proto-http==1.45.1 opentelemetry-exporter-jaeger-thrift==1.21.0
fi

step "Prometheus 2.42 (remote-write end-to-end test)"
command -v prometheus || (apt-get update && apt-get install -y --no-install-recommends prometheus)

step "Alertmanager 0.25 (alerting end-to-end test, amtool check-config)"
command -v prometheus-alertmanager || (apt-get update && apt-get install -y --no-install-recommends prometheus-alertmanager)
step "Chromium, playwright-core, esbuild and the OpenTelemetry web SDK (browser tests)"
command -v chromium || (apt-get update && apt-get install -y --no-install-recommends chromium)
# Installed again whenever package-lock.json changed since the last install (a stamp copy).
if ! cmp -s tests/ui/package-lock.json tests/ui/node_modules/.installed-package-lock.json; then
  command -v npm || (apt-get update && apt-get install -y --no-install-recommends nodejs npm)
  (cd tests/ui && npm ci --no-audit --no-fund && cp package-lock.json node_modules/.installed-package-lock.json)
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

step "cargo test"
cargo test --no-fail-fast "${skip[@]}" 2>&1 | tee "${TMPDIR:-/tmp}/vivace-test.log"
status=${PIPESTATUS[0]}
passed=$(grep -Eo '[0-9]+ passed' "${TMPDIR:-/tmp}/vivace-test.log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "${TMPDIR:-/tmp}/vivace-test.log" | awk '{s+=$1} END {print s+0}')
echo
echo "all: ${passed} passed, ${failed} failed"
[ ${#skip[@]} -eq 0 ] || echo "not run: the tempo_suite_* tests (../shared is missing; see tests/data/README.md)"
exit "$status"
