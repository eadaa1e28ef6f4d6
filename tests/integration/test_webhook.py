#!/usr/bin/python3
"""test_webhook.py - accounting webhooks (<acct-webhook NAME>) against real receivers.

  outage    a Python http.server receiver answers 503 to its first 6 POSTs, is then down
            (connection refused) for about 2 s, while 3,000 messages (10% to a mailbox
            the sink refuses with 550 5.1.1) are blasted and salvod is kill -9'd
            mid-blast and restarted three times (once while the receiver is down,
            twice while it answers slowly, so batches are in flight; the third time
            by the fault hook SALVO_ACCT_EXIT_AFTER_BATCHES, right after a spool
            commit and before its records reach the log): every delivery
            and bounce record of the log arrives, in log order; every POST's
            X-Salvo-Signature verifies (HMAC-SHA256 of the body) and carries the
            configured header; every event has its 32-hex event_id; only delivery and
            bounce records are sent (records filter); batches hold at most max-batch;
            events acknowledged (2xx) twice are only those acknowledged shortly before
            a kill (in flight at it, at most one batch per kill) or records written to
            the log twice (the outbox's re-flush at a start: the same line); every
            acknowledged recipient is finished at the sink, has its record in the log
            and its event at the receiver: none missing (records commit with their
            outcome in the spool's outbox)
  https     an HTTPS receiver with a self-signed test certificate: a webhook with
            `ca-file CERT` delivers, one trusting only the system CAs fails with a TLS
            error (counted, retried, never acknowledged, flagged stalled after 3 in a
            row), one with `tls-verify no` delivers; each has its own position;
            GET /api/v1/webhooks, /metrics and `salvoctl webhooks` show the figures and
            `salvoctl top` flags the stalled one; a clean restart re-sends nothing
  resume    a saved position inside an archive (acct.jsonl when saved): read on through
            the later archives and acct.jsonl in order, a line cut by a crash skipped
            and counted; a position whose file is gone goes on with the next file; a
            position inside a line (a reused inode number) reads that file from its start;
            an unreadable position file sends the whole log again
  config    malformed <acct-webhook> blocks: salvod --check-config exits 2 naming
            the file, line and problem
"""

import hashlib
import hmac
import json
import os
import random
import re
import ssl
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
from harness import Fail, Injected, log, wait_until

SENDER = "hooks@senders.test"
SECRET = "s3cr3t-itest"
DOMAINS = ["w%d.test" % i for i in range(6)]
RECV = ("127.0.0.1", 18080)
EVENT_ID = re.compile(r"^[0-9a-f]{32}$")


class Receiver:
    """An http.server receiver: records every POST (time, status it answered, body,
    whether the signature verified, headers). fail_first: answer 503 to that many."""

    def __init__(self, addr, fail_first=0, tls_cert=None):
        self.addr, self.tls_cert = addr, tls_cert
        self.lock = threading.Lock()
        self.posts = []             # dicts: t, status, events, sig_ok, auth, hook
        self.fail_left = fail_first
        self.delay = 0.0            # seconds before each answer (keeps batches in flight)
        self.srv = None

    running = []                    # receivers still up (a failed test leaves its own)

    def up(self):
        for r in list(Receiver.running):
            r.down()
        rcv = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                sig_ok = hmac.compare_digest(self.headers.get("X-Salvo-Signature", ""), want)
                with rcv.lock:
                    status = 200
                    if rcv.fail_left > 0:
                        rcv.fail_left -= 1
                        status = 503
                    try:
                        events = json.loads(body)
                    except ValueError:
                        events, status = None, 400
                    rcv.posts.append({"t": time.monotonic(), "status": status, "events": events, "sig_ok": sig_ok,
                                      "auth": self.headers.get("Authorization"),
                                      "hook": self.headers.get("X-Salvo-Webhook"),
                                      "ctype": self.headers.get("Content-Type")})
                time.sleep(rcv.delay)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.srv = ThreadingHTTPServer(self.addr, H)
        self.srv.daemon_threads = True
        if self.tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls_cert)
            self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        Receiver.running.append(self)
        return self

    def down(self):
        if self.srv:
            self.srv.shutdown()
            self.srv.server_close()
            self.srv = None
            Receiver.running.remove(self)

    def acked_events(self):
        """[(time, event)] of every event in a POST answered 2xx, in arrival order."""
        with self.lock:
            return [(p["t"], e) for p in self.posts if p["status"] == 200 for e in p["events"]]


