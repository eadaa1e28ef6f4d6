#!/usr/bin/python3
"""test_deliverability.py - the bulk MTA's delivery policy, seen from the receiving side.

  rotation   a pool of two virtual MTAs (source 127.0.0.12 / HELO mta1.itest and
             127.0.0.13 / mta2.itest): both sources and both HELO names reach the
             sink, each with 40-60% of the messages; per source IP never more than
             max-smtp-out sessions at once, never more than max-msg-per-connection
             messages in a session, never faster than max-msg-rate (plus its burst)
  rollup     two domains whose MX hosts match one `mx` rollup pattern share the
             rollup queue's max-smtp-out, counted across both MX hosts
  backoff    a sink answering "421 ... try again later" puts the queue into backoff:
             its delivery rate drops to backoff-max-msg-rate, and after
             backoff-to-normal-after of quiet it is back to normal (and fast)
  headers    X-Virtual-MTA picks the pool (or one virtual MTA) for a trusted source and
             X-Job names the campaign; both headers are gone at the receiver; a source
             without process-x-virtual-mta cannot choose
  idle       sessions with nothing to do stay open for idle-timeout, then QUIT
  actions    reply-pattern actions: disable-source-ip takes a source IP out of a queue
             until reenable-after (the other one carries the mail meanwhile, the API
             shows it disabled); bounce-rcpt bounces on a 4xx; skip-mx moves to the next MX
  retry      retry-after 2s: a recipient answered 451 once is retried 2-4 s later; a
             retry-after list is followed step by step; with bounce-after 6s and a
             permanent 451 the sender gets a DSN with "Action: failed" after about 6 s
Sink behaviour comes from salvo-sink's --fault rules and its --events log.
"""

import datetime
import http.client
import json
import random
import time

import harness
from harness import Fail, find_records, log, wait_until

SENDER = "owner@senders.test"


def _msgs(rng, prefix, rcpts_by_msg):
    return harness.make_msgs(rng, prefix, rcpts_by_msg, SENDER, 600)




def _msg_events(sinks):
    return sorted((e for s in sinks for e in s.events() if e["ev"] == "msg"), key=lambda e: e["time"])


def _api(method, path, ok=(200,)):
    c = http.client.HTTPConnection(harness.SALVOD_HTTP[0], harness.SALVOD_HTTP[1], timeout=5)
    try:
        c.request(method, path)
        r = c.getresponse()
        body = json.loads(r.read() or b"null")
        if r.status not in ok:
            raise Fail("%s %s: %d %r" % (method, path, r.status, body))
        return r.status, body
    finally:
        c.close()


def _queue_size(name):
    st, q = _api("GET", "/api/v1/queues/" + name, ok=(200, 404))
    return q.get("size", 0) if st == 200 else 0


def _peak_concurrency(sinks, key):
    """Max sessions open at once per key(conn event), pairing each sink's conn and
    close events by connection id."""
    evs = []
    for s in sinks:
        for e in s.events():
            if e["ev"] == "conn":
                evs.append((e["time"], 1, key(e), (s.name, e["conn"])))
            elif e["ev"] == "close":
                evs.append((e["time"], -1, None, (s.name, e["conn"])))
    evs.sort(key=lambda x: (x[0], x[1]))   # a close at the same instant goes first
    which, open_now, peak = {}, {}, {}
    for t, d, k, c in evs:
        if d == 1:
            which[c] = k
        else:
            k = which.pop(c, None)
            if k is None:
                continue
        open_now[k] = open_now.get(k, 0) + d
        peak[k] = max(peak.get(k, 0), open_now[k])
    return peak


def _max_over_rate(times, per_s, burst):
    """How far the event times exceed burst + per_s * window for any window (<= 0 ok)."""
    worst = -1e9
    for i in range(len(times)):
        for j in range(i, len(times)):
            n = j - i + 1
            allowed = burst + per_s * (times[j] - times[i])
            worst = max(worst, n - allowed)
    return worst


