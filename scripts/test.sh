#!/usr/bin/env bash
# Runs every check of the project, installing what the tests need first:
# Debian's prometheus (promtool) and prometheus-alertmanager when missing,
# and a Python virtual environment (.venv) with the AWS emulator (moto).
#
#   scripts/test.sh            everything
#   SKIP_LINT=1 scripts/test.sh  without cargo fmt / clippy
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

ensure_debian_packages promtool:prometheus prometheus-alertmanager:prometheus-alertmanager
prepare_venv
export IAM_EXPORTER_TEST_PYTHON="$PWD/.venv/bin/python"

if [ -z "${SKIP_LINT:-}" ]; then
    log "cargo fmt --check"
    cargo fmt --all -- --check
    log "cargo clippy"
    cargo clippy --all-targets --locked -- -D warnings
fi

log "cargo test"
cargo test --locked

log "promtool check rules / test rules"
promtool check rules alerts/iam-credentials.rules.yml
promtool test rules alerts/tests/*.yml

log "dashboard static checks"
.venv/bin/python tests/dashboard/check_dashboard.py grafana/iam-credentials.json

log "emulator, dashboard and end-to-end alerting tests (pytest)"
# `cargo test` has built target/debug/iam-credentials-exporter for its
# integration tests; the end-to-end test runs that same binary.
[ -x target/debug/iam-credentials-exporter ] || cargo build --locked --bin iam-credentials-exporter
.venv/bin/python -m pytest -q tests/harness tests/dashboard tests/e2e tests/deploy

log "all checks passed"