def webhook_block(name, url, extra=""):
    return ("<acct-webhook %s>\n    url %s\n    records delivery,bounce\n    max-batch 50\n    max-delay 200ms\n"
            "    secret %s\n    timeout 2s\n    retry-max 2s\n    header Authorization \"Bearer abc\"\n%s"
            "</acct-webhook>\n" % (name, url, SECRET, extra))


def api(path):
    with urllib.request.urlopen("http://%s:%d%s" % (harness.SALVOD_HTTP + (path,)), timeout=5) as r:
        return r.read().decode()


def _msg(i, rcpt):
    body = ("From: <%s>\r\nTo: <%s>\r\nSubject: hook %d\r\nMessage-ID: <w%d@itest>\r\n\r\n" % (SENDER, rcpt, i, i))
    body += ("y" * 70 + "\r\n") * 4
    return Injected("w%d" % i, SENDER, [rcpt], body.encode())


def test_outage_kill9(env):
    n = 3000
    env.dns(mx={d: [(10, "mx.sink.test")] for d in DOMAINS + ["senders.test"]}, a={"mx.sink.test": "127.0.0.2"},
            check=[("w0.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25", dump=False,
                   extra_args=["--fault", r"at=rcpt,match=^bad,reply=550 5.1.1 user unknown"])
    rcv = Receiver(RECV, fail_first=6).up()
    d = env.salvod_daemon(default_domain={"retry-after": "1s", "max-smtp-out": "4", "max-msg-per-connection": "100"},
                          extra=webhook_block("backend", "http://%s:%d/hook" % RECV))
    d.start()
    acked, done = [], threading.Event()

    def blast():
        pending, attempt = list(range(n)), 0
        deadline = time.monotonic() + 180
        try:
            while pending and time.monotonic() < deadline:
                batch = [_msg(i, "%s%d-a%d@%s" % ("bad" if i % 10 == 3 else "u", i, attempt, DOMAINS[i % 6]))
                         for i in pending]
                harness.inject(batch, threads=4, per_conn=100, timeout=max(5, deadline - time.monotonic()))
                acked.extend(m for m in batch if m.error is None)
                pending = [i for i, m in zip(pending, batch) if m.error is not None]
                attempt += 1
                if pending:
                    time.sleep(0.3)
        finally:
            done.set()
    t = threading.Thread(target=blast, daemon=True)
    t.start()
    rng = random.Random(20)
    kills, extra = [], []
    time.sleep(0.5)
    rcv.down()                                  # after its 503s: down for a while
    log("receiver down")
    for k in range(3):
        if k < 2:
            time.sleep(rng.uniform(0.5, 1.2))
            d.kill9()
        else:
            # the third "kill" is the worst moment: salvod's fault hook _exit(137)s
            # right after a spool commit, before that batch's records reach the log
            # (should the blast be over already, a few more messages make the batches)
            deadline = time.monotonic() + 20
            while d.alive() and time.monotonic() < deadline:
                m = _msg(n + len(extra), "x%d@%s" % (len(extra), DOMAINS[0]))
                harness.inject([m], threads=1, per_conn=1, timeout=5)
                extra.append(m)
                time.sleep(0.1)
            if d.alive():
                raise Fail("SALVO_ACCT_EXIT_AFTER_BATCHES did not stop salvod")
            d.kill9()   # reaps it
            if d.proc.returncode != 137:
                raise Fail("salvod exited with %r, not at the fault hook (137)" % d.proc.returncode)
        kills.append(time.monotonic())
        time.sleep(0.2)
        if k == 1:
            os.environ["SALVO_ACCT_EXIT_AFTER_BATCHES"] = "8"
        try:
            d.start()
        finally:
            os.environ.pop("SALVO_ACCT_EXIT_AFTER_BATCHES", None)
        if k == 0:
            time.sleep(1.0)
            rcv.delay = 0.02     # slow answers: the next kills find batches in flight
            rcv.up()
            log("receiver up again")
    t.join(200)
    log("%d kills; %d of %d messages acknowledged; blast done: %s" % (len(kills), len(acked), n, done.is_set()))
    if len(acked) != n:
        raise Fail("only %d of %d messages acknowledged" % (len(acked), n))

    expected = {m.rcpts[0].lower() for m in acked + extra if m.error is None and m.reply and m.reply[0] == 250}

    def finished():
        """Recipients the sink took (250) or refused for good (550)."""
        out = set()
        for e in sink.events():
            if e["ev"] == "msg":
                out.update(r.lower() for r in e["rcpt_to"])
            elif e["ev"] == "reply" and e.get("at") == "rcpt" and e.get("code") == 550:
                out.add(e["subject"].lower())
        return out
    if not wait_until(lambda: expected <= finished(), 120, interval=0.5, what="every acknowledged recipient"):
        missing = sorted(expected - finished())
        raise Fail("%d acknowledged recipients never reached the sink, e.g. %r" % (len(missing), missing[:5]))
    # Every finished recipient has its record: records commit with the outcome they
    # report (the spool's outbox), so a kill -9 between the commit and the log write
    # loses none (the next start writes them).
    def logged():
        return {r["recipient"].lower() for r in d.acct() if r["type"] in ("delivery", "bounce")}
    if not wait_until(lambda: expected <= logged(), 20, interval=0.5, what="a record for every finished recipient"):
        unlogged = sorted(expected - logged())
        raise Fail("%d acknowledged recipients were finished at the sink but have no delivery or bounce record "
                   "in the accounting log, e.g. %r" % (len(unlogged), unlogged[:3]))
    # the webhook's promise: every delivery and bounce record of the log arrives
    recs = [r for r in d.acct() if r["type"] in ("delivery", "bounce")]
    if not wait_until(lambda: {r["event_id"] for r in recs} <= {e["event_id"] for _, e in rcv.acked_events()}, 60,
                      interval=0.5, what="every logged delivery and bounce event at the receiver"):
        got = {e["event_id"] for _, e in rcv.acked_events()}
        missing = [r for r in recs if r["event_id"] not in got]
        raise Fail("%d logged delivery/bounce events never arrived, e.g. %r" % (len(missing), missing[:2]))
    arrived = {e["recipient"].lower() for _, e in rcv.acked_events()}
    if not expected <= arrived:
        raise Fail("%d finished recipients have no event at the receiver, e.g. %r"
                   % (len(expected - arrived), sorted(expected - arrived)[:3]))
    time.sleep(1.0)
    events = rcv.acked_events()
    with rcv.lock:
        posts = list(rcv.posts)
    bounced = [r for r in recs if r["type"] == "bounce"]
    log("%d POSTs (%d answered 503, the rest while up); %d events acknowledged for %d log records "
        "(%d bounces)" % (len(posts), sum(p["status"] == 503 for p in posts), len(events), len(recs), len(bounced)))
    if len(bounced) < n // 10 or not any(r["recipient"].startswith("bad") for r in bounced):
        raise Fail("expected %d bounces in the log, found %d" % (n // 10, len(bounced)))
    # headers, signatures, batch sizes
    bad = [p for p in posts if not p["sig_ok"] or p["auth"] != "Bearer abc" or p["hook"] != "backend"
           or not (p["ctype"] or "").startswith("application/json")]
    if bad:
        raise Fail("%d POSTs with a bad signature or missing headers, e.g. %r" % (len(bad), {k: bad[0][k] for k in (
            "sig_ok", "auth", "hook", "ctype")}))
    if any(len(p["events"]) > 50 or not p["events"] for p in posts):
        raise Fail("a batch outside 1..max-batch (50): %r" % [len(p["events"]) for p in posts][:20])
    if sum(p["status"] == 503 for p in posts) != 6:
        raise Fail("the receiver's 503s were not all retried")
    # every event: its event_id; only the chosen types; nothing that is not in the log
    # A record may be in the log twice (written again at a start from the outbox: the
    # kill came before it was known written), always as the same record.
    log_ids, reflushed = {}, set()
    for i, r in enumerate(recs):
        if r["event_id"] in log_ids:
            if r != recs[log_ids[r["event_id"]]]:
                raise Fail("two different log records share an event_id: %r" % r)
            reflushed.add(r["event_id"])
        else:
            log_ids[r["event_id"]] = i
    for _, e in events:
        if not EVENT_ID.match(e.get("event_id", "")):
            raise Fail("an event without a proper event_id: %r" % e)
        if e["type"] not in ("delivery", "bounce"):
            raise Fail("records delivery,bounce but a %r event arrived" % e["type"])
        if e["event_id"] not in log_ids:
            raise Fail("an event that is not in the log: %r" % e)
    # in order: first acknowledgements follow the log's order
    first, order = {}, []
    for ts, e in events:
        if e["event_id"] not in first:
            first[e["event_id"]] = ts
            order.append(log_ids[e["event_id"]])
    if order != sorted(order):
        bad_at = next(i for i in range(1, len(order)) if order[i] < order[i - 1])
        raise Fail("events out of log order at the %d-th first arrival" % bad_at)
    # duplicates only from batches in flight at a kill, or records the outbox wrote again
    count = {}
    for _, e in events:
        count[e["event_id"]] = count.get(e["event_id"], 0) + 1
    dups = [eid for eid, c in count.items() if c > 1]
    near_kill = [eid for eid in dups if any(k - 3.0 <= first[eid] <= k for k in kills)]
    other = [eid for eid in dups if eid not in near_kill and eid not in reflushed]
    log("%d events acknowledged twice (in flight at %d kills, or written again from the outbox: %d records)"
        % (len(dups), len(kills), len(reflushed)))
    if other:
        raise Fail("%d events were acknowledged twice without a kill just after them or a second log line"
                   % len(other))
    if len(dups) - len(reflushed & set(dups)) > len(kills) * 50:
        raise Fail("%d duplicates: more than one batch per kill" % len(dups))


def _cert(env):
    key, crt = os.path.join(env.dir, "recv.key"), os.path.join(env.dir, "recv.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "2", "-subj", "/CN=receiver.itest", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return crt, key


def test_https(env):
    env.dns(mx={d: [(10, "mx.sink.test")] for d in DOMAINS}, a={"mx.sink.test": "127.0.0.2"},
            check=[("w0.test", "MX")])
    env.salvo_sink("sink", "127.0.0.2:25", dump=False)
    crt, key = _cert(env)
    rcv = Receiver(RECV, tls_cert=(crt, key)).up()
    url = "https://%s:%d/hook" % RECV
    d = env.salvod_daemon(extra=webhook_block("trusted", url, "    ca-file %s\n" % crt) +
                          webhook_block("untrusted", url) +
                          webhook_block("noverify", url, "    tls-verify no\n"))
    d.start()
    msgs = [_msg(i, "t%d@%s" % (i, DOMAINS[i % 6])) for i in range(40)]
    if len(harness.inject(msgs, threads=2)) != 40:
        raise Fail("injection failed")

    def per_hook():
        out = {}
        for ts, e in rcv.acked_events():
            pass
        with rcv.lock:
            for p in rcv.posts:
                if p["status"] == 200:
                    out.setdefault(p["hook"], []).extend(e["recipient"] for e in p["events"])
        return out
    want = {m.rcpts[0] for m in msgs}
    wait_until(lambda: all(want <= set(per_hook().get(h, [])) for h in ("trusted", "noverify")), 30,
               what="every event at both TLS webhooks that trust the receiver")
    got = per_hook()
    for h in ("trusted", "noverify"):
        if not want <= set(got.get(h, [])):
            raise Fail("webhook %s: %d of %d events arrived over HTTPS" % (h, len(set(got.get(h, [])) & want), len(want)))
    if got.get("untrusted"):
        raise Fail("a webhook without the test CA got through: %d events" % len(got["untrusted"]))

    def stats():
        return {w["name"]: w for w in json.loads(api("/api/v1/webhooks"))["webhooks"]}
    wait_until(lambda: stats()["untrusted"]["failures"] >= 3 and stats()["untrusted"]["stalled"], 30,
               what="the untrusted webhook failing 3 times and flagged stalled")
    wait_until(lambda: stats()["trusted"]["backlog_bytes"] == 0, 5, what="the trusted webhook's backlog at 0")
    st = stats()
    log("api: %r" % {k: (v["records_sent"], v["failures"], v["stalled"], v["last_error"]) for k, v in st.items()})
    u = st["untrusted"]
    if u["records_sent"] != 0 or not u["last_error"] or "certificate" not in u["last_error"].lower():
        raise Fail("untrusted webhook: %r" % u)
    if st["trusted"]["records_sent"] < 40 or st["trusted"]["failures"] != 0 or st["trusted"]["stalled"]:
        raise Fail("trusted webhook: %r" % st["trusted"])
    if u["backlog_bytes"] <= 0 or st["trusted"]["backlog_bytes"] != 0:
        raise Fail("backlog: untrusted %d (want > 0), trusted %d (want 0)" % (u["backlog_bytes"],
                                                                           st["trusted"]["backlog_bytes"]))
    m = api("/metrics")
    for line in ('salvo_webhook_stalled{webhook="untrusted"} 1', 'salvo_webhook_stalled{webhook="trusted"} 0',
                 'salvo_webhook_failures_total{webhook="trusted"} 0'):
        if line not in m:
            raise Fail("/metrics lacks %r" % line)
    if not re.search(r'salvo_webhook_records_sent_total\{webhook="trusted"\} (\d+)', m):
        raise Fail("/metrics lacks salvo_webhook_records_sent_total for trusted")
    out = subprocess.run([harness.SALVOCTL, "--api", "http://%s:%d" % harness.SALVOD_HTTP, "webhooks"],
                         capture_output=True, text=True, timeout=10)
    if out.returncode != 0 or "untrusted" not in out.stdout or "STALLED" not in out.stdout:
        raise Fail("salvoctl webhooks (%d): %s %s" % (out.returncode, out.stdout, out.stderr))
    log("salvoctl webhooks:\n" + out.stdout.rstrip())
    # salvoctl top flags it (in tmux, like test_salvoctl.py)
    session = "salvohooks%d" % os.getpid()
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "30",
                    "env SALVO_API=http://%s:%d LANG=C.UTF-8 %s top" % (harness.SALVOD_HTTP + (harness.SALVOCTL,))],
                   check=True)
    try:
        def screen():
            return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                  text=True).stdout
        if not wait_until(lambda: "webhook untrusted STALLED" in screen(), 8, what="the stall flag in top"):
            raise Fail("salvoctl top does not flag the stalled webhook:\n" + screen())
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session])
    # positions survive a restart: nothing is sent again by the webhooks that were acknowledged
    before = {h: len(v) for h, v in per_hook().items()}
    d.stop()
    d.start()
    time.sleep(1.5)
    after = {h: len(v) for h, v in per_hook().items()}
    if before != after:
        raise Fail("a clean restart re-sent acknowledged events: %r -> %r" % (before, after))