def _time(rec):
    return datetime.datetime.fromisoformat(rec["time"].replace("Z", "+00:00")).timestamp()


# --------------------------------------------------------------------------
def test_rotation(env):
    rng = random.Random(3)
    env.dns(mx={"rot.test": [(10, "mx.rot.test")], "senders.test": [(10, "mx.senders.test")]},
            a={"mx.rot.test": "127.0.0.2", "mx.senders.test": "127.0.0.6"},
            check=[("rot.test", "MX")])
    sink = env.salvo_sink("sinkRot", "127.0.0.2:25", dump=False)
    env.salvo_sink("sinkSenders", "127.0.0.6:25", dump=False)
    extra = "\n".join([
        "<virtual-mta mta1>", "  smtp-source-host 127.0.0.12 mta1.itest", "</virtual-mta>",
        "<virtual-mta mta2>", "  smtp-source-host 127.0.0.13 mta2.itest", "</virtual-mta>",
        "<virtual-mta-pool blast>", "  virtual-mta mta1", "  virtual-mta mta2", "</virtual-mta-pool>",
    ])
    d = env.salvod_daemon(
        sources={"127.0.0.1": {"always-allow-relaying": "yes", "default-virtual-mta": "blast"}},
        domains={"rot.test": {"max-smtp-out": "2", "max-msg-per-connection": "5", "max-msg-rate": "30/s"}},
        extra=extra)
    d.start()
    n = 300
    msgs = _msgs(rng, "rot", [["u%d@rot.test" % i] for i in range(n)])
    harness.inject_all(msgs, threads=4, per_conn=25, timeout=60)
    if not wait_until(lambda: len(_msg_events([sink])) >= n, 60, what="all messages at the sink"):
        raise Fail("only %d of %d messages arrived" % (len(_msg_events([sink])), n))
    evs = _msg_events([sink])
    by_ip = {}
    for e in evs:
        by_ip.setdefault(e["client"], []).append(e)
    if set(by_ip) != {"127.0.0.12", "127.0.0.13"}:
        raise Fail("source IPs seen at the sink: %r" % sorted(by_ip))
    helos = {ip: {e["helo"] for e in es} for ip, es in by_ip.items()}
    if helos != {"127.0.0.12": {"mta1.itest"}, "127.0.0.13": {"mta2.itest"}}:
        raise Fail("HELO names per source IP: %r" % helos)
    for ip, es in by_ip.items():
        share = len(es) / n
        log("%s: %d messages (%.0f%%)" % (ip, len(es), 100 * share))
        if not 0.40 <= share <= 0.60:
            raise Fail("%s carried %.0f%% of the messages, want 40-60%%" % (ip, 100 * share))
    peak = _peak_concurrency([sink], key=lambda e: e["client"])
    log("peak sessions per source IP: %r" % peak)
    if max(peak.values()) > 2:
        raise Fail("more than max-smtp-out 2 sessions at once: %r" % peak)
    per_conn = max(e["n_in_conn"] for e in evs)
    if per_conn > 5:
        raise Fail("%d messages in one session, max-msg-per-connection is 5" % per_conn)
    for ip, es in by_ip.items():
        over = _max_over_rate([e["time"] for e in es], 30.0, 30)
        span = es[-1]["time"] - es[0]["time"]
        log("%s: %d messages in %.2f s (%.1f/s), worst excess over 30/s + burst 30: %.2f"
            % (ip, len(es), span, len(es) / span if span else 0, over))
        if over > 1.0:
            raise Fail("%s exceeded max-msg-rate 30/s (+burst) by %.1f messages" % (ip, over))
    recs = d.acct()
    deliv = find_records(recs, type="delivery")
    if {r.get("vmta") for r in deliv} != {"mta1", "mta2"} or \
       {r.get("source_ip") for r in deliv} != {"127.0.0.12", "127.0.0.13"}:
        raise Fail("delivery records name vmtas %r and source IPs %r" %
                   ({r.get("vmta") for r in deliv}, {r.get("source_ip") for r in deliv}))


