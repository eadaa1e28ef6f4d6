#!/usr/bin/python3
"""test_restart.py - what salvod commits just before a kill -9 goes out exactly once,
with VERP on (bounce-domain set: one transaction per recipient, its own return path).

  acked-verp   the MX hosts are down, so nothing can be in flight. SMTP clients inject
               and salvod is killed with SIGKILL mid-stream, at the 80th 250, while an
               HTTP injection of per-recipient content (several store batches) runs as
               well (cut off after some of its batches committed, after a smaller one
               was answered); then the sinks come up and salvod restarts on the same spool. Every
               acknowledged recipient (SMTP 250, or counted in an HTTP success_count)
               arrives exactly once, with a VERP return path; no recipient at all (even
               one committed but cut off before its acknowledgement) arrives twice; the
               log holds one delivery record per delivered recipient.
  stop-inject  SIGTERM while a 20,000-recipient HTTP injection is being stored: the
               client still gets its answer (200, the stored count, every other recipient
               listed as not stored), salvod exits 0 promptly, and after a restart exactly
               the stored recipients arrive, once each
  recovering   a spool holding 60,000 recipients due tomorrow is recovered while SMTP
               clients connect and inject as fast as the listener lets them: nothing
               committed while salvod starts (recover, then listen) may be queued twice,
               so each of those recipients arrives exactly once (each run's mail is
               delivered before the next stop). 32 workers (their start-up is the window
               between a listener that opens too early and recovery) and four restarts.
"""

import json
import re
import smtplib
import threading
import time
import urllib.request

import harness
from harness import Fail, Injected, find_records, log

VERP = re.compile(r"b-[0-9a-f]{16}-\d+-[0-9a-f]{12}@bounces\.salvo\.test")
HOSTS = {"mx-a.test": "127.0.0.2", "mx-b.test": "127.0.0.3"}
DOMAINS = {"r%d.test" % j: [(10, ["mx-a.test", "mx-b.test"][j % 2])] for j in range(4)}
SENDER = "restart@senders.test"


def _msg(mid, rcpts):
    body = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@itest>\r\n\r\n" % (SENDER, rcpts[0], mid, mid)
            + ("restart %s\r\n" % mid) * 20)
    return Injected(mid, SENDER, rcpts, body.encode())


