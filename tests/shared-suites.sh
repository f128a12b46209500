#!/usr/bin/env bash
# Prints the `cargo test` arguments that skip the suites needing the team library (`../shared`
# beside the clone): the TraceQL conformance tables and bloom goldens lifted from Tempo's own
# tests, and the property test over the large block Tempo wrote, whose test names start with
# tempo_suite_. Prints nothing when the library is there.
# Without it: one line on stderr and the skip arguments, or, under CI=true, exit 2.
set -euo pipefail
cd "$(dirname "$0")/.."
for needed in ../shared/conformance/traceql ../shared/golden/tempo-blocks/repo-testdata-common-bloom \
  ../shared/golden/tempo-blocks/large; do
  if [ ! -d "$needed" ]; then
    if [ "${CI:-}" = true ]; then
      echo "tests/run.sh: CI=true and $needed (the team library beside this repository) is missing" >&2
      exit 2
    fi
    echo "tests/run.sh: $needed not found: not running the tempo_suite_* tests (TraceQL conformance, bloom goldens, large Tempo block)" >&2
    echo "-- --skip tempo_suite_"
    exit 0
  fi
done
