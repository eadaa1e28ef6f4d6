#!/bin/bash
# long_tail.sh - issue #14's long-tail workload, side by side in one go (root):
#   N x 4 KiB messages, one recipient each, to 100 domains d0.test..d99.test whose MX
#   records point at 4 receivers (d_i -> mx<i%4>.sink.test = 127.0.0.<2+i%4>:25);
#   receivers: Postfix's smtp-sink; injector: Postfix's smtp-source, 20 sessions at
#   a time, each one domain, PER messages (the job list goes round the domains, so
#   20 domains fill at once and every domain gets N/100 messages in N/(100 PER)
#   visits). Targets, interleaved, R runs each:
#     salvod     every domain its own queue (no rollup), max-smtp-out 20 (default)
#     rollup     the same salvod with <mx-rollup-list>: one queue per receiver
#     postfix    bench/peer_postfix.sh (20 connections per destination)
#     loopback   smtp-source straight at the receivers (the machine's limit)
#   Rate: N / (first injection to last delivery), from salvod's accounting log and
#   Postfix's maillog. Sessions opened: TcpActiveOpens of the run's own network
#   namespace, less the injector's sessions (so the same count for salvod and
#   Postfix); salvod's salvo_connections_opened_total is printed beside it. Peak:
#   the most sessions to port 25 established at once (ss, every 100 ms). salvod's
#   CPU (utime + stime) per 1,000 messages. inject_seconds: until the injector's
#   last 250.
# Runs itself in a private network namespace (ports 25, 53 free; nothing else
# counted). Results: a table and medians on stdout, TSV in $OUT/long_tail.tsv.
#   bench/long_tail.sh [N] [RUNS] [BUILD_DIR]
set -euo pipefail
N=${1:-20000}; R=${2:-3}; B=${3:-build}
if [ -z "${LONG_TAIL_NETNS:-}" ]; then
	exec unshare -n env LONG_TAIL_NETNS=1 "$0" "$@"