def test_headers_and_idle(env):
    rng = random.Random(7)
    env.dns(mx={"hdr.test": [(10, "mx.hdr.test")]}, a={"mx.hdr.test": "127.0.0.2"}, check=[("hdr.test", "MX")])
    sink = env.salvo_sink("sinkHdr", "127.0.0.2:25")
    extra = "\n".join([
        "<virtual-mta mta1>", "  smtp-source-host 127.0.0.12 mta1.itest", "</virtual-mta>",
        "<virtual-mta mta2>", "  smtp-source-host 127.0.0.13 mta2.itest", "</virtual-mta>",
        "<virtual-mta-pool blast>", "  virtual-mta mta1", "  virtual-mta mta2", "</virtual-mta-pool>",
    ])
    d = env.salvod_daemon(
        sources={"127.0.0.1": {"always-allow-relaying": "yes", "default-virtual-mta": "blast",
                               "process-x-virtual-mta": "yes", "process-x-job": "yes"},
                 "127.0.0.7": {"always-allow-relaying": "yes", "default-virtual-mta": "mta1"}},
        domains={"hdr.test": {"idle-timeout": "1s", "max-smtp-out": "2"}}, extra=extra)
    d.start()
    # trusted source: X-Virtual-MTA mta2 (a single vmta) and an X-Job
    picked = _msgs(rng, "pick", [["p%d@hdr.test" % i] for i in range(10)])
    for m in picked:
        m.data = b"X-Virtual-MTA: mta2\r\nX-Job: spring-sale\r\n" + m.data
    harness.inject_all(picked, threads=1, per_conn=10)
    # untrusted for headers: 127.0.0.7 says mta2 but gets its default, mta1
    ignored = _msgs(rng, "ign", [["i%d@hdr.test" % i] for i in range(10)])
    for m in ignored:
        m.data = b"X-Virtual-MTA: mta2\r\n" + m.data
    harness.inject_all(ignored, threads=1, per_conn=10, source_address=("127.0.0.7", 0))
    want = {r for m in picked + ignored for r in m.rcpts}
    seen = harness.wait_for_recipients(env, want, 30, settle=0.5)
    for m in picked + ignored:
        a = seen[m.rcpts[0]][0]
        want_ip = "127.0.0.13" if m in picked else "127.0.0.12"
        if a.client_ip != want_ip:
            raise Fail("%s came from %s, want %s" % (m.mid, a.client_ip, want_ip))
        if b"X-Virtual-MTA" in a.data or b"X-Job" in a.data:
            raise Fail("%s still carries X-Virtual-MTA/X-Job at the receiver" % m.mid)
    recs = d.acct()
    camps = {r.get("campaign") for r in find_records(recs, type="reception") if r["recipient"].startswith("p")}
    if camps != {"spring-sale"}:
        raise Fail("reception records of the X-Job messages have campaigns %r" % camps)
    # idle: every session closes about idle-timeout (1 s) after its last message
    def closed_all():
        evs = sink.events()
        return sum(e["ev"] == "conn" for e in evs) == sum(e["ev"] == "close" for e in evs)
    if not wait_until(closed_all, 10, what="idle sessions to close"):
        raise Fail("sessions still open 10 s after the last message (idle-timeout 1s)")
    last_msg, closed = {}, {}
    for e in sink.events():
        if e["ev"] == "msg":
            last_msg[e["conn"]] = e["time"]
        elif e["ev"] == "close":
            closed[e["conn"]] = e["time"]
    waits = sorted(round(closed[c] - t, 2) for c, t in last_msg.items())
    log("idle sessions closed after %r s" % waits)
    if not waits or min(waits) < 0.9 or max(waits) > 2.5:
        raise Fail("idle sessions closed %r s after their last message, idle-timeout is 1s" % waits)


