#!/bin/sh
# Build and run the parser fuzzers (libFuzzer + ASan/UBSan, clang) for a
# bounded time each: tests/fuzz/run_parsers.sh [SECONDS] [BUILD_DIR]
# Seeds are the corpus/NAME directories; new inputs the fuzzer finds go to a
# scratch copy, so the repository's corpus only changes by hand. Exit status
# non-zero when a fuzzer finds a crash, a leak or a hang (the input is kept
# in BUILD_DIR/fuzz/).
set -eu
SECS=${1:-60}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
mkdir -p "${2:-/tmp/salvo-fuzz}/fuzz"
OUT=$(cd "${2:-/tmp/salvo-fuzz}/fuzz" && pwd)   # absolute: the fuzzers run from there
CC=${CC:-clang}
FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -std=gnu11 -I$ROOT"
build() { # name sources...
    name=$1; shift
    $CC $FLAGS -o "$OUT/$name" "$HERE/$name.c" "$@"
}
build fuzz_smtp_cmd "$ROOT/net/smtp_cmd.c"
build fuzz_smtp_reply "$ROOT/net/smtp_reply.c" "$ROOT/net/smtp_cmd.c" "$ROOT/core/json_str.c"
# every config_*.c: a new directive file cannot be left out of the fuzzer
build fuzz_config "$ROOT"/core/config_*.c "$ROOT"/core/pcre_re.c -lpcre2-8
build fuzz_bounce_report "$ROOT/engine/bounce_report.c" "$ROOT/engine/bounce_text.c" "$ROOT/engine/bounce_category.c" \
    "$ROOT/core/pcre_re.c" -lpcre2-8 -lcrypto
build fuzz_inject "$ROOT/engine/inject_check.c" "$ROOT/engine/inject_render.c" "$ROOT/engine/mime_build.c" "$ROOT/net/smtp_cmd.c" \
    "$ROOT/core/json_str.c" -ljansson -lcrypto
status=0
for name in fuzz_smtp_cmd fuzz_smtp_reply fuzz_config fuzz_bounce_report fuzz_inject; do
    seeds="$HERE/corpus/${name#fuzz_}"
    work="$OUT/$name.corpus"
    rm -rf "$work"; mkdir -p "$work"
    cp "$seeds"/* "$work"/ 2>/dev/null || true
    echo "== $name for ${SECS}s"
    if ! (cd "$OUT" && "./$name" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
            -max_len=8192 "$work" >"$OUT/$name.log" 2>&1); then
        echo "FAIL: $name (see $OUT/$name.log)"; tail -30 "$OUT/$name.log"; status=1
    else
        grep -E "^#[0-9]+.*DONE|Done [0-9]+ runs" "$OUT/$name.log" | tail -1
    fi
done
exit $status
