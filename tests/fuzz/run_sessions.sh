#!/bin/sh
# Build and run the SMTP session fuzzer (libFuzzer + ASan/UBSan, clang) for a
# bounded time: tests/fuzz/run_sessions.sh [SECONDS] [BUILD_DIR]
# It drives whole sessions through net/smtp_server.c on a real io_uring loop
# over loopback TCP (see fuzz_smtp_session.c), one process, one input at a
# time. Seeds are corpus/smtp_session; new inputs go to a scratch copy.
# Exit status non-zero on a crash, a leak, a hang or a failed check (the
# input is kept in BUILD_DIR/fuzz/). Exits 0 with a note when io_uring is
# not available here.
set -eu
SECS=${1:-60}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
mkdir -p "${2:-/tmp/salvo-fuzz}/fuzz"
OUT=$(cd "${2:-/tmp/salvo-fuzz}/fuzz" && pwd)
CC=${CC:-clang}
FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -std=gnu11 -I$ROOT"
name=fuzz_smtp_session
$CC $FLAGS -o "$OUT/$name" "$HERE/$name.c" "$ROOT/net/smtp_server.c" "$ROOT/net/smtp_cmd.c" \
    "$ROOT/net/dot_stuff.c" "$ROOT/net/loop.c" "$ROOT/net/tls.c" "$ROOT/net/conn_limit.c" "$ROOT/net/addr_window.c" "$ROOT/net/smtp_trace.c" \
    -luring -lssl -lcrypto
work="$OUT/$name.corpus"
rm -rf "$work"; mkdir -p "$work"
cp "$HERE/corpus/smtp_session"/* "$work"/ 2>/dev/null || true
echo "== $name for ${SECS}s"
if ! (cd "$OUT" && "./$name" -max_total_time="$SECS" -timeout=30 -rss_limit_mb=2048 \
        -max_len=8192 "$work" >"$OUT/$name.log" 2>&1); then
    if grep -q "io_uring needed" "$OUT/$name.log"; then
        echo "SKIP: $name: io_uring not available"; exit 0
    fi
    echo "FAIL: $name (see $OUT/$name.log)"; tail -30 "$OUT/$name.log"; exit 1
fi
grep -E "^#[0-9]+.*DONE|Done [0-9]+ runs" "$OUT/$name.log" | tail -1