def test_pattern_actions(env):
    rng = random.Random(8)
    env.dns(mx={"dis.test": [(10, "mx.dis.test")], "br.test": [(10, "mx.dis.test")],
                "skip.test": [(10, "mx1.skip.test"), (20, "mx2.skip.test")], "senders.test": [(10, "mx.s.test")]},
            a={"mx.dis.test": "127.0.0.2", "mx1.skip.test": "127.0.0.3", "mx2.skip.test": "127.0.0.4",
               "mx.s.test": "127.0.0.6"}, check=[("skip.test", "MX")])
    sink = env.salvo_sink("sinkDis", "127.0.0.2:25", dump=False, extra_args=[
        "--fault", r"at=connect,match=^127\.0\.0\.12$,first=1,close,reply=421 4.7.0 [TS03] blocked for now",
        "--fault", r"at=rcpt,match=@br\.test$,reply=451 4.2.1 mailbox unavailable"])
    s1 = env.salvo_sink("sinkSkip1", "127.0.0.3:25", dump=False, extra_args=[
        "--fault", "at=rcpt,reply=451 4.7.1 [skipme] try the other host"])
    s2 = env.salvo_sink("sinkSkip2", "127.0.0.4:25", dump=False)
    env.salvo_sink("sinkSenders", "127.0.0.6:25", dump=False)
    extra = "\n".join([
        "<virtual-mta mta1>", "  smtp-source-host 127.0.0.12 mta1.itest", "</virtual-mta>",
        "<virtual-mta mta2>", "  smtp-source-host 127.0.0.13 mta2.itest", "</virtual-mta>",
        "<virtual-mta-pool blast>", "  virtual-mta mta1", "  virtual-mta mta2", "</virtual-mta-pool>",
        "<smtp-pattern-list acts>", "  reply /TS03/ disable-source-ip,reenable-after=3s",
        "  reply /mailbox unavailable/ bounce-rcpt", "  reply /skipme/ skip-mx", "</smtp-pattern-list>"])
    d = env.salvod_daemon(
        sources={"127.0.0.1": {"always-allow-relaying": "yes", "default-virtual-mta": "blast"}},
        default_domain={"smtp-pattern-list": "acts", "retry-after": "1s", "max-smtp-out": "1"}, extra=extra)
    d.start()
    # disable-source-ip: mta1's first connection is refused with TS03
    msgs = _msgs(rng, "dis", [["u%d@dis.test" % i] for i in range(40)])
    harness.inject_all(msgs, threads=1, per_conn=40)
    t_start = time.time()
    if not wait_until(lambda: len(_msg_events([sink])) >= 40, 20, what="dis.test at the sink"):
        raise Fail("dis.test: only %d of 40 arrived" % len(_msg_events([sink])))
    evs = _msg_events([sink])
    first_dis = min((e["time"] for e in sink.events() if e["ev"] == "reply" and e["at"] == "connect"), default=None)
    from12 = [e["time"] for e in evs if e["client"] == "127.0.0.12"]
    early12 = [t for t in from12 if first_dis and t < first_dis + 2.9]
    log("disable-source-ip: %d via 127.0.0.12 (first after %.2f s), %d via 127.0.0.13"
        % (len(from12), (min(from12) - first_dis) if from12 and first_dis else -1,
           sum(e["client"] == "127.0.0.13" for e in evs)))
    if first_dis is None:
        raise Fail("the TS03 refusal never happened")
    if early12:
        raise Fail("127.0.0.12 delivered %d messages within reenable-after (3s) of TS03" % len(early12))
    # after reenable-after, mta1 carries mail again
    time.sleep(max(0, first_dis + 3.5 - time.time()))
    harness.inject_all(_msgs(rng, "dis2", [["v%d@dis.test" % i] for i in range(40)]), threads=1, per_conn=40)
    if not wait_until(lambda: len(_msg_events([sink])) >= 80, 20, what="the second dis.test batch"):
        raise Fail("the second dis.test batch did not arrive")
    again = sum(1 for e in _msg_events([sink]) if e["client"] == "127.0.0.12")
    log("after reenable-after: %d of the second 40 via 127.0.0.12" % again)
    if not again:
        raise Fail("127.0.0.12 was not used again after reenable-after")
    err = open(d.stderr_paths[-1]).read()
    if "virtual-mta mta1 disabled" not in err:
        raise Fail("salvod did not report the disabled source IP:\n" + err[-1500:])
    # bounce-rcpt: a 451 matching the pattern bounces at once
    harness.inject_all(_msgs(rng, "br", [["x@br.test"]]), threads=1)
    recs = harness.wait_for_records(env, lambda r: find_records(r, recipient="x@br.test", type="bounce"), 10,
                                    what="the bounce-rcpt bounce")
    if find_records(recs, recipient="x@br.test", type="transient"):
        raise Fail("bounce-rcpt: the 451 was deferred first")
    # skip-mx: mx1 answers a skipme 451; the retry goes to mx2
    harness.inject_all(_msgs(rng, "sk", [["y@skip.test"]]), threads=1)
    recs = harness.wait_for_records(env, lambda r: find_records(r, recipient="y@skip.test", type="delivery"), 15,
                                    what="the delivery via the second MX")
    dl = find_records(recs, recipient="y@skip.test", type="delivery")[0]
    if dl.get("mx_ip") != "127.0.0.4":
        raise Fail("skip-mx: delivered via %r, want the second MX 127.0.0.4" % dl.get("mx_ip"))
    log("bounce-rcpt bounced the 451; skip-mx delivered via the second MX")