def _line(i, typ):
    mid = "%016x" % (0x1000 + i)
    return ('{"time":"2026-12-07T00:00:%02d.000Z","type":"%s","id":"%s","recipient":"r%d@w0.test",'
            '"event_id":"%s%016x"}\n' % (i % 60, typ, mid, i, mid, i))


def test_resume(env):
    """The position file points into an archive that was acct.jsonl when it was saved:
    the sender reads on from there through the later archives and acct.jsonl, skips a
    line cut by a crash, sends nothing before the position; a position whose file is
    gone resumes at the next file by name."""
    env.dns(mx={"w0.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"}, check=[("w0.test", "MX")])
    spool = os.path.join(env.dir, "spool")
    logd, state = os.path.join(spool, "log"), os.path.join(spool, "webhooks")
    os.makedirs(logd)
    os.makedirs(state)
    types = ["delivery", "bounce", "reception", "transient"]
    files = [("acct-20261207T000000.000Z.jsonl", range(0, 30)), ("acct-20261207T000001.000Z.jsonl", range(30, 50)),
             ("acct.jsonl", range(50, 60))]
    for name, rng in files:
        with open(os.path.join(logd, name), "w") as f:
            for i in rng:
                f.write(_line(i, types[i % 4]))
                if i == 40:
                    f.write('{"time":"2026-12-07T00:00:41.000Z","type":"delivery","id":"00000000000010\n\n')
    a = os.path.join(logd, files[0][0])
    off = len("".join(_line(i, types[i % 4]) for i in range(10)))
    with open(os.path.join(state, "backend.pos"), "w") as f:
        f.write(("%d %d acct.jsonl" % (os.stat(a).st_ino, off)).ljust(255) + "\n")
    rcv = Receiver(RECV).up()
    d = env.salvod_daemon(extra=webhook_block("backend", "http://%s:%d/hook" % RECV))
    d.start()
    want = [i for i in range(10, 60) if types[i % 4] in ("delivery", "bounce")]

    def got():
        return [int(e["recipient"][1:].split("@")[0]) for _, e in rcv.acked_events()]
    wait_until(lambda: len(got()) >= len(want), 15, what="the records after the position")
    time.sleep(0.5)
    if got() != want:
        raise Fail("resumed with %r, want %r" % (got(), want))
    def st():
        return json.loads(api("/api/v1/webhooks"))["webhooks"][0]
    # the figures are refreshed once a second
    if not wait_until(lambda: st()["skipped_lines"] == 1 and st()["records_sent"] == len(want)
                      and st()["backlog_bytes"] == 0, 5, what="the API's figures"):
        raise Fail("api after resume: %r" % st())
    d.stop()
    # the saved file is gone: on with the next one by name, from its start
    os.unlink(a)
    with open(os.path.join(state, "backend.pos"), "w") as f:
        f.write(("999999999 77 %s" % files[0][0]).ljust(255) + "\n")
    with rcv.lock:
        rcv.posts.clear()
    d.start()
    want = [i for i in range(30, 60) if types[i % 4] in ("delivery", "bounce")]
    wait_until(lambda: len(got()) >= len(want), 15, what="the records of the next file")
    time.sleep(0.5)
    if got() != want:
        raise Fail("after its file was deleted, resumed with %r, want %r" % (got(), want))
    d.stop()
    # a position that is not after a line (another file with the old inode number): that
    # file from its start
    b = os.path.join(logd, files[1][0])
    with open(os.path.join(state, "backend.pos"), "w") as f:
        f.write(("%d 5 %s" % (os.stat(b).st_ino, files[1][0])).ljust(255) + "\n")
    with rcv.lock:
        rcv.posts.clear()
    d.start()
    wait_until(lambda: len(got()) >= len(want), 15, what="the records of the file from its start")
    time.sleep(0.5)
    if got() != want:
        raise Fail("a position inside a line: resumed with %r, want %r" % (got(), want))
    d.stop()
    # an unreadable position file: the whole log again (duplicates rather than a loss)
    with open(os.path.join(state, "backend.pos"), "w") as f:
        f.write("garbage\n")
    with rcv.lock:
        rcv.posts.clear()
    d.start()
    wait_until(lambda: len(got()) >= len(want), 15, what="the whole log after a garbled position file")
    time.sleep(0.5)
    if got() != want:
        raise Fail("a garbled position file: resumed with %r, want %r" % (got(), want))