def _http(path, body, timeout=60):
    req = urllib.request.Request("http://%s:%d%s" % (harness.SALVOD_HTTP + (path,)), data=json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def _arrivals(env):
    """{recipient: [Arrival]} over every sink."""
    seen = {}
    for a in env.arrivals():
        for r in a.rcpt_to:
            seen.setdefault(r.lower(), []).append(a)
    return seen


def test_acked_verp(env):
    env.dns(mx=DOMAINS, a=HOSTS, check=[("r0.test", "MX")])
    for ip in HOSTS.values():
        harness.assert_port_free((ip, 25), "the sinks, which must be down at first")
    d = env.salvod_daemon(default_domain={"retry-after": "1s", "bounce-after": "1h"},
                          extra="bounce-domain bounces.salvo.test\n")
    d.start()
    msgs = [_msg("a%03d" % i, ["a%03dr%d@r%d.test" % (i, k, (i + k) % 4) for k in range(1 + i % 3)])
            for i in range(200)]
    http = {}

    def inject_http(tag, n):
        rc = [{"email": "%s%05d@r%d.test" % (tag, i, i % 4), "substitutions": {"n": str(i)}} for i in range(n)]
        try:
            http[tag] = _http("/api/inject/v1", {
                "envelope_sender": SENDER, "recipients": rc,
                "content": "From: <%s>\r\nTo: {{email}}\r\nSubject: n {{n}}\r\n\r\nnumber {{n}}\r\n" % SENDER})
        except OSError as e:        # killed before the answer: nothing counts as acknowledged
            http[tag] = str(e)
    inject_http("h", 600)           # answered: all 600 durable
    if not isinstance(http["h"], dict) or http["h"]["success_count"] != 600:
        raise Fail("the first HTTP injection: %r" % http["h"])
    killed = threading.Event()
    lock = threading.Lock()
    count = [0]

    def on_ack(m):
        with lock:
            count[0] += 1
            if count[0] == 80 and not killed.is_set():
                killed.set()
                d.kill9()
    # cut off by the kill after some of its batches committed
    ht = threading.Thread(target=inject_http, args=("big", 20000), daemon=True)
    ht.start()
    harness.inject(msgs, threads=4, per_conn=10, timeout=30, on_ack=on_ack)
    ht.join(60)
    if not killed.is_set():
        raise Fail("all 200 messages were acknowledged before the 80th 250 killed salvod?")
    acked = [m for m in msgs if m.error is None]
    expected = {r.lower() for m in acked for r in m.rcpts}
    expected |= {"h%05d@r%d.test" % (i, i % 4) for i in range(600)}
    if isinstance(http.get("big"), dict):
        expected |= {"big%05d@r%d.test" % (i, i % 4) for i in range(http["big"]["success_count"])}
    log("%d SMTP messages and 600 HTTP recipients acknowledged before the kill (%d recipients); the big HTTP "
        "injection: %s" % (len(acked), len(expected), http.get("big")))
    if find_records(d.acct(), type="delivery"):
        raise Fail("deliveries logged while every MX was down")

    env.salvo_sink("sinkA", "127.0.0.2:25")
    env.salvo_sink("sinkB", "127.0.0.3:25")
    d.start()
    seen = harness.wait_for_recipients(env, expected, timeout=60, settle=3.0)
    problems = []
    missing = sorted(expected - set(seen))
    if missing:
        problems.append("%d of %d acknowledged recipients never arrived, e.g. %s" % (len(missing), len(expected),
                                                                                   missing[:5]))
    dups = sorted(r for r, a in seen.items() if len(a) > 1)
    if dups:
        problems.append("%d recipients arrived more than once, e.g. %s from %r" % (
            len(dups), dups[0], [a.mail_from for a in seen[dups[0]]]))
    notverp = sorted(r for r, arrs in seen.items() for a in arrs if not VERP.fullmatch(a.mail_from))
    if notverp:
        problems.append("%d arrivals without a VERP return path, e.g. %s" % (len(notverp), notverp[:3]))
    recs = harness.wait_for_records(env, lambda rs: len(find_records(rs, type="delivery")) >= len(seen), 10,
                                    what="the delivery records")
    deliv = {}
    for r in find_records(recs, type="delivery"):
        deliv.setdefault(r["recipient"].lower(), []).append(r)
    twice = sorted(r for r, v in deliv.items() if len(v) > 1)
    if twice:
        problems.append("%d recipients have several delivery records, e.g. %s" % (len(twice), twice[:3]))
    if set(deliv) != set(seen):
        problems.append("delivery records and arrivals differ: %r" % sorted(set(deliv) ^ set(seen))[:5])
    if problems:
        raise Fail("\n  - " + "\n  - ".join(problems))
    log("all %d acknowledged recipients arrived once (%d committed in all, %d of them from the cut-off HTTP "
        "injection; none twice), each with its own return path"
        % (len(expected), len(seen), len([r for r in seen if r.startswith("big")])))


def test_stop_inject(env):
    env.dns(mx=DOMAINS, a=HOSTS, check=[("r0.test", "MX")])
    d = env.salvod_daemon(default_domain={"retry-after": "1s", "bounce-after": "1h"},
                          extra="bounce-domain bounces.salvo.test\n")
    d.start()
    n = 20000
    res = {}

    def post():
        rc = [{"email": "t%05d@r%d.test" % (i, i % 4), "substitutions": {"n": str(i)}} for i in range(n)]
        try:
            res["reply"] = _http("/api/inject/v1", {
                "envelope_sender": SENDER, "recipients": rc,
                "content": "From: <%s>\r\nTo: {{email}}\r\nSubject: n {{n}}\r\n\r\nnumber {{n}}\r\n" % SENDER})
        except Exception as e:       # noqa: BLE001 - reported below
            res["error"] = repr(e)
    t = threading.Thread(target=post, daemon=True)
    t.start()
    harness.wait_until(lambda: len(find_records(d.acct(), type="reception")) >= 500, 30,
                       what="the first batches stored")
    t0 = time.monotonic()
    status = d.stop()
    took = time.monotonic() - t0
    t.join(10)
    if status != 0:
        raise Fail("salvod exited with %r after SIGTERM during an injection" % status)
    if "reply" not in res:
        raise Fail("the injection got no answer before salvod stopped: %s" % res.get("error"))
    r = res["reply"]
    stored = r["success_count"]
    if not 500 <= stored < n or r["fail_count"] != n - stored or len(r["failed_recipients"]) != n - stored:
        raise Fail("answer after SIGTERM: success %d, fail %d (%d listed); want a part stored, the rest listed"
                   % (stored, r["fail_count"], len(r["failed_recipients"])))
    if not all("not stored" in e for e in r["errors"]):
        raise Fail("the unstored recipients' errors do not say so: %r" % r["errors"][:2])
    logged = {x["recipient"] for x in find_records(d.acct(), type="reception")}
    want = {"t%05d@r%d.test" % (i, i % 4) for i in range(stored)}
    if logged != want:
        raise Fail("reception records (%d) are not the %d recipients answered as stored" % (len(logged), stored))
    env.salvo_sink("sinkA", "127.0.0.2:25")
    env.salvo_sink("sinkB", "127.0.0.3:25")
    harness.wait_until(lambda: not harness.port_open(harness.SALVOD_SMTP), 10, what="the old listener gone")
    d.start()
    seen = harness.wait_for_recipients(env, want, timeout=90, settle=2.0)
    extra = set(seen) - want
    dups = [x for x, a in seen.items() if len(a) > 1]
    if set(seen) != want or dups:
        raise Fail("after the restart: %d of %d stored arrived, %d others, %d twice" % (
            len(want & set(seen)), len(want), len(extra), len(dups)))
    log("SIGTERM during a %d-recipient injection: answered with %d stored and %d listed as not stored; "
        "salvod stopped in %.1fs; the stored ones arrived once each after the restart" % (n, stored, n - stored, took))


class Hammer:
    """SMTP clients that inject one-recipient messages as soon as (and as long as) a
    listener answers; records every acknowledged recipient."""

    def __init__(self, tag, threads=3):
        self.tag, self.acked, self.stop = tag, [], threading.Event()
        self.lock = threading.Lock()
        self.n = 0
        self.ts = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]
        for t in self.ts:
            t.start()

    def next_rcpt(self):
        with self.lock:
            self.n += 1
            return "%s-%05d@r%d.test" % (self.tag, self.n, self.n % 4)

    def run(self):
        while not self.stop.is_set():
            try:
                s = smtplib.SMTP(*harness.SALVOD_SMTP, local_hostname="hammer.client", timeout=10)
            except OSError:
                time.sleep(0.002)
                continue
            try:
                s.ehlo()
                while not self.stop.is_set():
                    r = self.next_rcpt()
                    s.mail(SENDER)
                    s.rcpt(r)
                    code, _ = s.data(_msg(r.split("@")[0], [r]).data)
                    if code == 250:
                        with self.lock:
                            self.acked.append(r)
            except (smtplib.SMTPException, OSError):
                pass
            finally:
                s.close()

    def finish(self):
        self.stop.set()
        for t in self.ts:
            t.join(15)
        return set(self.acked)


