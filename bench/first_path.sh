#!/bin/bash
# first_path.sh - rough end-to-end rate of salvod's first delivery path.
# dnsmasq serves MX records for d0.test..d99.test -> four salvo-sinks on
# 127.0.0.2-5:25; ten Postfix smtp-source clients (5 sessions each) inject
# N messages of 4 KiB over SMTP into salvod; we time until the sinks have all.
# Usage: bench/first_path.sh [BUILD_DIR] [N]    (root: the sinks bind port 25)
# Stops everything it started, by PID. The full harness is issue #8's salvo-bench.
set -u
B=${1:-build}; N=${2:-20000}
W=$(mktemp -d /tmp/salvo-firstpath.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
{
  echo "port=20053"; echo "listen-address=127.0.0.1"; echo "bind-interfaces"
  echo "no-resolv"; echo "no-hosts"; echo "local=/test/"
  for j in 0 1 2 3; do echo "host-record=mx$j.sink.test,127.0.0.$((2+j))"; done
  for i in $(seq 0 99); do echo "mx-host=d$i.test,mx$((i%4)).sink.test,10"; done
} > "$W/dns.conf"
dnsmasq --keep-in-foreground --conf-file="$W/dns.conf" & PIDS+=($!)
for j in 2 3 4 5; do "$B/tools/salvo-sink/salvo-sink" -l 127.0.0.$j:25 --stats "$W/st$j.json" 2>/dev/null & PIDS+=($!); done
printf 'spool-dir %s/spool\nsmtp-listener 127.0.0.1:22525\ndns-server 127.0.0.1:20053\n' "$W" > "$W/s.conf"
"$B/engine/salvod" -c "$W/s.conf" 2>"$W/salvod.err" & SPID=$!; PIDS+=($SPID)
sleep 1
delivered() { python3 -c "import json,sys;print(sum(json.load(open(f'$W/st{j}.json'))['messages'] for j in (2,3,4,5)))" 2>/dev/null || echo 0; }
t0=$(date +%s.%N); INJ=()
for i in $(seq 0 9); do smtp-source -s 5 -m $((N/10)) -l 4096 -f me@src.test -t u$i@d$((i*7)).test 127.0.0.1:22525 & INJ+=($!); done
wait "${INJ[@]}"; t1=$(date +%s.%N)
for _ in $(seq 1 600); do [ "$(delivered)" -ge "$N" ] && break; sleep 0.1; done; t2=$(date +%s.%N)
cpu=$(awk '{print ($14+$15)/100}' /proc/$SPID/stat); rss=$(awk '/VmHWM/{print $2}' /proc/$SPID/status)
awk -v n="$N" -v d="$(delivered)" -v a="$t0" -v b="$t1" -v c="$t2" -v cpu="$cpu" -v rss="$rss" 'BEGIN{
  printf "messages %d delivered %d; injection %.2f s (%.0f msg/s); end to end %.2f s (%.0f msg/s); salvod CPU %.2f s (%.3f ms/msg), peak RSS %d KiB\n",
  n, d, b-a, n/(b-a), c-a, d/(c-a), cpu, cpu*1000/n, rss }'