CONFIG_ERRORS = [
    ("<acct-webhook a>\n  records delivery\n</acct-webhook>\n", "needs a url"),
    ("<acct-webhook a>\n  url ftp://x/\n</acct-webhook>\n", "invalid URL"),
    ("<acct-webhook a>\n  url http://x/\n  records delivery,bogus\n</acct-webhook>\n", "unknown record type"),
    ("<acct-webhook a>\n  url http://x/\n  max-batch 0\n</acct-webhook>\n", "max-batch"),
    ("<acct-webhook a>\n  url http://x/\n  max-batch 20000\n</acct-webhook>\n", "max-batch"),
    ("<acct-webhook a>\n  url http://x/\n  timeout 0s\n</acct-webhook>\n", "timeout"),
    ("<acct-webhook a>\n  url http://x/\n  header Bad:Name x\n</acct-webhook>\n", "invalid header name"),
    ("<acct-webhook a>\n  url http://x/\n  header X-Y \"open\n</acct-webhook>\n", "unterminated"),
    ("<acct-webhook a>\n  url http://x/\n  header X-Salvo-Signature forged\n</acct-webhook>\n", "set by salvod"),
    ("<acct-webhook a>\n  url http://x/\n  tls-verify maybe\n</acct-webhook>\n", "tls-verify"),
    ("<acct-webhook a>\n  url http://x/\n  frobnicate 1\n</acct-webhook>\n", "unknown directive"),
    ("<acct-webhook a>\n  url http://x/\n</acct-webhook>\n<acct-webhook a>\n  url http://y/\n</acct-webhook>\n",
     "duplicate <acct-webhook a>"),
    ("<acct-webhook a/b>\n  url http://x/\n</acct-webhook>\n", "invalid name"),
    ("url http://x/\n", "only valid inside <acct-webhook>"),
]


