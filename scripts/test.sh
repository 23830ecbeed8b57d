#!/usr/bin/env bash
# Runs every check of the project, installing what the tests need first:
# Debian's prometheus (promtool) and prometheus-alertmanager when missing,
# and a Python virtual environment (.venv) with the AWS emulator (moto).
#
#   scripts/test.sh            everything
#   SKIP_LINT=1 scripts/test.sh  without cargo fmt / clippy
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_debian_packages() {
    local missing=()
    command -v promtool >/dev/null || missing+=(prometheus)
    command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null ||
        missing+=(prometheus-alertmanager)
    python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${missing[@]}"
    fi
}

prepare_venv() {
    local requirements=tests/harness/requirements.txt
    local stamp=.venv/.requirements.sha256
    local wanted
    wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
    if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
        return
    fi
    log "creating .venv from $requirements"
    rm -rf .venv
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$wanted" >"$stamp"
}

install_debian_packages
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
cargo build --locked --bin iam-credentials-exporter
.venv/bin/python -m pytest -q tests/harness tests/dashboard tests/e2e

log "all checks passed"
