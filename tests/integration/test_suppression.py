#!/usr/bin/python3
"""test_suppression.py - the suppression list from the outside.

  sync       a delivery answered 550 5.1.1 suppresses the recipient: the next
             injection to it is refused at RCPT with 550 5.7.1; a 552 quota answer
             suppresses only after soft-bounce-suppress-after (2) of them
  api        an address added over HTTP is refused at the next injection; deleted, it
             is accepted again
  queued     mail already queued for an address that becomes suppressed is dropped
             with a `suppressed` record and never reaches the sink
  verp       with bounce-domain set, every delivery carries its own signed return path
             b-<id>-<idx>-<hash>@bounce-domain, one recipient per transaction; the log
             keeps the original sender
"""

import json
import random
import re
import smtplib
import time
import urllib.request

import harness
from harness import Fail, Injected, find_records, log, make_body, wait_until

SENDER = "owner@senders.test"


def api(method, path, body=None):
    req = urllib.request.Request("http://%s:%d%s" % (harness.SALVOD_HTTP + (path,)), method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def rcpt_reply(addr):
    """The reply to RCPT TO:<addr> from salvod (the session is then reset)."""
    with smtplib.SMTP(*harness.SALVOD_SMTP, timeout=5) as s:
        s.ehlo("client.test")
        s.mail(SENDER)
        code, text = s.rcpt(addr)
        s.rset()
        return code, text.decode("utf-8", "replace")


def one(rng, mid, rcpt):
    return Injected(mid, SENDER, [rcpt], make_body(rng, mid, SENDER, [rcpt], 400))


def test_suppression(env):
    rng = random.Random(21)
    doms = ("dead.test", "full.test", "live.test", "hold.test", "senders.test")
    env.dns(mx={d: [(10, "mx.sink.test")] for d in doms}, a={"mx.sink.test": "127.0.0.2"},
            check=[("dead.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25", extra_args=[
        "--fault", r"at=rcpt,match=^gone@dead\.test$,reply=550 5.1.1 <gone@dead.test>: user unknown",
        "--fault", r"at=rcpt,match=^fat@full\.test$,reply=552 5.2.2 mailbox full"])
    d = env.salvod_daemon(extra="soft-bounce-suppress-after 2\n")
    d.start()
    wait_until(lambda: api("GET", "/api/v1/status")[0] == 200, 5, what="the API")

    # -- sync hard bounce
    harness.inject([one(rng, "h1", "gone@dead.test")], threads=1)
    harness.wait_for_records(env, lambda r: find_records(r, type="bounce", recipient="gone@dead.test"), 10,
                             what="the bounce")
    code, text = rcpt_reply("gone@dead.test")
    if code != 550 or "5.7.1" not in text:
        raise Fail("after a 550 5.1.1 the next RCPT got %d %s" % (code, text))
    st, e = api("GET", "/api/v1/suppressions/gone@dead.test")
    if st != 200 or e["source"] != "sync-bounce" or "5.1.1" not in e["reason"]:
        raise Fail("suppression entry: %s %r" % (st, e))

    # -- soft bounces: the first does not suppress, the second does
    harness.inject([one(rng, "f1", "fat@full.test")], threads=1)
    harness.wait_for_records(env, lambda r: find_records(r, type="bounce", recipient="fat@full.test"), 10,
                             what="the first quota bounce")
    code, text = rcpt_reply("fat@full.test")
    if code != 250:
        raise Fail("one quota bounce already suppressed: %d %s" % (code, text))
    harness.inject([one(rng, "f2", "fat@full.test")], threads=1)
    harness.wait_for_records(env, lambda r: len(find_records(r, type="bounce", recipient="fat@full.test")) == 2,
                             10, what="the second quota bounce")
    code, text = rcpt_reply("fat@full.test")
    if code != 550:
        raise Fail("two quota bounces (threshold 2) did not suppress: %d %s" % (code, text))

    # -- manual entries over the API
    st, r = api("POST", "/api/v1/suppressions", {"address": "Manual@Live.TEST", "reason": "unsubscribed"})
    if st != 200:
        raise Fail("POST suppression: %s %r" % (st, r))
    code, text = rcpt_reply("Manual@live.test")
    if code != 550:
        raise Fail("a manually suppressed address was accepted: %d %s" % (code, text))
    st, r = api("DELETE", "/api/v1/suppressions/Manual@live.test")
    if st != 200 or rcpt_reply("Manual@live.test")[0] != 250:
        raise Fail("after DELETE the address is still refused (%s %r)" % (st, r))
    if api("DELETE", "/api/v1/suppressions/Manual@live.test")[0] != 404:
        raise Fail("a second DELETE is not a 404")
    if api("POST", "/api/v1/suppressions", {"address": "no-at-sign"})[1].get("field") != "address":
        raise Fail("a bad address is not refused naming the field")

    # -- mail queued before the suppression is dropped, not sent
    api("POST", "/api/v1/queues/hold.test/pause")
    harness.inject([one(rng, "q1", "later@hold.test"), one(rng, "q2", "fine@hold.test")], threads=1, per_conn=2)
    wait_until(lambda: (api("GET", "/api/v1/queues/hold.test")[1] or {}).get("size") == 2, 5, what="queued")
    api("POST", "/api/v1/suppressions", {"address": "later@hold.test", "reason": "complained elsewhere"})
    api("POST", "/api/v1/queues/hold.test/resume")
    recs = harness.wait_for_records(env, lambda r: find_records(r, type="suppressed", recipient="later@hold.test")
                                    and find_records(r, type="delivery", recipient="fine@hold.test"), 10,
                                    what="the suppressed record")
    time.sleep(0.5)
    if any("later@hold.test" in a.rcpt_to for a in sink.arrivals()):
        raise Fail("mail to a suppressed address reached the sink")
    log("sync bounce, soft threshold, API add/delete and queued drop all behave")


def test_verp(env):
    rng = random.Random(22)
    env.dns(mx={"v.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"}, check=[("v.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    d = env.salvod_daemon(extra="bounce-domain bounces.salvo.test\n")
    d.start()
    rcpts = ["a@v.test", "b@v.test", "c@v.test"]
    m = Injected("verp1", SENDER, rcpts, make_body(rng, "verp1", SENDER, rcpts, 400))
    harness.inject([m], threads=1)
    seen = harness.wait_for_recipients(env, set(rcpts), 15, settle=0.3)
    senders = set()
    for r in rcpts:
        arr = seen[r]
        if len(arr) != 1 or arr[0].rcpt_to != [r]:
            raise Fail("%s arrived as %r: want one transaction per recipient" % (r, [a.rcpt_to for a in arr]))
        if not re.fullmatch(r"b-[0-9a-f]{16}-\d+-[0-9a-f]{12}@bounces\.salvo\.test", arr[0].mail_from):
            raise Fail("%s: return path %r is not a VERP address" % (r, arr[0].mail_from))
        senders.add(arr[0].mail_from)
    if len(senders) != 3:
        raise Fail("the three recipients share return paths: %r" % senders)
    deliv = find_records(d.acct(), type="delivery")
    if {x["sender"] for x in deliv} != {SENDER}:
        raise Fail("delivery records should keep the original sender, got %r" % {x["sender"] for x in deliv})
    log("VERP return paths: %r" % sorted(senders))


if __name__ == "__main__":
    harness.main([test_suppression, test_verp])