def test_config(env):
    spool = os.path.join(env.dir, "spool")
    for text, want in CONFIG_ERRORS:
        path = env.write("bad.conf", "spool-dir %s\n%s" % (spool, text))
        r = subprocess.run([env.salvod, "--check-config", "-c", path], capture_output=True, text=True, timeout=10)
        if r.returncode != 2 or want not in r.stderr or "bad.conf:" not in r.stderr:
            raise Fail("config %r: exit %d, stderr %r (want 2 and %r)" % (text, r.returncode, r.stderr, want))
    good = env.write("good.conf", "spool-dir %s\n%s" % (spool, webhook_block("ok", "https://esp.example/h")))
    r = subprocess.run([env.salvod, "--check-config", "-c", good], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise Fail("a valid block was refused: %s" % r.stderr)


def test_https_env(env):
    """An HTTPS receiver whose CA salvod learns from SSL_CERT_FILE (as curl and OpenSSL
    do), the block having no ca-file: the events arrive, verified."""
    env.dns(mx={d: [(10, "mx.sink.test")] for d in DOMAINS}, a={"mx.sink.test": "127.0.0.2"},
            check=[("w0.test", "MX")])
    env.salvo_sink("sink", "127.0.0.2:25", dump=False)
    crt, key = _cert(env)
    rcv = Receiver(RECV, tls_cert=(crt, key)).up()
    old = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = crt
    try:
        d = env.salvod_daemon(extra=webhook_block("envtrust", "https://%s:%d/hook" % RECV))
        d.start()
    finally:
        if old is None:
            del os.environ["SSL_CERT_FILE"]
        else:
            os.environ["SSL_CERT_FILE"] = old
    msgs = [_msg(i, "e%d@%s" % (i, DOMAINS[i % 6])) for i in range(10)]
    if len(harness.inject(msgs, threads=1)) != 10:
        raise Fail("injection failed")
    want = {m.rcpts[0] for m in msgs}

    def got():
        with rcv.lock:
            return {e["recipient"] for p in rcv.posts if p["status"] == 200 for e in p["events"]}
    if not wait_until(lambda: want <= got(), 20, what="the events over HTTPS trusted by SSL_CERT_FILE"):
        raise Fail("SSL_CERT_FILE: %d of 10 events arrived" % len(want & got()))
    log("SSL_CERT_FILE trusted the receiver's CA: 10 events over HTTPS")


if __name__ == "__main__":
    harness.main([test_outage_kill9, test_https, test_https_env, test_resume, test_config])