def test_recovering(env):
    env.dns(mx=DOMAINS, a=HOSTS, check=[("r0.test", "MX")])
    env.salvo_sink("sinkA", "127.0.0.2:25")
    env.salvo_sink("sinkB", "127.0.0.3:25")
    cfg = harness.salvod_config(env.dir + "/spool", default_domain={"retry-after": "1s", "bounce-after": "2d"},
                                extra="bounce-domain bounces.salvo.test\n")
    d = env.salvod_daemon(config_text=cfg.replace("worker-threads   2", "worker-threads   32"))
    d.start()
    tomorrow = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
    for k in range(6):                 # one stored body each: a big spool, quickly
        rc = [{"email": "later%d-%05d@r%d.test" % (k, i, i % 4)} for i in range(10000)]
        got = _http("/api/inject/v1", {"envelope_sender": SENDER, "recipients": rc, "deliver_after": tomorrow,
                                       "content": "From: <%s>\r\nSubject: later\r\n\r\nlater\r\n" % SENDER})
        if got["success_count"] != 10000:
            raise Fail("filling the spool: %r" % got)
    expected, dups = set(), {}
    for run in range(4):
        d.stop()
        # the dead salvod's listener goes with its io_uring rings, asynchronously
        harness.wait_until(lambda: not harness.port_open(harness.SALVOD_SMTP), 10, what="the old listener gone")
        h = Hammer("s%d" % run)
        t0 = time.monotonic()
        d.start()
        time.sleep(1.0)
        got = h.finish()
        log("restart %d: ready after %.2fs; %d messages acknowledged during and just after start-up"
            % (run + 1, time.monotonic() - t0 - 1.0, len(got)))
        if not got:
            raise Fail("no message was acknowledged during start-up")
        expected |= got
        # all delivered before the next stop, so a stop cutting a delivery short
        # (at-least-once) cannot pass for a duplicate made at start-up
        seen = harness.wait_for_recipients(env, expected, timeout=60, settle=1.0)
        dups.update((r, len(a)) for r, a in seen.items() if len(a) > 1)
        if dups:
            break
    missing = sorted(expected - set(seen))
    early = sorted(r for r in seen if r.startswith("later"))
    if missing or dups or early:
        raise Fail("%d acknowledged recipients missing (e.g. %s), %d delivered more than once (e.g. %s), "
                   "%d of the recovered ones delivered a day early" % (len(missing), missing[:3], len(dups),
                                                                     sorted(dups.items())[:3], len(early)))
    log("%d recipients injected while 60,000 were being recovered: each arrived exactly once" % len(expected))


if __name__ == "__main__":
    harness.main([test_acked_verp, test_stop_inject, test_recovering])
