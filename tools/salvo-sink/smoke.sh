#!/bin/sh
# smoke.sh - quick end-to-end check of salvo-sink (not part of the test suite).
#
#   tools/salvo-sink/smoke.sh [PATH/TO/salvo-sink]      (default: build/tools/salvo-sink/salvo-sink)
#
# Starts the sink on a free port of 127.0.0.1 with --stats, --dump and all fault
# options, talks to it with Python's smtplib (and Postfix smtp-source when
# installed), checks replies, dump files and counts, then SIGTERMs it and checks
# the exit status and the final stats. Exit 0 = pass, 1 = fail, 77 = cannot run.
set -eu

SINK=${1:-build/tools/salvo-sink/salvo-sink}
[ -x "$SINK" ] || { echo "smoke: no executable $SINK" >&2; exit 77; }
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

TMP=$(mktemp -d)
SINK_PID=
cleanup() {
    [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
mkdir "$TMP/dump"

"$SINK" -l 127.0.0.1:0 --hostname smoke.test --stats "$TMP/stats.json" --dump "$TMP/dump" \
    --pid-file "$TMP/pid" --defer-first '^later@' --reject '^nobody@' \
    --defer-data-first '^datalater@' 2>"$TMP/stderr" &
SINK_PID=$!
i=0
while [ ! -s "$TMP/pid" ]; do
    i=$((i + 1))
    if [ $i -gt 50 ] || ! kill -0 "$SINK_PID" 2>/dev/null; then
        echo "smoke: sink did not start:" >&2; cat "$TMP/stderr" >&2; exit 1
    fi
    sleep 0.1
done
PORT=$(sed -n 's/^salvo-sink: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/stderr")

"$PY" - "$PORT" "$TMP" <<'EOF'
import json, os, smtplib, sys, time
port, tmp = int(sys.argv[1]), sys.argv[2]
body = b"Subject: smoke\r\n\r\n.dot line\r\n..two dots\r\nend\r\n"

s = smtplib.SMTP("127.0.0.1", port, local_hostname="smoke.client")
code, ehlo = s.ehlo()
assert code == 250 and b"PIPELINING" in ehlo and b"SMTPUTF8" in ehlo, ehlo
assert s.sendmail("from@x.test", ["a@y.test", "b@y.test"], body) == {}
try:
    s.sendmail("from@x.test", ["later@y.test"], body); raise SystemExit("no 451 on first RCPT")
except smtplib.SMTPRecipientsRefused as e:
    assert e.recipients["later@y.test"][0] == 451
refused = s.sendmail("from@x.test", ["later@y.test", "nobody@y.test"], body)
assert refused == {"nobody@y.test": (550, b"5.1.1 no such user")}, refused
try:
    s.sendmail("from@x.test", ["datalater@y.test"], body); raise SystemExit("no 451 at DATA")
except smtplib.SMTPDataError as e:
    assert e.smtp_code == 451
assert s.sendmail("from@x.test", ["datalater@y.test"], body) == {}
assert s.docmd("BOGUS")[0] == 500
s.quit()

dump = os.path.join(tmp, "dump")
for seq in (1, 2, 3):
    meta = json.load(open(f"{dump}/{seq}.json"))
    eml = open(f"{dump}/{seq}.eml", "rb").read()
    assert eml == body and meta["size"] == len(eml), (eml, meta)   # smtplib stuffs, the sink unstuffs
    assert meta["helo"] == "smoke.client" and meta["client_ip"] == "127.0.0.1", meta
assert json.load(open(f"{dump}/2.json"))["rcpt_to"] == ["later@y.test"]
assert not os.path.exists(f"{dump}/4.json")

time.sleep(0.5)
st = json.load(open(os.path.join(tmp, "stats.json")))
assert (st["messages"], st["recipients"]) == (3, 4), st
assert st["clients"]["127.0.0.1"]["helo"] == ["smoke.client"], st
print("smoke: smtplib ok")
EOF

if [ -x /usr/sbin/smtp-source ]; then
    /usr/sbin/smtp-source -s 10 -m 1000 -l 2048 -d "127.0.0.1:$PORT"
    sleep 0.5
    "$PY" -c 'import json,sys; st=json.load(open(sys.argv[1])); assert st["messages"] == 1003, st; print("smoke: smtp-source ok")' "$TMP/stats.json"
    rm -rf "$TMP/dump"/*
fi

kill -TERM "$SINK_PID"
rc=0; wait "$SINK_PID" || rc=$?
SINK_PID=
[ $rc -eq 0 ] || { echo "smoke: sink exited $rc" >&2; cat "$TMP/stderr" >&2; exit 1; }
[ ! -e "$TMP/pid" ] || { echo "smoke: pid file left behind" >&2; exit 1; }
[ "$(wc -l < "$TMP/stderr")" -eq 1 ] || { echo "smoke: unexpected stderr:" >&2; cat "$TMP/stderr" >&2; exit 1; }
echo "smoke: pass"
