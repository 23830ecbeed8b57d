#!/usr/bin/env bash
# Runs the exporter on http://127.0.0.1:10178/.
#
# With AWS credentials (environment, ~/.aws profile, web identity, container
# credentials) it audits the account they belong to. Without any, it starts
# the local AWS emulator the tests use, seeded with a realistic account
# (tests/scenarios/demo.yaml), and audits that.
#
#   scripts/run.sh [exporter flags...]     e.g. --refresh.interval=5m
#   IAM_EXPORTER_DEMO=1 scripts/run.sh      the emulator even with credentials
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

has_aws_credentials() {
    [ -n "${AWS_ACCESS_KEY_ID:-}" ] || [ -n "${AWS_PROFILE:-}" ] ||
        [ -n "${AWS_WEB_IDENTITY_TOKEN_FILE:-}" ] ||
        [ -n "${AWS_CONTAINER_CREDENTIALS_FULL_URI:-}" ] ||
        [ -n "${AWS_CONTAINER_CREDENTIALS_RELATIVE_URI:-}" ] ||
        [ -f "${AWS_SHARED_CREDENTIALS_FILE:-$HOME/.aws/credentials}" ] ||
        [ -f "${AWS_CONFIG_FILE:-$HOME/.aws/config}" ]
}

log "building the exporter (release)"
cargo build --release --locked --bin iam-credentials-exporter
exporter=target/release/iam-credentials-exporter
listen="${IAM_EXPORTER_WEB_LISTEN_ADDRESS:-127.0.0.1:10178}"

if [ -z "${IAM_EXPORTER_DEMO:-}" ] && has_aws_credentials; then
    log "AWS credentials found: auditing their account; metrics on http://$listen/metrics"
    exec "$exporter" --web.listen-address="$listen" "$@"
fi

ensure_debian_packages
prepare_venv
workdir=$(mktemp -d)
trap 'kill "$emulator_pid" 2>/dev/null || true; rm -rf "$workdir"' EXIT
log "no AWS credentials: starting the AWS emulator with tests/scenarios/demo.yaml"
# The emulator exits when its standard input closes, i.e. with this script.
mkfifo "$workdir/stdin"
.venv/bin/python tests/harness/emulator.py --scenario tests/scenarios/demo.yaml \
    <"$workdir/stdin" >"$workdir/emulator.out" &
emulator_pid=$!
exec 3>"$workdir/stdin"
for _ in $(seq 1 600); do
    grep -q '^READY ' "$workdir/emulator.out" 2>/dev/null && break
    kill -0 "$emulator_pid" 2>/dev/null || { echo "the emulator failed to start" >&2; exit 1; }
    sleep 0.1
done
endpoint=$(sed -n 's/^READY //p' "$workdir/emulator.out")
[ -n "$endpoint" ] || { echo "the emulator did not become ready" >&2; exit 1; }

log "emulator on $endpoint; metrics on http://$listen/metrics (Ctrl-C stops both)"
AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo \
    AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
    "$exporter" --web.listen-address="$listen" \
    --state.file="$workdir/state.json" "$@"
