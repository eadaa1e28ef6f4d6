#!/usr/bin/python3
"""test_suppression.py - the suppression list from the outside.

  sync       a delivery answered 550 5.1.1 suppresses the recipient: the next
             injection to it is refused at RCPT with 550 5.7.1; a 552 quota answer
             suppresses only after soft-bounce-suppress-after (2) of them
  api        an address added over HTTP is refused at the next injection; deleted, it
             is accepted again
  queued     mail already queued for an address that becomes suppressed is dropped
             with a `suppressed` record and never reaches the sink
  async      bounces and complaints mailed to the bounce domain (from a client that may not
             relay): a DSN (5.1.1) to a delivery's VERP address suppresses that recipient and
             logs a `bounce` record (kind dsn, the campaign); an ARF report to a fixed FBL
             address whose quoted original carries the VERP Return-Path suppresses the
             complainer (a `feedback` record); a forged VERP address changes nothing
  import     a CSV import of 2,500 lines (committed 1,000 lines at a time) with bad lines
             among them: every good line is imported and refused at RCPT, each bad line is
             listed by its number, and a header line is skipped
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
        "--fault", r"at=rcpt,match=^fat@full\.test$,reply=552 5.2.2 mailbox full",
        "--fault", r"at=rcpt,match=^odd@dead\.test$,reply=550 5.7.1 this person has gone away forever",
        "--fault", r"at=rcpt,match=^nouser@dead\.test$,reply=550 User unknown",
        "--fault", r"at=data,match=^filtered@dead\.test$,reply=550 User unknown"])
    d = env.salvod_daemon(extra="soft-bounce-suppress-after 2\n<bounce-category-patterns>\n"
                                "  /gone away forever/ bad-mailbox\n</bounce-category-patterns>\n")
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

    # -- "user unknown" without an enhanced code: a bad mailbox when it refuses RCPT TO,
    #    a filter (not suppressed) when it answers the end of DATA
    harness.inject([one(rng, "u1", "nouser@dead.test"), one(rng, "u2", "filtered@dead.test")], threads=1)
    recs = harness.wait_for_records(env, lambda r: find_records(r, type="bounce", recipient="nouser@dead.test")
                                    and find_records(r, type="bounce", recipient="filtered@dead.test"), 10,
                                    what="the two 'user unknown' bounces")
    cats = {a: find_records(recs, type="bounce", recipient=a)[0].get("bounce_category")
            for a in ("nouser@dead.test", "filtered@dead.test")}
    if cats != {"nouser@dead.test": "bad-mailbox", "filtered@dead.test": "policy-related"}:
        raise Fail("'user unknown' at RCPT / after DATA categorised as %r" % cats)
    if rcpt_reply("nouser@dead.test")[0] != 550 or rcpt_reply("filtered@dead.test")[0] != 250:
        raise Fail("suppression after 'user unknown': RCPT one should be refused, DATA one accepted")

    # -- an operator's category pattern: a 5.7.1 that says the person is gone
    harness.inject([one(rng, "o1", "odd@dead.test")], threads=1)
    recs = harness.wait_for_records(env, lambda r: find_records(r, type="bounce", recipient="odd@dead.test"), 10,
                                    what="the pattern-classified bounce")
    if find_records(recs, type="bounce", recipient="odd@dead.test")[0].get("bounce_category") != "bad-mailbox":
        raise Fail("<bounce-category-patterns> did not apply: %r" % find_records(recs, type="bounce",
                                                                               recipient="odd@dead.test"))
    if rcpt_reply("odd@dead.test")[0] != 550:
        raise Fail("the pattern's hard category did not suppress odd@dead.test")

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
    log("sync bounce (and its stage), soft threshold, API add/delete and queued drop all behave")


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


def import_csv(text):
    req = urllib.request.Request("http://%s:%d/api/v1/suppressions/import" % harness.SALVOD_HTTP, method="POST",
                                 data=text.encode(), headers={"Content-Type": "text/csv"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_import(env):
    env.dns(mx={"imp.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"}, check=[("imp.test", "MX")])
    env.salvo_sink("sink", "127.0.0.2:25")
    d = env.salvod_daemon()
    d.start()
    wait_until(lambda: api("GET", "/api/v1/status")[0] == 200, 5, what="the API")
    lines, bad = ["address,reason,source"], set()
    for i in range(2500):
        if i in (7, 999, 1000, 2499):           # around and at the batch edges
            lines.append("not-an-address-%d,oops" % i)
            bad.add(len(lines))
        elif i == 1500:
            lines.append("x%d@imp.test,why,nosuchsource" % i)
            bad.add(len(lines))
        else:
            lines.append("i%d@imp.test,list cleaning %d,manual" % (i, i))
    st, r = import_csv("\r\n".join(lines) + "\r\n")
    if st != 200:
        raise Fail("import answered %s %r" % (st, r))
    if r["imported"] != 2500 - len(bad) or {f["line"] for f in r["failed"]} != bad:
        raise Fail("import: %d imported, failed lines %r; want %d and %r" % (
            r["imported"], sorted(f["line"] for f in r["failed"]), 2500 - len(bad), sorted(bad)))
    for i in (0, 998, 1001, 1999, 2000, 2498):
        st, e = api("GET", "/api/v1/suppressions/i%d@imp.test" % i)
        if st != 200 or e.get("reason") != "list cleaning %d" % i:
            raise Fail("i%d@imp.test after the import: %s %r" % (i, st, e))
    if rcpt_reply("i2498@imp.test")[0] != 550 or rcpt_reply("fresh@imp.test")[0] != 250:
        raise Fail("the imported list is not what RCPT sees")
    st, page = api("GET", "/api/v1/suppressions?limit=10000")
    n = len(page["suppressions"]) if st == 200 else -1
    if n != 2500 - len(bad):
        raise Fail("the list holds %d entries after the import, want %d" % (n, 2500 - len(bad)))
    log("imported %d of 2500 lines in batches (%d listed), %d bad lines reported by number"
        % (r["imported"], n, len(bad)))


DSN = """From: MAILER-DAEMON@mx.v.test\r
To: {verp}\r
Subject: Undelivered Mail Returned to Sender\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status; boundary="B0UND"\r
\r
--B0UND\r
Content-Type: text/plain\r
\r
I'm sorry to have to inform you that your message could not be delivered.\r
\r
--B0UND\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mx.v.test\r
\r
Final-Recipient: rfc822; {rcpt}\r
Action: failed\r
Status: 5.1.1\r
Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown\r
\r
--B0UND\r
Content-Type: text/rfc822-headers\r
\r
Return-Path: <{verp}>\r
To: {rcpt}\r
Subject: hello\r
\r
--B0UND--\r
"""

ARF = """From: fbl@isp.test\r
To: fbl@bounces.salvo.test\r
Subject: complaint\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=feedback-report; boundary="ARFB"\r
\r
--ARFB\r
Content-Type: text/plain\r
\r
This is an email abuse report.\r
--ARFB\r
Content-Type: message/feedback-report\r
\r
Feedback-Type: abuse\r
User-Agent: isp-fbl/1.0\r
Version: 1\r
Original-Rcpt-To: <{rcpt}>\r
\r
--ARFB\r
Content-Type: message/rfc822\r
\r
Return-Path: <{verp}>\r
From: owner@senders.test\r
To: {rcpt}\r
Subject: the offer\r
\r
Buy now.\r
--ARFB--\r
"""


def send_report(to, data, source="127.0.0.50"):
    with smtplib.SMTP(*harness.SALVOD_SMTP, timeout=10, source_address=(source, 0)) as s:
        s.ehlo("mx.isp.test")
        refused = s.sendmail("", [to], data.encode())
        if refused:
            raise Fail("the report to %s was refused: %r" % (to, refused))


def test_async(env):
    rng = random.Random(23)
    env.dns(mx={"v.test": [(10, "mx.sink.test")], "senders.test": [(10, "mx.sink.test")]},
            a={"mx.sink.test": "127.0.0.2"}, check=[("v.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    d = env.salvod_daemon(extra="bounce-domain bounces.salvo.test\n", sources={
        "127.0.0.1": {"always-allow-relaying": "yes", "process-x-job": "yes"}})
    d.start()
    msgs = {}
    for r in ("dead@v.test", "angry@v.test", "keep@v.test"):
        m = one(rng, r.split("@")[0], r)
        m.data = b"X-Job: autumn\r\n" + m.data
        msgs[r] = m
    harness.inject(list(msgs.values()), threads=1, per_conn=3)
    seen = harness.wait_for_recipients(env, set(msgs), 15, settle=0.3)
    verp = {r: seen[r][0].mail_from for r in msgs}
    # a client that may not relay can still reach the bounce domain
    with smtplib.SMTP(*harness.SALVOD_SMTP, timeout=10, source_address=("127.0.0.50", 0)) as s:
        s.ehlo("stranger.test")
        s.mail("x@stranger.test")
        code, _ = s.rcpt("someone@v.test")
        if code != 550:
            raise Fail("a stranger could relay: RCPT answered %d" % code)
    # the DSN to the VERP address
    send_report(verp["dead@v.test"], DSN.format(verp=verp["dead@v.test"], rcpt="dead@v.test"))
    recs = harness.wait_for_records(env, lambda r: find_records(r, type="bounce", recipient="dead@v.test"), 10,
                                    what="the async bounce record")
    b = find_records(recs, type="bounce", recipient="dead@v.test")[0]
    if b.get("kind") != "dsn" or b.get("bounce_category") != "bad-mailbox" or b.get("campaign") != "autumn":
        raise Fail("async bounce record: %r" % b)
    if rcpt_reply("dead@v.test")[0] != 550:
        raise Fail("the async DSN did not suppress dead@v.test")
    st, e = api("GET", "/api/v1/suppressions/dead@v.test")
    if st != 200 or e["source"] != "async-bounce":
        raise Fail("suppression of dead@v.test: %s %r" % (st, e))
    # the ARF complaint to a fixed FBL address
    send_report("fbl@bounces.salvo.test", ARF.format(verp=verp["angry@v.test"], rcpt="angry@v.test"))
    recs = harness.wait_for_records(env, lambda r: find_records(r, type="feedback", recipient="angry@v.test"), 10,
                                    what="the feedback record")
    f = find_records(recs, type="feedback", recipient="angry@v.test")[0]
    if f.get("kind") != "arf" or f.get("campaign") != "autumn":
        raise Fail("feedback record: %r" % f)
    st, e = api("GET", "/api/v1/suppressions/angry@v.test")
    if st != 200 or e["source"] != "complaint":
        raise Fail("suppression of angry@v.test: %s %r" % (st, e))
    # a forged bounce: the right shape, a wrong signature
    good = verp["keep@v.test"]
    forged = good[:good.index("@") - 1] + ("0" if good[good.index("@") - 1] != "0" else "1") + good[good.index("@"):]
    send_report(forged, DSN.format(verp=forged, rcpt="keep@v.test"))
    time.sleep(1.0)
    if rcpt_reply("keep@v.test")[0] != 250 or find_records(d.acct(), type="bounce", recipient="keep@v.test"):
        raise Fail("a forged bounce changed something")
    if len([a for a in sink.arrivals() if a.rcpt_to and a.rcpt_to[0].endswith("bounces.salvo.test")]):
        raise Fail("a report for the bounce domain was delivered onward")
    log("async DSN and ARF suppress and log; a forged bounce is ignored")


if __name__ == "__main__":
    harness.main([test_suppression, test_import, test_async, test_verp])
