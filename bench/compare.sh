#!/bin/bash
# compare.sh - issue #8's side-by-side figures in one go, every number from
# salvo-bench on the same machine in the same session (root; ports 25, 53):
#   1. plain sinks: salvod, the loopback limit and Postfix, interleaved, R runs
#      each, on the target workload (N x 4 KiB, 1 recipient, 100 domains by MX);
#   2. salvod against the realistic sink profile (20 ms replies, 2% 451, 1% 550,
#      20 connections per IP);
#   3. salvod with DKIM rsa-2048 (each run next to its own openssl speed
#      reference) and ed25519;
#   4. salvod with 100 KB messages;
#   5. latency at half of salvod's median rate from step 1 (paced injection);
#   6. issue #14's long tail (bench/long_tail.sh: 20,000 messages to 100 domain
#      queues, no rollup, Postfix's smtp-sink and smtp-source) beside the rolled-up
#      config, Postfix and the loopback limit.
# JSON for each step lands in OUT (default bench/out/). Usage:
#   bench/compare.sh [N] [RUNS] [BUILD_DIR]
set -euo pipefail
N=${1:-100000}; R=${2:-3}; B=${3:-build}
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}; mkdir -p "$OUT"
SB=$B/bench/salvo-bench
step() { echo; echo "== $1"; shift; "$SB" "$@"; }
step "plain sinks: salvod, loopback limit, Postfix" -n "$N" --target salvod,loopback,postfix --runs "$R" --json "$OUT/plain.json"
step "realistic sinks: salvod" -n "$N" --profile realistic --runs "$R" --json "$OUT/realistic.json"
# DKIM rsa-2048 against the machine's signing rate measured just before each run
# (openssl speed on all cores): the VM's speed drifts by tens of percent within a
# session, so a reference taken at another moment says little.
echo; echo "== DKIM rsa-2048: salvod, each run right after openssl speed -multi $(nproc) rsa2048"
for r in $(seq 1 "$R"); do
	openssl speed -multi "$(nproc)" -seconds 3 rsa2048 2>/dev/null |
		awk '/^rsa 2048/ {print $(NF-1)}' >"$OUT/dkim-rsa-$r.speed"
	"$SB" -n "$N" --dkim rsa --runs 1 --json "$OUT/dkim-rsa-$r.json"
done
/usr/bin/python3 - "$OUT" "$R" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
rows = []
for r in range(1, runs + 1):
    rate = json.load(open("%s/dkim-rsa-%d.json" % (out, r)))["medians"]["salvod"]["e2e_rate"]
    speed = float(open("%s/dkim-rsa-%d.speed" % (out, r)).read())
    rows.append((rate, speed, rate / speed))
    print("DKIM run %d: salvod %.0f msg/s, openssl speed %.0f sign/s just before: %.0f%%" % (r, rate, speed, 100 * rate / speed))
ratios = sorted(x[2] for x in rows)
print("DKIM median: salvod %.0f msg/s, openssl %.0f sign/s, ratio %.0f%% (%.0f-%.0f%%)" % (
    statistics.median(x[0] for x in rows), statistics.median(x[1] for x in rows),
    100 * statistics.median(ratios), 100 * ratios[0], 100 * ratios[-1]))
PY
step "DKIM ed25519: salvod" -n "$N" --dkim ed25519 --runs "$R" --json "$OUT/dkim-ed25519.json"
step "100 KB messages: salvod" -n $((N / 5)) --size 102400 --runs "$R" --json "$OUT/100k.json"
half=$(/usr/bin/python3 -c "import json;print(int(json.load(open('$OUT/plain.json'))['medians']['salvod']['e2e_rate']/2))")
step "latency at half the maximum rate ($half msg/s): salvod" -n "$N" --rate "$half" --runs "$R" --json "$OUT/half-rate.json"
echo; echo "== long tail (issue #14): 100 domain queues, smtp-sink receivers, smtp-source injector"
OUT="$OUT" bench/long_tail.sh 20000 "$R" "$B"
