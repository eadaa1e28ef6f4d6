#!/bin/sh
# many_domains.sh - issue #15's long-tail check at full size: 100,000 recipients at
# 100,000 distinct nonexistent domains (null sender: no DSNs), then idle; prints
# salvod's RssAnon before, at the peak and after the idle queues were freed, and
# how fast GET /api/v1/queues answers. The suite runs the same test with 20,000
# (tests/integration/test_memory.py). Needs root (network namespace, sinks on :25).
#   bench/many_domains.sh [BUILD_DIR] [N]
set -e
B=${1:-build}
N=${2:-100000}
cd "$(dirname "$0")/.."
SALVOD=$B/engine/salvod SALVO_SINK=$B/tools/salvo-sink/salvo-sink SALVO_MANY_DOMAINS=$N \
	exec /usr/bin/python3 tests/integration/test_memory.py many_domains