fi
ip link set lo up
cd "$(dirname "$0")/.."
ROOT=$PWD
case $B in /*) ;; *) B=$ROOT/$B ;; esac
OUT=${OUT:-bench/out}; mkdir -p "$OUT"
D=100; SINKS=4; SESS=20; PER=${PER:-100}; SIZE=4096
TARGETS=${TARGETS:-salvod rollup postfix loopback}
K=$((N / (D * PER))); [ "$K" -ge 1 ] || { echo "N must be at least $((D * PER))" >&2; exit 2; }
N=$((K * D * PER))
WD=$(mktemp -d /tmp/salvo-longtail.XXXXXX)
chmod 755 "$WD" # Postfix runs as postfix below it
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	"$ROOT/bench/peer_postfix.sh" stop "$WD/postfix" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap cleanup EXIT

# --- DNS and receivers (for the whole session) --------------------------------
{
	echo "local=/test/"
	for j in $(seq 0 $((SINKS - 1))); do echo "host-record=mx$j.sink.test,127.0.0.$((2 + j))"; done
	for i in $(seq 0 $((D - 1))); do echo "mx-host=d$i.test,mx$((i % SINKS)).sink.test,10"; done
} >"$WD/dnsmasq.conf"
dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces --listen-address=127.0.0.1 \
	--port=53 --user=root --conf-file="$WD/dnsmasq.conf" 2>"$WD/dnsmasq.err" &
PIDS+=($!)
for j in $(seq 0 $((SINKS - 1))); do
	smtp-sink -u nobody -h "mx$j.sink.test" "127.0.0.$((2 + j)):25" 1024 2>"$WD/sink$j.err" &
	PIDS+=($!)
done

wait_port() { # host port seconds
	for _ in $(seq 1 $(($3 * 20))); do
		(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}
for j in $(seq 0 $((SINKS - 1))); do wait_port "127.0.0.$((2 + j))" 25 5; done

active_opens() { awk '/^Tcp: [0-9]/ {print $6}' /proc/net/snmp; }
# the most sessions to port 25 open at once, sampled every 100 ms into $1
sample_peak() {
	local peak=0 n
	echo 0 >"$1"
	while :; do
		n=$(ss -Htn state established '( dport = :25 )' | wc -l)
		if [ "$n" -gt "$peak" ]; then peak=$n; echo "$peak" >"$1"; fi
		sleep 0.1
	done
}
now() { date +%s.%N; }

# job list: "-t u@dI.test HOST:PORT", round the domains K times
jobs() { # $1 = mta HOST:PORT, or "direct"
	for k in $(seq 1 "$K"); do
		for i in $(seq 0 $((D - 1))); do
			if [ "$1" = direct ]; then echo "-t u@d$i.test 127.0.0.$((2 + i % SINKS)):25"
			else echo "-t u@d$i.test $1"; fi
		done
	done
}
inject() { # $1 as for jobs
	jobs "$1" | xargs -P "$SESS" -L 1 smtp-source -s 1 -d -m "$PER" -l "$SIZE" -N -M client.bench.test \
		-f bench@src.bench.test
}

salvod_conf() { # $1 = dir, $2 = rollup|none
	{
		echo "host-name        bench.salvo.test"
		echo "spool-dir        $1/spool"
		echo "smtp-listener    127.0.0.1:22525"
		echo "http-listener    127.0.0.1:28025"
		echo "dns-server       127.0.0.1:53"
		if [ "$2" = rollup ]; then
			echo "<mx-rollup-list>"
			for j in $(seq 0 $((SINKS - 1))); do echo "  mx mx$j.sink.test sink$j.rollup"; done
			echo "</mx-rollup-list>"
		fi
		echo "<source 127.0.0.1>"; echo "    always-allow-relaying yes"; echo "</source>"
		echo "<domain *>"; echo "    retry-after 15m"; echo "    bounce-after 1h"; echo "</domain>"
	} >"$1/salvod.conf"
}

delivered() { # $1 = target, $2 = dir
	case $1 in
	salvod | rollup) grep -c '"type":"delivery"' "$2/spool/log/acct.jsonl" 2>/dev/null || true ;;
	postfix) grep -c 'status=sent' "$2/postfix/maillog" 2>/dev/null || true ;;
	esac
}

printf "target\trun\tmessages\tdelivered\tseconds\trate\topened\topened_per_1000\tsalvod_counter\tpeak\tsalvod_cpu_ms_per_1000\tinject_seconds\n" >"$OUT/long_tail.tsv"
run_one() { # $1 = target, $2 = run
	local t=$1 r=$2 dir="$WD/$1-$2" pid="" addr t0 t1 got=0 a0 a1 opened ctr="" spid peak cpu="-" ti
	mkdir -p "$dir"
	case $t in
	salvod | rollup)
		salvod_conf "$dir" "$([ "$t" = rollup ] && echo rollup || echo none)"
		"$B/engine/salvod" -c "$dir/salvod.conf" 2>"$dir/salvod.err" &
		pid=$!
		wait_port 127.0.0.1 22525 10
		addr=127.0.0.1:22525 ;;
	postfix)
		"$ROOT/bench/peer_postfix.sh" start "$dir/postfix" >/dev/null 2>"$dir/postfix.err"
		wait_port 127.0.0.1 2526 10
		addr=127.0.0.1:2526 ;;
	loopback) addr=direct ;;
	esac
	sample_peak "$dir/peak" &
	spid=$!
	a0=$(active_opens)
	t0=$(now)
	inject "$addr" >"$dir/inject.out" 2>&1 || echo "$t run $r: injection errors, see $dir/inject.out" >&2
	ti=$(now)
	if [ "$t" = loopback ]; then
		got=$N
	else
		for _ in $(seq 1 6000); do
			got=$(delivered "$t" "$dir")
			[ "$got" -ge "$N" ] && break
			sleep 0.1
		done
	fi
	t1=$(now)
	a1=$(active_opens)
	kill "$spid"; wait "$spid" 2>/dev/null || true
	peak=$(cat "$dir/peak")
	opened=$((a1 - a0 - K * D))
	[ "$t" = loopback ] && opened=0
	if [ -n "$pid" ]; then
		ctr=$(curl -s http://127.0.0.1:28025/metrics | awk '/^salvo_connections_opened_total / {print $2}')
		cpu=$(awk -v n="$N" -v hz="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); print int(($12 + $13) * 1000 / hz * 1000 / n)}' "/proc/$pid/stat")
		kill "$pid"; wait "$pid" || true
	fi
	[ "$t" = postfix ] && "$ROOT/bench/peer_postfix.sh" stop "$dir/postfix" 2>>"$dir/postfix.err"
	/usr/bin/python3 - "$t" "$r" "$N" "$got" "$t0" "$t1" "$opened" "${ctr:--}" "$peak" "$cpu" "$ti" >>"$OUT/long_tail.tsv" <<'PY'
import sys
t, r, n, got, t0, t1, opened, ctr, peak, cpu, ti = sys.argv[1:]
s = float(t1) - float(t0)
print("%s\t%s\t%s\t%s\t%.2f\t%.0f\t%s\t%.1f\t%s\t%s\t%s\t%s" % (t, r, n, got, s, int(got) / s, opened,
      1000.0 * int(opened) / int(n), ctr, peak, cpu, "%.2f" % (float(ti) - float(t0))))
PY
	tail -1 "$OUT/long_tail.tsv"
}

echo "long tail: $N messages x $SIZE B, $D domains (own queues), $SINKS smtp-sinks, smtp-source $SESS sessions x $PER messages; $R runs; workdir $WD"
for r in $(seq 1 "$R"); do
	for t in $TARGETS; do run_one "$t" "$r"; done
done
/usr/bin/python3 - "$OUT/long_tail.tsv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
med = {}
for t in ("salvod", "rollup", "postfix", "loopback"):
    rs = [r for r in rows if r["target"] == t]
    if not rs:
        continue
    rates = sorted(float(r["rate"]) for r in rs)
    opened = statistics.median(float(r["opened_per_1000"]) for r in rs)
    peak = statistics.median(int(r["peak"]) for r in rs)
    cpu = [float(r["salvod_cpu_ms_per_1000"]) for r in rs if r["salvod_cpu_ms_per_1000"] != "-"]
    med[t] = statistics.median(rates)
    print("%-8s median %6.0f msg/s (%s), sessions opened per 1,000 messages %.1f, peak open %d%s%s" % (
        t, med[t], " ".join("%.0f" % x for x in rates), opened, peak,
        ", salvod CPU %.0f ms per 1,000" % statistics.median(cpu) if cpu else "",
        "" if t == "loopback" else "; incomplete runs: %d" % sum(r["delivered"] != r["messages"] for r in rs)))
for other, fmt in (("postfix", "%.1fx"), ("rollup", "%.2f"), ("loopback", "%.2f")):
    if "salvod" in med and other in med:
        print(("salvod / %-8s " + fmt) % (other, med["salvod"] / med[other]))
PY
