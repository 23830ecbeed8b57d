#!/usr/bin/env bash
# Measures the exporter's resident memory and exposition size for an account
# with 5,000 IAM users (tests/scenarios/large.yaml), against the emulator.
# Bounded: everything it starts is stopped within a minute.
#
#   benches/memory.sh        (after scripts/test.sh created .venv)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked --bin iam-credentials-exporter >&2
workdir=$(mktemp -d)
cleanup() {
    kill "${exporter_pid:-}" "${emulator_pid:-}" 2>/dev/null || true
    rm -rf "$workdir"
}
trap cleanup EXIT

mkfifo "$workdir/stdin"
timeout 120 .venv/bin/python tests/harness/emulator.py --scenario tests/scenarios/large.yaml \
    <"$workdir/stdin" >"$workdir/emulator.out" &
emulator_pid=$!
exec 3>"$workdir/stdin"
for _ in $(seq 1 300); do grep -q '^READY ' "$workdir/emulator.out" && break; sleep 0.1; done
endpoint=$(sed -n 's/^READY //p' "$workdir/emulator.out")

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench \
    AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
    target/release/iam-credentials-exporter --web.listen-address="127.0.0.1:$port" \
    --log.level=warn &
exporter_pid=$!
for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/-/ready")" = 200 ] && break
    sleep 0.1
done

users=$(curl -s "http://127.0.0.1:$port/metrics" | sed -n 's/^aws_iam_users{.*} //p')
text_bytes=$(curl -s "http://127.0.0.1:$port/metrics" | wc -c)
series=$(curl -s "http://127.0.0.1:$port/metrics" | grep -vc '^#')
om_bytes=$(curl -s -H 'Accept: application/openmetrics-text' "http://127.0.0.1:$port/metrics" | wc -c)
gzip_bytes=$(curl -s -H 'Accept-Encoding: gzip' "http://127.0.0.1:$port/metrics" | wc -c)
for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$port/metrics"; done
rss_kib=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$exporter_pid/status")
peak_kib=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$exporter_pid/status")

echo "users in report:            $users"
echo "series exported:            $series"
echo "text exposition:            $((text_bytes / 1024)) KiB"
echo "OpenMetrics exposition:     $((om_bytes / 1024)) KiB"
echo "text exposition, gzip:      $((gzip_bytes / 1024)) KiB"
echo "resident memory after 200 scrapes: $((rss_kib / 1024)) MiB (peak $((peak_kib / 1024)) MiB)"