def test_rollup(env):
    rng = random.Random(4)
    env.dns(mx={"g1.test": [(10, "in1.rollmx.test")], "g2.test": [(10, "in2.rollmx.test")],
                "solo.test": [(10, "mx.solo.test")]},
            a={"in1.rollmx.test": "127.0.0.2", "in2.rollmx.test": "127.0.0.3", "mx.solo.test": "127.0.0.4"},
            check=[("g1.test", "MX"), ("g2.test", "MX")])
    # a slow greeting keeps every session open long enough to overlap, and slow
    # replies make a backlog that wants more than one session (salvod opens
    # sessions by backlog, not up to the cap)
    slow = ["--greeting-delay", "300", "--reply-delay", "50"]
    s1 = env.salvo_sink("sinkG1", "127.0.0.2:25", dump=False, extra_args=slow)
    s2 = env.salvo_sink("sinkG2", "127.0.0.3:25", dump=False, extra_args=slow)
    s3 = env.salvo_sink("sinkSolo", "127.0.0.4:25", dump=False, extra_args=slow)
    extra = "\n".join(["<mx-rollup-list>", "  mx *.rollmx.test  shared.rollup", "</mx-rollup-list>",
                       "<domain shared.rollup>", "  max-smtp-out 2", "</domain>"])
    d = env.salvod_daemon(default_domain={"max-smtp-out": "4", "max-msg-per-connection": "10"}, extra=extra)
    d.start()
    # Both queues are held while the mail comes in, so each has its whole backlog when
    # released: on a slow machine the injection no longer paces the sessions (the
    # control queue used to drain as fast as it filled and never wanted 4 sessions).
    held = ("shared.rollup", "solo.test")
    for q in held:
        _api("POST", "/api/v1/queues/%s/pause" % q)
    n = 240
    msgs = _msgs(rng, "roll", [["u%d@%s" % (i, ("g1.test", "g2.test", "solo.test")[i % 3])] for i in range(n)])
    harness.inject_all(msgs, threads=4, per_conn=20, timeout=60)
    want = {"shared.rollup": 2 * n // 3, "solo.test": n // 3}
    if not wait_until(lambda: all(_queue_size(q) >= want[q] for q in held), 30, what="held queues full"):
        raise Fail("held queues: %r, want %r" % ({q: _queue_size(q) for q in held}, want))
    if _msg_events([s1, s2, s3]):
        raise Fail("a held queue delivered")
    for q in held:
        _api("POST", "/api/v1/queues/%s/resume" % q)
    if not wait_until(lambda: len(_msg_events([s1, s2, s3])) >= n, 60, what="all messages at the sinks"):
        raise Fail("only %d of %d messages arrived" % (len(_msg_events([s1, s2, s3])), n))
    both = _peak_concurrency([s1, s2], key=lambda e: "rollup")
    solo = _peak_concurrency([s3], key=lambda e: "solo")
    log("peak sessions: rollup (both MX hosts) %r, solo %r" % (both, solo))
    if both["rollup"] > 2:
        raise Fail("the two rolled-up domains had %d sessions at once; the rollup allows 2" % both["rollup"])
    if solo["solo"] < 3:
        raise Fail("the control domain never used more than %d sessions (want its own 4): the "
                   "test did not load the queues enough to show anything" % solo["solo"])
    deliv = find_records(d.acct(), type="delivery")
    queues = {(r["recipient"].split("@")[1], r.get("queue")) for r in deliv}
    if queues != {("g1.test", "shared.rollup"), ("g2.test", "shared.rollup"), ("solo.test", "solo.test")}:
        raise Fail("delivery records (domain, queue): %r" % sorted(queues))


def test_backoff(env):
    rng = random.Random(5)
    env.dns(mx={"bo.test": [(10, "mx.bo.test")]}, a={"mx.bo.test": "127.0.0.2"}, check=[("bo.test", "MX")])
    sink = env.salvo_sink("sinkBo", "127.0.0.2:25", dump=False,
                          extra_args=["--fault", "at=rcpt,first=3,reply=421 4.7.0 Too busy, try again later"])
    extra = "\n".join(["<smtp-pattern-list busy>", "  reply /421 .*try again later/ mode=backoff",
                       "</smtp-pattern-list>"])
    d = env.salvod_daemon(domains={"bo.test": {
        "smtp-pattern-list": "busy", "max-msg-rate": "100/s", "backoff-max-msg-rate": "4/s",
        "backoff-max-smtp-out": "1", "backoff-to-normal-after": "3s", "retry-after": "1s",
        "max-smtp-out": "4", "max-msg-per-connection": "100"}}, extra=extra)
    d.start()
    n = 120
    msgs = _msgs(rng, "bo", [["u%d@bo.test" % i] for i in range(n)])
    harness.inject_all(msgs, threads=2, per_conn=40, timeout=60)
    if not wait_until(lambda: len(_msg_events([sink])) >= n, 60, what="all messages at the sink"):
        raise Fail("only %d of %d messages arrived" % (len(_msg_events([sink])), n))
    evs = sink.events()
    first421 = min(e["time"] for e in evs if e["ev"] == "reply" and e["code"] == 421)
    last421 = max(e["time"] for e in evs if e["ev"] == "reply" and e["code"] == 421)
    times = [e["time"] for e in evs if e["ev"] == "msg"]
    err = open(d.stderr_paths[-1]).read()
    if "queue bo.test enters backoff mode" not in err:
        raise Fail("salvod did not report backoff mode:\n" + err[-2000:])
    if "queue bo.test returns to normal mode" not in err:
        raise Fail("salvod did not report the return to normal mode:\n" + err[-2000:])
    # in backoff (from the last 421 until 3 s later): at most 4/s plus a burst of 4
    during = [t for t in times if last421 + 0.3 < t < last421 + 2.9]
    rate_in = len(during) / 2.6
    after = [t for t in times if t > last421 + 3.3]
    log("421s at +0..%.2f s; %d messages in the 2.6 s of backoff (%.1f/s); %d after it, %s"
        % (last421 - first421, len(during), rate_in, len(after),
           "in %.2f s" % (after[-1] - after[0]) if len(after) > 1 else ""))
    if _max_over_rate(sorted(during), 4.0, 4) > 1.0:
        raise Fail("in backoff the queue sent %d messages in 2.6 s, above 4/s + burst" % len(during))
    if len(after) < 10:
        raise Fail("only %d messages after the quiet period: it did not return to a normal rate" % len(after))
    span = after[-1] - after[0]
    if span > 0 and len(after) / span < 10:
        raise Fail("after backoff the rate was %.1f/s, normal is 100/s" % (len(after) / span))


def test_retry(env):
    rng = random.Random(6)
    mx = {dom: [(10, "mx.%s" % dom)] for dom in ("once.test", "list.test", "perm.test", "senders.test")}
    a = {"mx.once.test": "127.0.0.2", "mx.list.test": "127.0.0.2", "mx.perm.test": "127.0.0.2",
         "mx.senders.test": "127.0.0.6"}
    env.dns(mx=mx, a=a, check=[("perm.test", "MX")])
    env.salvo_sink("sinkR", "127.0.0.2:25", dump=False, extra_args=[
        "--fault", r"at=rcpt,match=@once\.test$,first=1,reply=451 4.3.0 try later",
        "--fault", r"at=rcpt,match=@list\.test$,first=3,reply=451 4.3.0 try later",
        "--fault", r"at=rcpt,match=@perm\.test$,reply=451 4.3.0 mailbox busy"])
    senders = env.salvo_sink("sinkSenders", "127.0.0.6:25")
    d = env.salvod_daemon(domains={
        "once.test": {"retry-after": "2s"},
        "list.test": {"retry-after": "1s,2s,3s"},
        "perm.test": {"retry-after": "1s", "bounce-after": "6s"}})
    d.start()
    msgs = _msgs(rng, "rt", [["a@once.test"], ["b@list.test"], ["c@perm.test"]])
    t_inject = datetime.datetime.now().timestamp()
    harness.inject_all(msgs, threads=1, per_conn=3, timeout=20)

    def done(recs):
        return (find_records(recs, type="delivery", recipient="a@once.test") and
                find_records(recs, type="delivery", recipient="b@list.test") and
                find_records(recs, type="expiration", recipient="c@perm.test"))
    recs = harness.wait_for_records(env, done, 30, what="delivery, retries and expiry")

    def attempts(rcpt):
        return sorted(_time(r) for r in recs if r.get("recipient") == rcpt and r["type"] != "reception")
    t = attempts("a@once.test")
    if len(t) != 2 or not 2.0 <= t[1] - t[0] <= 4.0:
        raise Fail("a@once.test attempts %r: want a retry 2-4 s after the 451" % [round(x - t[0], 2) for x in t])
    t = attempts("b@list.test")
    gaps = [round(t[i + 1] - t[i], 2) for i in range(len(t) - 1)]
    log("retry-after 1s,2s,3s gaps: %r" % gaps)
    if len(gaps) != 3 or any(not w <= g <= w + 1.0 for g, w in zip(gaps, (1, 2, 3))):
        raise Fail("b@list.test retry gaps %r, want about [1, 2, 3] s" % gaps)
    exp = find_records(recs, type="expiration", recipient="c@perm.test")[0]
    after = _time(exp) - t_inject
    log("c@perm.test expired after %.2f s" % after)
    if not 5.5 <= after <= 8.5:
        raise Fail("c@perm.test expired %.2f s after injection, bounce-after is 6s" % after)

    def dsn_arrived():
        return any(a.mail_from == "" and b"c@perm.test" in a.data for a in senders.arrivals())
    if not wait_until(dsn_arrived, 15, what="the DSN"):
        raise Fail("no DSN for c@perm.test reached the sender's MX")
    dsn = next(a for a in senders.arrivals() if a.mail_from == "" and b"c@perm.test" in a.data)
    if b"Action: failed" not in dsn.data:
        raise Fail("the DSN has no 'Action: failed':\n%s" % dsn.data[:1500].decode("utf-8", "replace"))


if __name__ == "__main__":
    harness.main([test_rotation, test_headers_and_idle, test_pattern_actions, test_rollup, test_backoff, test_retry])
