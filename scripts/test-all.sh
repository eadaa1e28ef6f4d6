#!/bin/sh
# Install dependencies, build, and run every test: once normally, once with
# AddressSanitizer + UndefinedBehaviorSanitizer. Exits non-zero on any failure.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
meson setup build --wipe >/dev/null 2>&1 || meson setup build
meson compile -C build
SALVO_REQUIRE_PEERS=1 meson test -C build --print-errorlogs
meson setup build-asan -Dsanitize=true --wipe >/dev/null 2>&1 || meson setup build-asan -Dsanitize=true
meson compile -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    SALVO_REQUIRE_PEERS=1 meson test -C build-asan --print-errorlogs
# valgrind (memcheck, leaks) over the unit tests of the pure modules, then salvod itself
# under valgrind through integration tests (delivery, relay, TLS+AUTH, suppression, API):
# a definite leak or an invalid access fails them. Memcheck's uninitialised-value
# checks are off for salvod: valgrind does not model what io_uring writes into buffers.
meson test -C build --print-errorlogs --wrapper "valgrind --quiet --leak-check=full --error-exitcode=99" \
    test_config test_units test_acct_log test_smtp_cmd test_smtp_reply test_dot_stuff test_spool test_spool_writer \
    test_suppress test_conn_limit test_conn_window test_dns test_rollup test_sched test_throttle test_msg_headers test_verp test_bounce_report test_dsn \
    test_webhook test_config_webhook test_reload test_outbox test_dsn_params
SALVOD_WRAPPER="valgrind --fair-sched=yes --undef-value-errors=no --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99" \
    SALVO_REQUIRE_PEERS=1 meson test -C build --print-errorlogs \
    integration-delivery integration-relay integration-tls-auth integration-suppression integration-api
# Fuzz the parsers for a bounded time each (libFuzzer, clang): crashes, leaks
# and hangs fail the run.
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
for f in tests/fuzz/run_*.sh; do
    [ -x "$f" ] && "$f" "$FUZZ_SECONDS" build-fuzz
done
